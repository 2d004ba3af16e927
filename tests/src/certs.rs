//! Throwaway TLS certificates for tests, made at run time with the `openssl` command
//! into a directory the test owns: a CA, a server certificate for `127.0.0.1` and
//! `localhost`, and a client certificate (mutual TLS). Nothing is committed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::output;
use crate::HarnessError;

/// The PEM files of a test CA and the certificates it signed.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server certificate (SANs `127.0.0.1`, `localhost`).
    pub server_cert: PathBuf,
    /// The server key.
    pub server_key: PathBuf,
    /// The client certificate.
    pub client_cert: PathBuf,
    /// The client key.
    pub client_key: PathBuf,
}

impl TestCerts {
    /// Makes the CA and both certificates in `dir` (P-256 keys, valid one day).
    pub fn generate(dir: &Path) -> Result<TestCerts, HarnessError> {
        let p = |name: &str| dir.join(name);
        let ossl = |args: &[&str]| output(Command::new("openssl").args(args).current_dir(dir));
        ossl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=imgcrawl test ca",
        ])?;
        for (name, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
            ),
            (
                "client",
                "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
            ),
        ] {
            std::fs::write(p(&format!("{name}.ext")), ext)
                .map_err(HarnessError::io(format!("write {name}.ext")))?;
            let (key, csr, pem, extf) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("{name}.ext"),
            );
            ossl(&[
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", &key, "-out", &csr, "-subj", &format!("/CN=imgcrawl test {name}"),
            ])?;
            ossl(&[
                "x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", &pem, "-days", "1", "-extfile", &extf,
            ])?;
        }
        Ok(TestCerts {
            ca: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            client_cert: p("client.pem"),
            client_key: p("client.key"),
        })
    }

    /// A nats-server `tls { … }` block with these files; `verify` asks clients for a
    /// certificate signed by the CA (mutual TLS).
    pub fn nats_tls_block(&self, verify: bool) -> String {
        format!(
            "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  verify: {verify}\n  timeout: 5\n}}\n",
            self.server_cert, self.server_key, self.ca
        )
    }
}
