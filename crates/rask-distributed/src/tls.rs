//! TLS on every connection, with mutual authentication: rustls with the `ring` provider.
//!
//! A cluster has one certificate authority. Every process (scheduler, workers, clients)
//! holds a certificate it signed and that certificate's key, presents it on every connection
//! it makes or accepts, and accepts only peers whose certificate chains to that CA and is
//! within its validity. The shared token is checked on top, inside the handshake
//! (`comm::accept`), so a stolen certificate alone is not enough.
//!
//! - [`Credentials`]: the CA certificate, a certificate and its key, as PEM text. Made fresh
//!   by [`Credentials::generate`] (what `rask scheduler` does when given none, writing them
//!   into the scheduler file, mode 0600) or read from files ([`Credentials::from_files`]).
//! - [`TlsContext`]: the rustls configurations built once from credentials, for both sides of
//!   a connection. Options carry it as `Option<Arc<TlsContext>>`; `None` is plain TCP, which
//!   only `--insecure` asks for.
//! - [`CertificateAuthority`]: a CA whose key stays in memory, to issue more certificates
//!   (tests use it for expired certificates and certificates of another CA).
//!
//! Host names are not checked, as in Dask (`tls.check_hostname` is off there too): workers
//! listen on whatever interface routes to the scheduler, and the CA is the cluster's own, so
//! "signed by our CA" is the identity that matters.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rask_error::{RaskError, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// The name every cluster certificate carries and every client asks for (not checked; see
/// the module docs).
pub const SERVER_NAME: &str = "rask-cluster";

/// How long generated certificates are valid.
const GENERATED_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

fn tls_error(what: impl std::fmt::Display, e: impl std::fmt::Display) -> RaskError {
    RaskError::invalid_argument("tls", format!("{what}: {e}"))
}

/// A CA certificate, one certificate it signed, and that certificate's private key (PEM).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never goes to logs.
        f.debug_struct("Credentials")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// A fresh CA and one certificate for the whole cluster, valid for a year. The CA's key
    /// is dropped: nobody can sign more certificates for this cluster afterwards.
    pub fn generate() -> Result<Credentials> {
        let ca = CertificateAuthority::new("rask cluster CA")?;
        let now = SystemTime::now();
        ca.issue(now - Duration::from_secs(3600), now + GENERATED_VALIDITY)
    }

    /// Reads the three PEM files; errors name the file.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Credentials> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| RaskError::io(p.display(), e));
        let creds = Credentials {
            ca_pem: read(ca)?,
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        };
        // Fail here, naming the files, rather than at the first connection.
        creds.parse().map_err(|e| {
            RaskError::invalid_argument(
                "tls files",
                format!(
                    "{} / {} / {}: {e}",
                    ca.display(),
                    cert.display(),
                    key.display()
                ),
            )
        })?;
        Ok(creds)
    }

    #[allow(clippy::type_complexity)]
    fn parse(
        &self,
    ) -> std::result::Result<
        (
            Vec<CertificateDer<'static>>,
            Vec<CertificateDer<'static>>,
            PrivateKeyDer<'static>,
        ),
        String,
    > {
        let certs = |pem: &str, what: &str| {
            let v: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| format!("{what}: {e:?}"))?;
            if v.is_empty() {
                return Err(format!("{what}: no certificate in the PEM text"));
            }
            Ok(v)
        };
        let ca = certs(&self.ca_pem, "CA certificate")?;
        let chain = certs(&self.cert_pem, "certificate")?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| format!("private key: {e:?}"))?;
        Ok((ca, chain, key))
    }
}

