#![allow(dead_code)] // each test uses part of it
//! A throw-away PKI for HEP over TLS, made by the `openssl` command (Debian package openssl),
//! and a rustls client that uses it.

use std::path::Path;
use std::process::Command;

/// Runs `openssl` in `dir`; it must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (Debian package openssl) must be installed");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A throw-away PKI made by `openssl` in `dir`: a CA (`ca.pem`), a server certificate for
/// 127.0.0.1 and a client certificate signed by it (`server.pem`/`.key`, `client.pem`/`.key`),
/// and a self-signed client certificate no one trusts (`stranger.pem`/`.key`).
pub fn make_pki(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_ext = [
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ];
    let self_signed = |name: &str, cn: &str, ext: &[&str]| {
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={cn}"),
        );
        let mut a = vec!["req", "-x509"];
        a.extend(ec);
        a.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
        a.extend(ext);
        openssl(dir, &a);
    };
    self_signed("ca", "siphon test CA", &ca_ext);
    self_signed("stranger", "stranger", &[]);
    for (who, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{who}.ext")), ext).unwrap();
        let (key, csr, pem) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
        );
        let subj = format!("/CN={who}");
        let mut a = vec!["req"];
        a.extend(ec);
        a.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &a);
        let ext = format!("{who}.ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

/// A TLS client of `serve`'s HEP/TLS listener at `to` (mutual TLS with the client certificate
/// of the PKI in `pki`), on rustls.
pub fn tls_client(
    pki: &Path,
    to: std::net::SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let certs = |f: &str| -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(pki.join(f))
            .unwrap()
            .map(|c| c.unwrap())
            .collect()
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in certs("ca.pem") {
        roots.add(c).unwrap();
    }
    let key = PrivateKeyDer::from_pem_file(pki.join("client.key")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs("client.pem"), key)
        .unwrap();
    let name = ServerName::IpAddress(to.ip().into());
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
    rustls::StreamOwned::new(conn, std::net::TcpStream::connect(to).unwrap())
}

/// The environment that gives `serve` a HEP/TLS listener on 127.0.0.1:`port` with the PKI in
/// `pki`: the server certificate, and client certificates of the CA required.
pub fn serve_tls_env(pki: &Path, port: u16) -> Vec<(&'static str, String)> {
    let file = |n: &str| pki.join(n).display().to_string();
    vec![
        ("SIPHON_HEP_TLS_LISTEN", format!("127.0.0.1:{port}")),
        ("SIPHON_HEP_TLS_CERT_FILE", file("server.pem")),
        ("SIPHON_HEP_TLS_KEY_FILE", file("server.key")),
        ("SIPHON_HEP_TLS_CLIENT_CA_FILE", file("ca.pem")),
    ]
}
