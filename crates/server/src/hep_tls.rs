//! HEP over TLS: the listener's certificate chain, private key and (optionally) the CA that
//! client certificates must chain to, loaded from PEM files into a rustls server
//! configuration. Errors name the configuration key and the file, never a key's contents.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// What is wrong with one of the TLS settings.
#[derive(Debug)]
pub struct TlsSetupError {
    /// The configuration key at fault, such as `hep.tls_key_file`.
    pub key: &'static str,
    pub message: String,
}

fn err(key: &'static str, message: impl Into<String>) -> TlsSetupError {
    TlsSetupError {
        key,
        message: message.into(),
    }
}

/// Every certificate in a PEM file, in file order.
fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let shown = path.display();
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(key, format!("{shown}: {}", pem_message(&e))))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(key, format!("{shown}: {}", pem_message(&e))))?;
    if certs.is_empty() {
        return Err(err(
            key,
            format!("{shown} holds no certificate (PEM \"BEGIN CERTIFICATE\" blocks)"),
        ));
    }
    Ok(certs)
}

/// A PEM error in words; an unreadable file says why (permissions, missing).
fn pem_message(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => format!("cannot be read: {io}"),
        Error::NoItemsFound => "holds no PEM item of the expected kind".to_owned(),
        other => format!("is not valid PEM: {other:?}"),
    }
}

/// The server configuration of the HEP/TLS listener: `cert` (the certificate chain, the
/// listener's own first), `key` (its private key: PKCS#8, PKCS#1 RSA or SEC1 EC) and, when
/// given, `client_ca`: then every client must present a certificate chaining to one of its
/// certificates, and one that does not is refused during the handshake.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let chain = certificates("hep.tls_cert_file", cert)?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "holds no private key (PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\")"
                    .to_owned()
            }
            other => pem_message(&other),
        };
        err("hep.tls_key_file", format!("{}: {why}", key.display()))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err("hep.tls_cert_file", e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certificates("hep.tls_client_ca_file", ca)? {
                roots.add(c).map_err(|e| {
                    err(
                        "hep.tls_client_ca_file",
                        format!("{}: a certificate is not usable as a CA: {e}", ca.display()),
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| err("hep.tls_client_ca_file", format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(chain, private).map_err(|e| {
        let why = match e {
            rustls::Error::InconsistentKeys(_) => {
                "does not match the certificate of hep.tls_cert_file".to_owned()
            }
            other => format!("cannot be used with the certificate: {other}"),
        };
        err("hep.tls_key_file", format!("{}: {why}", key.display()))
    })?;
    // No TLS 1.3 session tickets: agents hold one long connection, and a ticket is data the
    // agent never reads. A peer that closes its socket with unread data in it resets the
    // connection, and the kernel then discards what the collector had not read yet.
    cfg.send_tls13_tickets = 0;
    Ok(Arc::new(cfg))
}
