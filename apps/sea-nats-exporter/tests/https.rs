//! Monitoring served over HTTPS (what the secure mode will do): with `NATS_MONITOR_CA_FILE` the
//! exporter trusts the server's private CA; without it the server is down for it (`up` 0). A
//! password in a monitoring URL never shows in what a failed request reports.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_infra::deployment::ports::free_port;
use sea_infra::testing::{nats_server, scratch_dir};
use sea_nats_exporter::collect::{self, Options};
use sea_nats_exporter::config::ExporterConfig;
use sea_nats_exporter::fetch::{Endpoint, Fetcher};

/// A nats-server with its monitoring port on HTTPS, killed on drop.
struct TlsServer {
    child: Child,
    url: String,
    ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> TlsServer {
    let dir = scratch_dir("https-monitor");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("server.pem"), cert.pem()).unwrap();
    std::fs::write(path("server-key.pem"), key.serialize_pem()).unwrap();
    let (client, https) = (free_port(), free_port());
    let conf = format!(
        "server_name: \"tls-1\"\nlisten: \"127.0.0.1:{client}\"\nhttps: \"127.0.0.1:{https}\"\n\
         tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
        path("server.pem").display(),
        path("server-key.pem").display()
    );
    std::fs::write(path("tls.conf"), conf).unwrap();
    let child = Command::new(&nats_server().path)
        .arg("-c")
        .arg(path("tls.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server");
    TlsServer {
        child,
        url: format!("https://127.0.0.1:{https}"),
        ca_file: path("ca.pem"),
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_monitoring_is_scraped_with_the_ca_file_and_refused_without() {
    let server = start();
    let cfg = ExporterConfig {
        ca_file: Some(server.ca_file.clone()),
        timeout: Duration::from_secs(2),
        ..ExporterConfig::for_servers([server.url.clone()]).unwrap()
    };
    let trusting = Fetcher::new(&cfg).unwrap();
    let began = Instant::now();
    let answers = loop {
        let mut all = trusting.scrape().await;
        if all[0].get(Endpoint::Varz).is_some() {
            break all.remove(0);
        }
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "no HTTPS answer: {:?}",
            all[0].answers
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (s, name) = collect::server(&answers, None, Options::default());
    assert_eq!(name.as_deref(), Some("tls-1"));
    assert_eq!(
        s.value("nats_exporter_up", &[("server_id", "tls-1")]),
        Some(1.0)
    );
    assert!(s
        .value("gnatsd_varz_connections", &[("server_id", "tls-1")])
        .is_some());

    // Without the CA the certificate is not trusted: the server counts as not answering.
    let untrusting = Fetcher::new(&ExporterConfig {
        ca_file: None,
        ..cfg.clone()
    })
    .unwrap();
    let answers = untrusting.scrape().await.remove(0);
    let varz = answers
        .answers
        .iter()
        .find(|(e, _)| *e == Endpoint::Varz)
        .unwrap();
    assert!(varz.1.is_err(), "{varz:?}");
    let (s, _) = collect::server(&answers, None, Options::default());
    assert_eq!(s.value("nats_exporter_up", &[]), Some(0.0));
    assert_eq!(s.families.len(), 3, "{:?}", s.families.keys());

    // A password in the URL stays out of errors and labels.
    let with_password = server.url.replace("https://", "https://mon:s3cret@");
    let cfg = ExporterConfig {
        ca_file: None,
        ..ExporterConfig::for_servers([with_password]).unwrap()
    };
    let answers = Fetcher::new(&cfg).unwrap().scrape().await.remove(0);
    let shown = format!("{:?} {}", answers.answers, answers.url);
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(answers.url.contains("mon:<redacted>@"), "{}", answers.url);
}
