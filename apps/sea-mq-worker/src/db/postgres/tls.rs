//! TLS to PostgreSQL on rustls (the ring provider), for tokio-postgres: a `MakeTlsConnect` that
//! checks the server as the `sslmode` asks, names the fix when a handshake fails, and gives
//! SCRAM its `tls-server-end-point` channel binding.
//!
//! What is checked, as libpq does:
//! - no CA given (`prefer`, `require`, `allow`): nothing but the handshake's own signatures:
//!   the link is encrypted, the server unauthenticated;
//! - a CA given with `prefer`, `require`, `allow`, or `verify-ca`: the certificate chain up to
//!   that CA (libpq too checks the chain under `require` once a root certificate file exists);
//! - `verify-full`: the chain and the host name dialled (the `host` parameter, also when
//!   `hostaddr` gives the address).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
#[cfg(test)]
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use super::link::{PgLink, SslMode};

/// Makes the TLS connector of each connection attempt. Cheap to clone: one rustls
/// configuration shared by every attempt.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
    /// How the refusal of a certificate is explained.
    context: Arc<Explain>,
    /// Set when a handshake failed (`prefer` then retries without TLS, as libpq does) and when
    /// one succeeded.
    outcome: Arc<Outcome>,
}

#[derive(Debug)]
struct Explain {
    mode: SslMode,
    /// `/path/ca.pem (PGSSLROOTCERT)`.
    ca: Option<String>,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub handshake_failed: AtomicBool,
    pub encrypted: AtomicBool,
}

impl MakeRustls {
    /// The connector for `link`; an error only when rustls refuses the CA (checked at parse).
    pub fn new(link: &PgLink) -> Result<MakeRustls, String> {
        let verifier = Arc::new(Verifier::new(link)?);
        let mut config = ClientConfig::builder_with_provider(verifier.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // PostgreSQL 17's direct TLS (`sslnegotiation=direct`) requires it; older servers
        // ignore it. libpq 17 always sends it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustls {
            config: Arc::new(config),
            context: Arc::new(Explain {
                mode: link.mode,
                ca: link.ca.as_ref().map(|ca| format!("{ca:?}")),
            }),
            outcome: Arc::new(Outcome::default()),
        })
    }

    /// The same configuration with a fresh [`Outcome`], for one connection attempt.
    pub fn attempt(&self) -> MakeRustls {
        MakeRustls {
            outcome: Arc::new(Outcome::default()),
            ..self.clone()
        }
    }

    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    /// Never fails: tokio-postgres asks for a connector before it knows whether TLS is used
    /// (also for Unix sockets, with no name); a name TLS cannot use fails the handshake.
    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        Ok(RustlsConnect {
            config: self.config.clone(),
            context: self.context.clone(),
            outcome: self.outcome.clone(),
            host: domain.to_owned(),
        })
    }
}

pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    context: Arc<Explain>,
    outcome: Arc<Outcome>,
    host: String,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let result = match ServerName::try_from(self.host.clone()) {
                Ok(name) => tokio_rustls::TlsConnector::from(self.config)
                    .connect(name, stream)
                    .await
                    .map_err(|e| explain(e, &self.context, &self.host)),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{}` is not a host name TLS can check", self.host),
                )),
            };
            let flag = match &result {
                Ok(_) => &self.outcome.encrypted,
                Err(_) => &self.outcome.handshake_failed,
            };
            flag.store(true, Ordering::Relaxed);
            result.map(RustlsStream)
        })
    }
}

/// A failed handshake, with what to do about it.
fn explain(e: io::Error, context: &Explain, host: &str) -> io::Error {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return e;
    };
    let ca = context.ca.as_deref().unwrap_or("no CA");
    let message = match tls {
        // BadSignature: a CA of the same name, but not the one that signed it.
        rustls::Error::InvalidCertificate(
            c @ (CertificateError::UnknownIssuer | CertificateError::BadSignature),
        ) => format!(
            "the server's certificate is not signed by the CA {ca} ({c}): give the CA that issued the server's certificate (sslrootcert or PGSSLROOTCERT)"
        ),
        rustls::Error::InvalidCertificate(
            c @ (CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }),
        ) => format!(
            "the server's certificate does not hold the host name `{host}` that sslmode={} checks ({c}): dial the server by a name its certificate holds (hostaddr= can give the address separately), or use sslmode=verify-ca to check only that the CA signed it",
            context.mode
        ),
        rustls::Error::InvalidCertificate(
            c @ (CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. }),
        ) => format!(
            "the server's certificate is outside its validity ({c}): renew the server's certificate (or check this machine's clock)"
        ),
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure) => format!(
            "the server presents a self-signed certificate that is also the CA {ca}: the worker (rustls) needs the server's certificate issued by a CA; issue one from a CA and give that CA, or use sslmode=require to encrypt without checking the server"
        ),
        rustls::Error::InvalidCertificate(c) => format!(
            "the server's certificate is refused ({c}) under sslmode={} with the CA {ca}",
            context.mode
        ),
        other => format!("TLS handshake with the server failed: {other}"),
    };
    io::Error::new(e.kind(), message)
}

/// The server check of every mode: the chain up to the CA when one is given (webpki), the
/// name too under `verify-full`; with no CA, any certificate (encryption without
/// authentication, what `require` means then). The handshake's signatures are always checked
/// with the certificate presented.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// The CA file's certificates, to recognise a server that presents one of them as its own.
    ca_certs: Vec<CertificateDer<'static>>,
    /// `false`: a name mismatch is no refusal (`verify-ca`). webpki checks the name last, after
    /// the chain, so a name mismatch means the chain is good.
    check_name: bool,
}

impl Verifier {
    /// The check `link`'s mode asks for; an error only when rustls refuses the CA (checked at
    /// parse).
    fn new(link: &PgLink) -> Result<Verifier, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (chain, ca_certs) = match &link.ca {
            Some(ca) => {
                let refused = |e: &dyn std::fmt::Display| format!("CA {}: {e}", ca.path.display());
                let mut roots = rustls::RootCertStore::empty();
                for cert in &ca.certs {
                    roots.add(cert.clone()).map_err(|e| refused(&e))?;
                }
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| refused(&e))?;
                (Some(webpki), ca.certs.clone())
            }
            None => (None, Vec::new()),
        };
        Ok(Verifier {
            provider,
            chain,
            ca_certs,
            check_name: link.mode == SslMode::VerifyFull,
        })
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            // A self-signed server certificate given as the CA (libpq, through OpenSSL,
            // accepts it; webpki wants the server's certificate issued by a CA): said so.
            Err(_) if self.ca_certs.iter().any(|c| c == end_entity) => Err(
                rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure),
            ),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS session with the server.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    /// `tls-server-end-point` (RFC 5929): a hash of the server's certificate, so SCRAM
    /// (`SCRAM-SHA-256-PLUS`) proves no one in between terminated the TLS session.
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| tls_server_end_point(cert))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

/// The certificate hashed with its signature's hash function, SHA-256 for MD5 and SHA-1;
/// `None` for algorithms RFC 5929 gives no hash for (Ed25519, RSA-PSS): then SCRAM runs
/// without channel binding, which `channel_binding=require` refuses.
fn tls_server_end_point(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    use sha2::Digest;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let oid = parsed.signature_algorithm.algorithm.to_id_string();
    let der = cert.as_ref();
    match oid.as_str() {
        // md5, sha1, sha256 with RSA; ecdsa with sha1, sha256.
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.10045.4.1"
        | "1.2.840.10045.4.3.2" => Some(sha2::Sha256::digest(der).to_vec()),
        "1.2.840.113549.1.1.14" | "1.2.840.10045.4.3.1" => Some(sha2::Sha224::digest(der).to_vec()),
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => Some(sha2::Sha384::digest(der).to_vec()),
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => Some(sha2::Sha512::digest(der).to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{PgEnv, PgLink};

    fn verifier(mode: &str, ca: &std::path::Path) -> Verifier {
        let env = PgEnv {
            sslmode: Some(mode.to_owned()),
            sslrootcert: Some(ca.display().to_string()),
        };
        Verifier::new(&PgLink::parse("host=db", &env).unwrap()).unwrap()
    }

    /// A server presenting the CA's own (self-signed) certificate: refused with a reason of its
    /// own, whichever verifying mode.
    #[test]
    fn a_self_signed_server_certificate_given_as_the_ca_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        sea_infra::deployment::certs::ensure(dir.path(), &[], false).unwrap();
        let ca = dir.path().join("ca.pem");
        let der = CertificateDer::pem_file_iter(&ca)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        for mode in ["verify-ca", "verify-full"] {
            let err = verifier(mode, &ca)
                .verify_server_cert(
                    &der,
                    &[],
                    &ServerName::try_from("localhost").unwrap(),
                    &[],
                    UnixTime::now(),
                )
                .unwrap_err();
            let explained = explain(
                io::Error::new(io::ErrorKind::InvalidData, err),
                &Explain {
                    mode: SslMode::VerifyCa,
                    ca: Some(ca.display().to_string()),
                },
                "localhost",
            );
            assert!(
                explained
                    .to_string()
                    .contains("self-signed certificate that is also the CA"),
                "{mode}: {explained}"
            );
        }
    }
}
