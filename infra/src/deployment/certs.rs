//! TLS certificates: a development CA and the certificates it signs (`cargo xtask certs`), and
//! the check every certificate passes before a server starts, whoever issued it.
//!
//! One certificate per server name of every profile and of the Kubernetes pods, each with a
//! subject alternative name for every address a peer or a client dials (loopback, the compose
//! service name, the pod's DNS names, the Service's names) and both `serverAuth` and
//! `clientAuth` usage: cluster routes, gateways and leafnode links verify the peer's
//! certificate in both directions. One client certificate per client role (`clientAuth` only)
//! for mutual TLS. Layout of a certificates directory:
//!
//! ```text
//! ca.pem  ca-key.pem                 the CA (the key only for the development CA)
//! nats-1.pem  nats-1-key.pem         one pair per server name
//! client-admin.pem  client-admin-key.pem   one pair per client role
//! ```
//!
//! Every file is 0600 in a 0700 directory and written atomically. [`ensure`] keeps what is
//! still good and (re)issues the rest; [`check`] only looks, and refuses with the file, the
//! name and the fix.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::files::{create_private_dir, write_atomic};
use crate::model::security::{CertFiles, CA_FILE};
use crate::model::{Profile, Role, Topology};
use crate::render::k8s;

/// The Kubernetes namespace the pods' names are qualified with unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Lifetime of the development CA.
pub const CA_VALIDITY: Duration = Duration::days(3650);
/// Lifetime of a server or client certificate.
pub const CERT_VALIDITY: Duration = Duration::days(365);
/// A certificate expiring within this long is reissued by [`ensure`].
pub const RENEW_BEFORE: Duration = Duration::days(30);
/// The development CA's key.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// Name of the CA in [`CertStatus`] lists.
pub const CA_NAME: &str = "ca";
const FILE_MODE: u32 = 0o600;

/// What a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A server: `serverAuth` for its clients, `clientAuth` for the peers it dials.
    Server,
    /// A client of mutual TLS: `clientAuth` only.
    Client,
}

/// One certificate to have: its file stem, every name it must hold, what it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRequest {
    pub name: String,
    /// DNS names and IP addresses (`127.0.0.1`), in a stable order.
    pub sans: Vec<String>,
    pub usage: Usage,
}

/// One certificate after [`ensure`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertStatus {
    pub name: String,
    pub path: PathBuf,
    /// Serial number, lowercase hex.
    pub serial: String,
    pub not_after: OffsetDateTime,
    /// Issued by this run (else kept as it was).
    pub issued_now: bool,
}

impl CertStatus {
    /// `not_after` as RFC 3339 (`2027-12-01T06:45:00Z`).
    pub fn expires(&self) -> String {
        self.not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| self.not_after.to_string())
    }
}

/// A namespace as Kubernetes accepts it (an RFC 1123 label).
pub fn parse_namespace(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a Kubernetes namespace: lowercase letters, digits and `-`, at most 63"
        ))
    }
}

/// Every certificate of the development CA: a server certificate per server name of every
/// profile and of the Kubernetes pods (in `namespace`), then a client certificate per client
/// role.
pub fn requests(namespace: &str) -> Vec<CertRequest> {
    let mut servers: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |name: &str, san: String| {
        let i = match servers.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                let base = ["localhost", "127.0.0.1", name].map(str::to_owned);
                servers.push((name.to_owned(), base.to_vec()));
                servers.len() - 1
            }
        };
        if !servers[i].1.contains(&san) {
            servers[i].1.push(san);
        }
    };
    for profile in Profile::ALL {
        let host = Topology::for_profile(profile);
        // The process backend dials loopback; containers dial each other by service name.
        for view in [host.clone(), host.in_containers()] {
            for (_, server) in view.servers() {
                add(&server.name, view.dial_host(server));
            }
        }
    }
    let pods = k8s::topology();
    let service = k8s::STATEFULSET;
    for (_, server) in pods.servers() {
        let short = pods.dial_host(server);
        add(&server.name, short.clone());
        add(
            &server.name,
            format!("{short}.{namespace}.svc.cluster.local"),
        );
        // Clients inside the cluster dial the Service, which lands on any pod.
        add(&server.name, service.to_owned());
        add(&server.name, format!("{service}.{namespace}.svc"));
        add(
            &server.name,
            format!("{service}.{namespace}.svc.cluster.local"),
        );
    }
    let mut out: Vec<CertRequest> = servers
        .into_iter()
        .map(|(name, sans)| CertRequest {
            name,
            sans,
            usage: Usage::Server,
        })
        .collect();
    out.extend(Role::CLIENTS.into_iter().map(|role| CertRequest {
        name: role.client_cert_name(),
        sans: vec![role.as_str().to_owned()],
        usage: Usage::Client,
    }));
    out
}

