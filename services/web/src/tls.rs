//! HTTPS: a certificate chain and a private key in PEM files, served with rustls
//! (the `ring` provider, the one reqwest already brings), HTTP/1.1 only, TLS 1.2 and
//! 1.3.
//!
//! Reverse proxies that terminate TLS themselves can leave this off; anything that
//! carries bearer tokens across a network should not (docs/security.md).

use std::path::PathBuf;
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::WebError;

/// Where the server's certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsConfig {
    /// Reads both files and builds the server configuration; the error names the file
    /// at fault, never the key's contents.
    pub fn load(&self) -> Result<RustlsConfig, WebError> {
        let tls = |what: &str, path: &PathBuf, e: &dyn std::fmt::Display| {
            WebError::Tls(format!("{what} {}: {e}", path.display()))
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| tls("certificate", &self.cert, &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| tls("certificate", &self.cert, &e))?;
        if certs.is_empty() {
            return Err(tls(
                "certificate",
                &self.cert,
                &"no certificate in the file",
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| tls("private key", &self.key, &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| WebError::Tls(format!("protocol versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| tls("certificate and key", &self.cert, &e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(RustlsConfig::from_config(Arc::new(config)))
    }
}
