//! A self-signed certificate for `--tls`, for clients that only speak HTTPS
//! (and, on the Pub/Sub API's address, gRPC over TLS).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A certificate for localhost and 127.0.0.1 and its key.
pub struct SelfSigned {
    /// Where its PEM is written, for clients to trust.
    pub pem_path: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
    cert: rcgen::Certificate,
    key_der: Vec<u8>,
}

impl SelfSigned {
    /// Makes the certificate and writes its PEM into `dir`.
    pub fn create(dir: &Path) -> Result<SelfSigned, String> {
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .map_err(|e| format!("cannot make a certificate: {e}"))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let pem_path = dir.join("sfsim-cert.pem");
        let cert_pem = certified.cert.pem();
        std::fs::write(&pem_path, &cert_pem)
            .map_err(|e| format!("cannot write {}: {e}", pem_path.display()))?;
        Ok(SelfSigned {
            pem_path,
            cert_pem,
            key_pem: certified.signing_key.serialize_pem(),
            key_der: certified.signing_key.serialize_der(),
            cert: certified.cert,
        })
    }

    /// An acceptor serving the certificate over HTTP/1.1.
    pub fn http_acceptor(&self) -> Result<TlsAcceptor, String> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.der().clone()], key)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}
