//! TLS with rustls: the certificate and key a node serves S3, admin and peer RPC with, and
//! the CA its peer client verifies other nodes against. Without certificates a node serves
//! plain HTTP (and says so loudly at start).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Files in a certs directory (the layout MinIO users know).
pub const CERT_FILE: &str = "public.crt";
pub const KEY_FILE: &str = "private.key";
/// Optional: the CA that signed every node's certificate. Without it, `public.crt` itself
/// is trusted (a self-signed certificate shared by all nodes).
pub const CA_FILE: &str = "ca.crt";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

pub struct TlsSetup {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

fn file_error(path: &Path, message: impl ToString) -> TlsError {
    TlsError::File { path: path.display().to_string(), message: message.to_string() }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl TlsSetup {
    /// Loads `public.crt`, `private.key` and (if present) `ca.crt` from `dir`.
    pub fn from_dir(dir: &Path) -> Result<TlsSetup, TlsError> {
        let ca = dir.join(CA_FILE);
        Self::load(&dir.join(CERT_FILE), &dir.join(KEY_FILE), ca.exists().then_some(ca))
    }

    pub fn load(cert: &Path, key: &Path, ca: Option<PathBuf>) -> Result<TlsSetup, TlsError> {
        let chain = certificates(cert)?;
        let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain.clone(), private_key)
            .map_err(|e| TlsError::Config(format!("certificate and key do not fit together: {e}")))?;
        let trusted = match &ca {
            Some(ca) => certificates(ca)?,
            None => chain,
        };
        let client = client_config(trusted)?;
        Ok(TlsSetup { server: Arc::new(server), client })
    }
}

/// A client configuration that trusts exactly `trusted`.
fn client_config(trusted: Vec<CertificateDer<'static>>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in trusted {
        roots.add(certificate).map_err(|e| TlsError::Config(format!("unusable CA certificate: {e}")))?;
    }
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(client))
}

/// A client configuration that trusts the certificates in `ca` (PEM), for tools.
pub fn client_config_trusting(ca: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    client_config(certificates(ca)?)
}