/// The one server certificate every pod of the StatefulSet presents (they share one config),
/// named [`SHARED_SERVER_CERT`](crate::model::security::SHARED_SERVER_CERT): every name a peer
/// or client dials any pod by in `namespace`.
pub fn pods_request(namespace: &str) -> CertRequest {
    let pods: Vec<String> = k8s::topology()
        .servers()
        .map(|(_, s)| s.name.clone())
        .collect();
    let mut sans: Vec<String> = Vec::new();
    for r in requests(namespace)
        .into_iter()
        .filter(|r| pods.contains(&r.name))
    {
        for san in r.sans {
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
    }
    CertRequest {
        name: crate::model::security::SHARED_SERVER_CERT.to_owned(),
        sans,
        usage: Usage::Server,
    }
}

/// The server certificates one deployment needs, for [`check`] before it starts: per server,
/// loopback and the name its peers dial ([`Topology::dial_host`]: loopback for processes, the
/// service name in containers); with `shared` (one certificate for every server, given by the
/// operator), a single `server` request holding every server's names. The development
/// certificates of [`requests`] cover these for every profile, on the host and in containers.
pub fn requests_for(topology: &Topology, shared: bool) -> Vec<CertRequest> {
    let per_server: Vec<CertRequest> = topology
        .servers()
        .map(|(_, server)| {
            let mut sans: Vec<String> = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            let dialled = topology.dial_host(server);
            if !sans.contains(&dialled) {
                sans.push(dialled);
            }
            CertRequest {
                name: server.name.clone(),
                sans,
                usage: Usage::Server,
            }
        })
        .collect();
    if !shared {
        return per_server;
    }
    let mut sans: Vec<String> = Vec::new();
    for san in per_server.into_iter().flat_map(|r| r.sans) {
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    vec![CertRequest {
        name: crate::model::security::SHARED_SERVER_CERT.to_owned(),
        sans,
        usage: Usage::Server,
    }]
}

/// Something wrong with one certificate, its key or the CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertProblem {
    /// The file at fault.
    pub file: PathBuf,
    /// The certificate's name (`nats-1`, `client-admin`, `ca`).
    pub name: String,
    pub kind: ProblemKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    Missing,
    /// Not a PEM certificate (or key) this check can read, with the parser's reason.
    Unreadable(String),
    Expired {
        not_after: String,
    },
    NotYetValid {
        not_before: String,
    },
    /// A name a peer or client dials is not among the subject alternative names.
    MissingSan(String),
    /// Lacks `serverAuth` or `clientAuth` in its extended key usage.
    MissingUsage(&'static str),
    /// Not signed by the CA in `ca.pem`.
    WrongCa,
    /// `ca.pem` holds no CA certificate (basic constraints `CA:FALSE` or absent).
    NotACa,
    /// The key is not the certificate's.
    KeyMismatch,
}

impl fmt::Display for CertProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, name) = (self.file.display(), &self.name);
        let reissue = "reissue it: `cargo xtask certs` for the development certificates, your CA for your own";
        match &self.kind {
            ProblemKind::Missing => write!(
                f,
                "{file} ({name}) is missing; {}",
                if name == CA_NAME {
                    "run `cargo xtask certs`, or set NATS_TLS_CA in the secrets file to your CA"
                } else {
                    "run `cargo xtask certs`, or give your own with NATS_TLS_CERT and NATS_TLS_KEY"
                }
            ),
            ProblemKind::Unreadable(why) => write!(
                f,
                "{file} ({name}) cannot be read as PEM ({why}); replace it (keys must be unencrypted PKCS#8 `PRIVATE KEY`: `openssl pkcs8 -topk8 -nocrypt -in KEY -out {file}`)"
            ),
            ProblemKind::Expired { not_after } => {
                write!(f, "{file} ({name}) expired at {not_after}; {reissue}")
            }
            ProblemKind::NotYetValid { not_before } => write!(
                f,
                "{file} ({name}) is not valid before {not_before}; check this machine's clock, or {reissue}"
            ),
            ProblemKind::MissingSan(san) => write!(
                f,
                "{file} ({name}) has no subject alternative name `{san}`, which peers or clients dial; {reissue} with that name"
            ),
            ProblemKind::MissingUsage(usage) => write!(
                f,
                "{file} ({name}) lacks extended key usage {usage} (servers need serverAuth and clientAuth: routes, gateways and leafnodes verify both ends); {reissue}"
            ),
            ProblemKind::WrongCa => write!(
                f,
                "{file} ({name}) is not signed by the CA in {CA_FILE}; {reissue}, or point NATS_TLS_CA at the CA that signed it"
            ),
            ProblemKind::NotACa => write!(
                f,
                "{file} ({name}) is not a CA certificate (basic constraints CA:TRUE); set NATS_TLS_CA to your CA's certificate"
            ),
            ProblemKind::KeyMismatch => write!(
                f,
                "{file} ({name}) is not the key of {name}'s certificate; give the key that belongs to it, or {reissue}"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{} certificate problem(s):{}", .0.len(), list(.0))]
    Invalid(Vec<CertProblem>),
    #[error("the development CA in {} cannot sign: {reason}; remove {CA_FILE} and {CA_KEY_FILE} there and run `cargo xtask certs` again (every certificate is then reissued by a new CA: restart the servers)", .dir.display())]
    CaUnusable { dir: PathBuf, reason: String },
    #[error("cannot write {}: {source}; check the permissions of its directory or set SEA_STATE_DIR", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate the certificate {name}: {source}")]
    Generate {
        name: String,
        #[source]
        source: rcgen::Error,
    },
}

fn list(problems: &[CertProblem]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

// ---- reading --------------------------------------------------------------------------------

/// Every certificate of a PEM file, as DER.
fn read_pem_certs(path: &Path) -> Result<Vec<Vec<u8>>, ProblemKind> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ProblemKind::Missing),
        Err(e) => return Err(ProblemKind::Unreadable(e.to_string())),
    };
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
        let pem = pem.map_err(|e| ProblemKind::Unreadable(e.to_string()))?;
        if pem.label == "CERTIFICATE" {
            pem.parse_x509()
                .map_err(|e| ProblemKind::Unreadable(format!("bad certificate: {e}")))?;
            out.push(pem.contents);
        }
    }
    if out.is_empty() {
        return Err(ProblemKind::Unreadable("no CERTIFICATE block".to_owned()));
    }
    Ok(out)
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der)
        .expect("checked when read")
        .1
}