/// A certificate authority with its key in memory, issuing cluster certificates.
pub struct CertificateAuthority {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

fn offset_time(t: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from(t)
}

impl CertificateAuthority {
    /// A new self-signed CA named `name`, valid for ten years.
    pub fn new(name: &str) -> Result<CertificateAuthority> {
        let key = rcgen::KeyPair::generate().map_err(|e| tls_error("generating a CA key", e))?;
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| tls_error(name, e))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        params.not_before = offset_time(now - Duration::from_secs(3600));
        params.not_after = offset_time(now + 10 * GENERATED_VALIDITY);
        let cert = params
            .self_signed(&key)
            .map_err(|e| tls_error("signing the CA certificate", e))?;
        Ok(CertificateAuthority { cert, key })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for cluster members (server and client use), valid from `not_before` to
    /// `not_after`, with a fresh key.
    pub fn issue(&self, not_before: SystemTime, not_after: SystemTime) -> Result<Credentials> {
        let key = rcgen::KeyPair::generate().map_err(|e| tls_error("generating a key", e))?;
        let mut params =
            rcgen::CertificateParams::new(vec![SERVER_NAME.to_string(), "localhost".to_string()])
                .map_err(|e| tls_error("certificate parameters", e))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, SERVER_NAME);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = offset_time(not_before);
        params.not_after = offset_time(not_after);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(|e| tls_error("signing a certificate", e))?;
        Ok(Credentials {
            ca_pem: self.ca_pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A random token: 32 bytes from the system's generator, hex.
pub fn generate_token() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a scheduler secures its connections.
#[derive(Clone, Debug, Default)]
pub enum Security {
    /// TLS with a fresh CA, certificate and token made at start (the default); workers and
    /// clients get them from the scheduler file or from the `LocalCluster`.
    #[default]
    Generate,
    /// TLS with these credentials.
    Tls(Arc<TlsContext>),
    /// Plain TCP: no encryption, no certificates. Only on explicit request (`--insecure`),
    /// and said loudly in the logs.
    Insecure,
}

/// The TLS context a client or worker connects with: its own, or none when it explicitly
/// asked for plain TCP. Neither is an error naming `who` and `address`, so that "forgot the
/// credentials" never silently becomes "unencrypted".
pub(crate) fn context_for<'a>(
    tls: &'a Option<Arc<TlsContext>>,
    insecure: bool,
    who: &str,
    address: &str,
) -> Result<Option<&'a TlsContext>> {
    match (tls, insecure) {
        (Some(t), false) => Ok(Some(t)),
        (None, true) => Ok(None),
        (Some(_), true) => Err(RaskError::invalid_argument(
            "insecure",
            format!("{who}: both TLS credentials and insecure (plain TCP) were given; pick one"),
        )),
        (None, false) => Err(RaskError::invalid_argument(
            "tls",
            format!(
                "{who} has no TLS credentials for {address}: read them from the scheduler \
                 file (--scheduler-file), give --tls-ca-file/--tls-cert-file/--tls-key-file, \
                 or ask for plain TCP explicitly (--insecure)"
            ),
        )),
    }
}

/// The rustls configurations for both sides of a connection, built once.
pub struct TlsContext {
    credentials: Credentials,
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// ring's provider with AES-128-GCM first: TLS 1.3's mandatory suite, and about 30% faster
/// than AES-256-GCM per byte on AES-NI machines (4.4 vs 3.1 GB/s measured here with
/// `openssl speed`), which large values crossing between workers feel. Every other suite
/// stays available in rustls' order.
fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(p)
}

impl TlsContext {
    /// Builds both configurations; bad PEM or a key that does not match is an error here.
    pub fn new(credentials: Credentials) -> Result<Arc<TlsContext>> {
        let (ca, chain, key) = credentials
            .parse()
            .map_err(|e| tls_error("credentials", e))?;
        let mut roots = RootCertStore::empty();
        for c in ca {
            roots
                .add(c)
                .map_err(|e| tls_error("the CA certificate", e))?;
        }
        let roots = Arc::new(roots);
        let provider = provider();
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| tls_error("the client verifier", e))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("TLS versions", e))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| tls_error("the certificate and key", e))?;
        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("TLS versions", e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ClusterServerVerifier { roots, provider }))
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls_error("the certificate and key", e))?;
        Ok(Arc::new(TlsContext {
            credentials,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        }))
    }

    /// The credentials this context was built from.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub(crate) fn server_name() -> ServerName<'static> {
        ServerName::try_from(SERVER_NAME).expect("a valid DNS name")
    }
}

/// Checks a server's certificate chain against the cluster's CA and its validity at `now`,
/// not its name (see the module docs). Signatures of the handshake are checked as usual.
#[derive(Debug)]
struct ClusterServerVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ClusterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_build_a_context_and_keep_the_key_out_of_debug() {
        let c = Credentials::generate().unwrap();
        assert!(c.ca_pem.contains("BEGIN CERTIFICATE"));
        assert!(c.key_pem.contains("PRIVATE KEY"));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
        TlsContext::new(c).unwrap();
    }

    #[test]
    fn aes_128_gcm_is_preferred_and_the_rest_kept() {
        let p = provider();
        assert_eq!(
            p.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        assert_eq!(
            p.cipher_suites.len(),
            rustls::crypto::ring::default_provider().cipher_suites.len()
        );
    }

    #[test]
    fn tokens_are_long_and_different() {
        let (a, b) = (generate_token(), generate_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn bad_pem_is_an_error_naming_the_part() {
        let mut c = Credentials::generate().unwrap();
        c.key_pem = "not a key".into();
        let e = TlsContext::new(c.clone()).unwrap_err().to_string();
        assert!(e.contains("private key"), "{e}");
        c.ca_pem = String::new();
        let e = TlsContext::new(c).unwrap_err().to_string();
        assert!(e.contains("CA certificate"), "{e}");
    }

    #[test]
    fn from_files_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = Credentials::from_files(&missing, &missing, &missing)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.pem"), "{e}");
    }
}
