//! The sink's STARTTLS identity: a self-signed certificate made when the sink starts.
//!
//! Generating the certificate at start keeps the sink free of fixture files; tests that want
//! to verify the server can pin [`crate::SmtpSink::certificate_der`].

use std::io;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Names the certificate is issued for; clients under test connect by one of these or by IP.
const CERTIFICATE_NAMES: [&str; 3] = ["localhost", "sink.test", "127.0.0.1"];

/// A ready-to-use TLS acceptor and the DER certificate it presents.
#[derive(Clone)]
pub(crate) struct TlsIdentity {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) certificate: CertificateDer<'static>,
}

impl TlsIdentity {
    /// Generates a fresh self-signed certificate and a server configuration around it.
    pub(crate) fn self_signed() -> io::Result<TlsIdentity> {
        let names = CERTIFICATE_NAMES.map(str::to_owned).to_vec();
        let generated = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
        let certificate = generated.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(vec![certificate.clone()], PrivateKeyDer::Pkcs8(key))
            .map_err(io::Error::other)?;
        Ok(TlsIdentity {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        })
    }
}
