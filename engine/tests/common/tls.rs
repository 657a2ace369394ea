//! A throwaway public-key infrastructure made with the `openssl` command:
//! a certificate authority and a server certificate it signs, and a
//! rustls client configuration that trusts that authority and nothing else.
//! For TLS termination in front of the engine (HAProxy's `wss://`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_tungstenite::Connector;

/// A CA, and a server certificate from it, in a directory.
pub struct TestPki {
    /// The CA certificate (PEM), what clients trust.
    pub ca_cert: PathBuf,
    /// The server certificate followed by its private key (PEM), the file
    /// HAProxy's `crt` wants.
    pub server_pem: PathBuf,
}

/// Runs `openssl ARGS` in `dir`, failing the test with its output.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (Debian's `openssl` package)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestPki {
    /// Makes a CA named `ca_name` and a server certificate it signs for
    /// `ringecho.test` and the IP addresses `ips` (EC P-256, valid two
    /// days), in `dir`.
    pub fn create(dir: &Path, ca_name: &str, ips: &[&str]) -> TestPki {
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let ca_subject = format!("/CN={ca_name}");
        let mut ca = vec![
            "req", "-x509", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem",
        ];
        ca.extend(ec);
        ca.extend([
            "-subj",
            &ca_subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &ca);
        let mut request = vec!["req", "-keyout", "server.key", "-out", "server.csr"];
        request.extend(ec);
        request.extend(["-subj", "/CN=ringecho.test"]);
        openssl(dir, &request);
        let names: Vec<String> = std::iter::once("DNS:ringecho.test".to_owned())
            .chain(ips.iter().map(|ip| format!("IP:{ip}")))
            .collect();
        std::fs::write(
            dir.join("server.ext"),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
                names.join(",")
            ),
        )
        .expect("write server.ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("read PEM");
        let server_pem = dir.join("server.pem");
        std::fs::write(&server_pem, read("server.crt") + &read("server.key"))
            .expect("write server.pem");
        TestPki {
            ca_cert: dir.join("ca.pem"),
            server_pem,
        }
    }
}

/// A rustls connector for tokio-tungstenite that trusts only the CA
/// certificate in `ca_pem`.
pub fn connector_trusting(ca_pem: &Path) -> Connector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).expect("read the CA certificate") {
        roots
            .add(cert.expect("a PEM certificate"))
            .expect("a usable CA certificate");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("rustls' default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Connector::Rustls(Arc::new(config))
}
