//! A throwaway certificate authority for HTTPS fakes.
//!
//! kubectl refuses exec plugins for `http://` servers, and the TLS tests need
//! three situations: a server the client trusts (CA given), one it does not
//! (CA withheld), and one whose certificate names another host. One `TestCa`
//! per test covers all three.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed CA that issues server certificates on demand.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// Generates a fresh CA key and certificate.
    ///
    /// # Panics
    /// Only if key generation itself fails (no OS randomness), which leaves
    /// nothing for a test to do.
    pub fn new() -> TestCa {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "dexcred testkit CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generate CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-sign CA");
        TestCa { issuer }
    }

    /// The CA certificate in PEM form, for `certificate-authority-data`,
    /// `http.sslCAInfo` or a client's root store.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate in DER form.
    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// Writes the CA certificate PEM to `path`.
    pub fn write_pem(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.pem())
    }

    /// Issues a server certificate for `names` and wraps it in a rustls
    /// server config. Names that parse as IP addresses become IP SANs, the
    /// rest DNS SANs. ALPN offers only `http/1.1`, so Go clients (kubectl)
    /// do not try HTTP/2, which the testkit server does not speak.
    ///
    /// # Panics
    /// If a name is not a valid DNS name or IP address (a test bug).
    pub fn server_config(&self, names: &[&str]) -> Arc<ServerConfig> {
        let (chain, key) = self.issue(names);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("freshly issued certificate matches its key");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Issues a leaf certificate and returns the chain (leaf, CA) and key.
    fn issue(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(sans).expect("valid SAN names");
        let cn = names.first().copied().unwrap_or("testkit");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("generate server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign server certificate");
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone(), self.der()], key_der)
    }
}