fn read_key(path: &Path) -> Result<KeyPair, ProblemKind> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ProblemKind::Missing),
        Err(e) => return Err(ProblemKind::Unreadable(e.to_string())),
    };
    KeyPair::from_pem(&text).map_err(|e| ProblemKind::Unreadable(format!("bad key: {e}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// The names a certificate holds (DNS names as written, IP addresses in their usual form).
fn sans_of(cert: &X509Certificate<'_>) -> BTreeSet<String> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return BTreeSet::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => Some(IpAddr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                16 => Some(IpAddr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Whether `leaf` chains up to one of `roots`, possibly through the certificates `extra` that
/// came with it in its file (intermediates).
fn chains_to(
    leaf: &X509Certificate<'_>,
    roots: &[X509Certificate<'_>],
    extra: &[X509Certificate<'_>],
) -> bool {
    let signed_by = |child: &X509Certificate<'_>, parent: &X509Certificate<'_>| {
        child.issuer() == parent.subject()
            && child.verify_signature(Some(parent.public_key())).is_ok()
    };
    let mut current = leaf;
    for _ in 0..=extra.len() {
        if roots.iter().any(|r| signed_by(current, r)) {
            return true;
        }
        match extra.iter().find(|i| signed_by(current, i)) {
            Some(next) => current = next,
            None => return false,
        }
    }
    false
}

/// A certificate read and judged against its request: the problems, and what is needed to keep
/// it (serial, expiry, its names).
struct Inspected {
    serial: String,
    not_after: OffsetDateTime,
    sans: BTreeSet<String>,
    problems: Vec<ProblemKind>,
}

/// Reads `<name>.pem` and `<name>-key.pem` of a request in `dir` and judges them against the
/// CA certificates `roots` at time `now`. `Err` when a file is missing or unreadable.
fn inspect(
    dir: &Path,
    request: &CertRequest,
    roots: &[X509Certificate<'_>],
    now: OffsetDateTime,
) -> Result<Inspected, CertProblem> {
    let files = CertFiles::named(&request.name);
    let problem = |file: &str, kind| CertProblem {
        file: dir.join(file),
        name: request.name.clone(),
        kind,
    };
    let ders = read_pem_certs(&dir.join(&files.cert)).map_err(|k| problem(&files.cert, k))?;
    let key = read_key(&dir.join(&files.key)).map_err(|k| problem(&files.key, k))?;
    let certs: Vec<_> = ders.iter().map(|d| parse(d)).collect();
    let cert = &certs[0];
    let mut problems = Vec::new();
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    if now > not_after {
        problems.push(ProblemKind::Expired {
            not_after: rfc3339(not_after),
        });
    } else if now < not_before {
        problems.push(ProblemKind::NotYetValid {
            not_before: rfc3339(not_before),
        });
    }
    let sans = sans_of(cert);
    for san in &request.sans {
        if !sans.contains(&san.to_ascii_lowercase()) {
            problems.push(ProblemKind::MissingSan(san.clone()));
        }
    }
    // No extended key usage extension means any usage.
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        let eku = eku.value;
        if request.usage == Usage::Server && !eku.any && !eku.server_auth {
            problems.push(ProblemKind::MissingUsage("serverAuth"));
        }
        if !eku.any && !eku.client_auth {
            problems.push(ProblemKind::MissingUsage("clientAuth"));
        }
    }
    if !chains_to(cert, roots, &certs[1..]) {
        problems.push(ProblemKind::WrongCa);
    }
    if key.public_key_raw() != &*cert.public_key().subject_public_key.data {
        problems.push(ProblemKind::KeyMismatch);
    }
    Ok(Inspected {
        serial: hex(cert.raw_serial()),
        not_after,
        sans,
        problems,
    })
}

/// The CA certificates of `dir/ca.pem`, each a CA, none expired.
fn read_roots(dir: &Path, now: OffsetDateTime) -> Result<Vec<Vec<u8>>, CertProblem> {
    let file = dir.join(CA_FILE);
    let problem = |kind| CertProblem {
        file: file.clone(),
        name: CA_NAME.to_owned(),
        kind,
    };
    let ders = read_pem_certs(&file).map_err(problem)?;
    for der in &ders {
        let cert = parse(der);
        if !cert.is_ca() {
            return Err(problem(ProblemKind::NotACa));
        }
        let not_after = cert.validity().not_after.to_datetime();
        if now > not_after {
            return Err(problem(ProblemKind::Expired {
                not_after: rfc3339(not_after),
            }));
        }
    }
    Ok(ders)
}

/// Checks `dir/ca.pem` and every request's certificate and key in `dir`, as servers would
/// before they start: present and readable, within their validity, holding every name of the
/// request and the usage it needs, signed by the CA, with the key that belongs to them. Every
/// problem is reported at once.
pub fn check(dir: &Path, requests: &[CertRequest]) -> Result<(), CertError> {
    let now = OffsetDateTime::now_utc();
    let roots = read_roots(dir, now).map_err(|p| CertError::Invalid(vec![p]))?;
    let roots: Vec<_> = roots.iter().map(|d| parse(d)).collect();
    let mut problems = Vec::new();
    for request in requests {
        match inspect(dir, request, &roots, now) {
            Err(p) => problems.push(p),
            Ok(found) => {
                let cert_file = dir.join(CertFiles::named(&request.name).cert);
                let key_file = dir.join(CertFiles::named(&request.name).key);
                problems.extend(found.problems.into_iter().map(|kind| CertProblem {
                    file: if kind == ProblemKind::KeyMismatch {
                        key_file.clone()
                    } else {
                        cert_file.clone()
                    },
                    name: request.name.clone(),
                    kind,
                }));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CertError::Invalid(problems))
    }
}

// ---- issuing --------------------------------------------------------------------------------

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS has a random source");
    // Positive and of full length: DER integers are signed, and a leading zero byte is dropped.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "SEA messaging");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A new CA: its certificate and key, PEM.
fn new_ca(now: OffsetDateTime, validity: Duration) -> Result<(String, KeyPair), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name("SEA messaging development CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    params.not_before = now - Duration::hours(1);
    params.not_after = now + validity;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key))
}

/// A certificate for `request`, signed by `issuer`, valid from an hour ago (clock skew) for
/// `validity`: the certificate and key, PEM.
fn issue(
    request: &CertRequest,
    issuer: &Issuer<'_, &KeyPair>,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(request.sans.clone())?;
    params.distinguished_name = name(&request.name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match request.usage {
        Usage::Server => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    params.not_before = now - Duration::hours(1);
    params.not_after = now + validity;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(path: &Path, contents: &str) -> Result<(), CertError> {
    write_atomic(path, contents.as_bytes(), FILE_MODE).map_err(|source| CertError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The development CA of `dir`: created when neither file exists; refused when it is half
/// there, does not match its key, or expires within [`RENEW_BEFORE`].
fn ensure_ca(dir: &Path, now: OffsetDateTime) -> Result<(String, KeyPair, bool), CertError> {
    let (cert_path, key_path) = (dir.join(CA_FILE), dir.join(CA_KEY_FILE));
    let unusable = |reason: String| CertError::CaUnusable {
        dir: dir.to_path_buf(),
        reason,
    };
    let problem = |file: &Path, kind| {
        unusable(
            CertProblem {
                file: file.to_path_buf(),
                name: CA_NAME.to_owned(),
                kind,
            }
            .to_string(),
        )
    };
    match (cert_path.exists(), key_path.exists()) {
        (false, false) => {
            let (pem, key) = new_ca(now, CA_VALIDITY).map_err(|source| CertError::Generate {
                name: CA_NAME.to_owned(),
                source,
            })?;
            write(&key_path, &key.serialize_pem())?;
            write(&cert_path, &pem)?;
            Ok((pem, key, true))
        }
        (true, true) => {
            let der = read_pem_certs(&cert_path)
                .map_err(|k| problem(&cert_path, k))?
                .remove(0);
            let cert = parse(&der);
            let key = read_key(&key_path).map_err(|k| problem(&key_path, k))?;
            if key.public_key_raw() != &*cert.public_key().subject_public_key.data {
                return Err(unusable(format!(
                    "{CA_KEY_FILE} is not the key of {CA_FILE}"
                )));
            }
            let not_after = cert.validity().not_after.to_datetime();
            if not_after - now < RENEW_BEFORE {
                return Err(unusable(format!("it expires at {}", rfc3339(not_after))));
            }
            let pem = std::fs::read_to_string(&cert_path).map_err(|e| unusable(e.to_string()))?;
            Ok((pem, key, false))
        }
        (has_cert, _) => Err(unusable(format!(
            "{} is missing",
            if has_cert { CA_KEY_FILE } else { CA_FILE }
        ))),
    }
}

fn status_of(name: &str, path: PathBuf, pem: &str, issued_now: bool) -> CertStatus {
    let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .expect("a certificate this module wrote or read")
        .1
        .contents;
    let cert = parse(&der);
    CertStatus {
        name: name.to_owned(),
        path,
        serial: hex(cert.raw_serial()),
        not_after: cert.validity().not_after.to_datetime(),
        issued_now,
    }
}

/// Makes `dir` hold the development CA and a good certificate for every request: existing ones
/// with exactly the requested names and usage, signed by the CA, with their key and more than
/// [`RENEW_BEFORE`] left are kept; the others are (re)issued. `rotate` reissues every server
/// and client certificate (new keys, new serials) with the same CA. Returns the CA first, then
/// one status per request.
pub fn ensure(
    dir: &Path,
    requests: &[CertRequest],
    rotate: bool,
) -> Result<Vec<CertStatus>, CertError> {
    ensure_at(dir, requests, rotate, OffsetDateTime::now_utc())
}

fn ensure_at(
    dir: &Path,
    requests: &[CertRequest],
    rotate: bool,
    now: OffsetDateTime,
) -> Result<Vec<CertStatus>, CertError> {
    create_private_dir(dir).map_err(|source| CertError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let (ca_pem, ca_key, ca_new) = ensure_ca(dir, now)?;
    let mut out = vec![status_of(CA_NAME, dir.join(CA_FILE), &ca_pem, ca_new)];
    let ca_der = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .expect("checked by ensure_ca")
        .1
        .contents;
    let roots = [parse(&ca_der)];
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).map_err(|e| CertError::CaUnusable {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    for request in requests {
        let files = CertFiles::named(&request.name);
        let cert_path = dir.join(&files.cert);
        if !rotate && !ca_new {
            let wanted: BTreeSet<String> = request
                .sans
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect();
            let keep = inspect(dir, request, &roots, now).ok().filter(|found| {
                found.problems.is_empty()
                    && found.sans == wanted
                    && found.not_after - now >= RENEW_BEFORE
            });
            if let Some(found) = keep {
                out.push(CertStatus {
                    name: request.name.clone(),
                    path: cert_path,
                    serial: found.serial,
                    not_after: found.not_after,
                    issued_now: false,
                });
                continue;
            }
        }
        let (cert, key) =
            issue(request, &issuer, now, CERT_VALIDITY).map_err(|source| CertError::Generate {
                name: request.name.clone(),
                source,
            })?;
        write(&dir.join(&files.key), &key)?;
        write(&cert_path, &cert)?;
        out.push(status_of(&request.name, cert_path, &cert, true));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
