//! TLS to the broker: the rustls client config that `[mqtt.tls]` describes.
//!
//! - The files are PEM and read once, when the gateway starts ([`load`]); every error names the
//!   config key and the file (the cause is its `source`, printed by `{:#}` at the binary's edge), so a wrong path, a DER file or a key of another certificate stops
//!   the start with a sentence an installer can act on. Building from the read bytes
//!   ([`build`]) does no I/O.
//! - The broker's certificate must chain to `ca_file`'s certificates, or to Mozilla's roots
//!   (built in, an edge box may have no system store) when there is no `ca_file`. There is no
//!   switch to skip verification.
//! - Crypto is ring, named here rather than taken from the process default, TLS 1.2 and 1.3.
//! - rumqttc checks the certificate against `mqtt.host`; `server_name` replaces that name in the
//!   check (the SNI rumqttc sends is still the host's, and none for an IP address).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::MqttTlsConfig;

/// Why the TLS settings cannot be used; each names the key and, where there is one, the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{key}: cannot read {}", path.display())]
    Read {
        /// The config key that names the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file has no PEM section of the kind the key needs.
    #[error("{key}: {} holds no PEM {what} (is it DER, or the wrong file?)", path.display())]
    NoPem {
        /// The config key that names the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What was looked for: `CERTIFICATE` or `PRIVATE KEY`.
        what: &'static str,
    },
    /// A PEM section is broken.
    #[error("{key}: {} is not valid PEM", path.display())]
    BadPem {
        /// The config key that names the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        source: rustls::pki_types::pem::Error,
    },
    /// A CA certificate is not one webpki can use.
    #[error("mqtt.tls.ca_file: {} holds a certificate that cannot be used", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The private key is not the one of the client certificate.
    #[error(
        "mqtt.tls.client_key_file: {} is not the key of the certificate in {}",
        key_path.display(),
        cert_path.display()
    )]
    KeyMismatch {
        /// The key file.
        key_path: PathBuf,
        /// The certificate file.
        cert_path: PathBuf,
    },
    /// The client certificate and key cannot be used together for another reason.
    #[error("mqtt.tls.client_cert_file and client_key_file cannot be used together")]
    ClientAuth {
        /// What rustls said.
        source: rustls::Error,
    },
    /// Only one of the client certificate and its key is given.
    #[error(
        "mqtt.tls.{given} is set but mqtt.tls.{missing} is not: a client certificate needs both"
    )]
    HalfClientAuth {
        /// The key that is set.
        given: &'static str,
        /// The key that is missing.
        missing: &'static str,
    },
    /// `server_name` is neither a DNS name nor an IP address.
    #[error("mqtt.tls.server_name: {name:?} is not a DNS name or an IP address")]
    ServerName {
        /// The name as configured.
        name: String,
    },
    /// rustls refused the setup itself (protocol versions, verifier).
    #[error("mqtt.tls: {0}")]
    Setup(String),
}

/// A file named by a config key, read.
#[derive(Clone, Debug)]
pub struct PemFile {
    /// The config key that names it, for error messages.
    pub key: &'static str,
    /// Where it was read from.
    pub path: PathBuf,
    /// Its contents.
    pub bytes: Vec<u8>,
}

impl PemFile {
    /// Reads the file `path` named by `key`.
    pub fn read(key: &'static str, path: &Path) -> Result<Self, TlsError> {
        let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
            key,
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            key,
            path: path.to_owned(),
            bytes,
        })
    }

    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certs = CertificateDer::pem_slice_iter(&self.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| self.bad_pem(source))?;
        if certs.is_empty() {
            return Err(self.no_pem("CERTIFICATE"));
        }
        Ok(certs)
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(&self.bytes).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => self.no_pem("PRIVATE KEY"),
            other => self.bad_pem(other),
        })
    }

    fn no_pem(&self, what: &'static str) -> TlsError {
        TlsError::NoPem {
            key: self.key,
            path: self.path.clone(),
            what,
        }
    }

    fn bad_pem(&self, source: rustls::pki_types::pem::Error) -> TlsError {
        TlsError::BadPem {
            key: self.key,
            path: self.path.clone(),
            source,
        }
    }
}

/// The client certificate chain and its private key, read.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    /// `mqtt.tls.client_cert_file`.
    pub cert: PemFile,
    /// `mqtt.tls.client_key_file`.
    pub key: PemFile,
}

/// Reads the files `cfg` names and builds the client config; `None` when TLS is off.
pub fn load(cfg: &MqttTlsConfig) -> Result<Option<Arc<ClientConfig>>, TlsError> {
    if !cfg.enabled {
        return Ok(None);
    }
    let ca = cfg
        .ca_file
        .as_deref()
        .map(|p| PemFile::read("mqtt.tls.ca_file", p))
        .transpose()?;
    let identity = match (&cfg.client_cert_file, &cfg.client_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(ClientIdentity {
            cert: PemFile::read("mqtt.tls.client_cert_file", cert)?,
            key: PemFile::read("mqtt.tls.client_key_file", key)?,
        }),
        (Some(_), None) => {
            return Err(TlsError::HalfClientAuth {
                given: "client_cert_file",
                missing: "client_key_file",
            })
        }
        (None, Some(_)) => {
            return Err(TlsError::HalfClientAuth {
                given: "client_key_file",
                missing: "client_cert_file",
            })
        }
    };
    build(ca.as_ref(), identity.as_ref(), cfg.server_name.as_deref()).map(|c| Some(Arc::new(c)))
}

/// Builds the client config from files already read: trust `ca` (or Mozilla's roots), present
/// `identity` if the broker asks for a certificate, and check the broker's certificate against
/// `server_name` instead of the host when given.
pub fn build(
    ca: Option<&PemFile>,
    identity: Option<&ClientIdentity>,
    server_name: Option<&str>,
) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(file) => {
            for cert in file.certificates()? {
                roots.add(cert).map_err(|source| TlsError::BadCa {
                    path: file.path.clone(),
                    source,
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = match server_name {
        None => builder.with_root_certificates(roots),
        Some(name) => {
            let name = ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName {
                name: name.to_owned(),
            })?;
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Setup(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(FixedName { inner, name }))
        }
    };
    let Some(identity) = identity else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = identity.cert.certificates()?;
    let key = identity.key.private_key()?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|source| match source {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::KeyMismatch {
                    key_path: identity.key.path.clone(),
                    cert_path: identity.cert.path.clone(),
                }
            }
            source => TlsError::ClientAuth { source },
        })
}

/// Full webpki verification, against a configured name rather than the one connected to.
#[derive(Debug)]
struct FixedName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _connected_to: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::ServerName;
    use rustls::{ClientConnection, ServerConfig, ServerConnection};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A CA, and a server certificate it signed for `names`.
    struct Pki {
        ca_pem: String,
        server_chain: Vec<CertificateDer<'static>>,
        server_key: PrivateKeyDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    }

    /// CAs carry distinct names: webpki looks an issuer up by name, so a stranger CA of the
    /// same name would be found and fail on its signature instead.
    fn pki(names: &[&str]) -> Pki {
        static CAS: AtomicUsize = AtomicUsize::new(0);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let n = CAS.fetch_add(1, Ordering::Relaxed);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("test CA {n}"));
        let ca_key = KeyPair::generate().unwrap();
        let ca_pem = params.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(params, ca_key);
        let (cert, key) = leaf(&issuer, names);
        Pki {
            ca_pem,
            server_chain: vec![cert.der().clone()],
            server_key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            issuer,
        }
    }

    fn leaf(issuer: &Issuer<'_, KeyPair>, names: &[&str]) -> (rcgen::Certificate, KeyPair) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, issuer)
            .unwrap();
        (cert, key)
    }

    fn file(key: &'static str, bytes: impl Into<Vec<u8>>) -> PemFile {
        PemFile {
            key,
            path: PathBuf::from(format!("/etc/gridwatch/{key}.pem")),
            bytes: bytes.into(),
        }
    }

    /// Runs a handshake in memory between `client` connecting to `host` and a server with `pki`'s
    /// certificate; the client's error if it fails.
    fn handshake(client: ClientConfig, host: &str, pki: &Pki) -> Result<(), rustls::Error> {
        let server =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
                .unwrap();
        let name = ServerName::try_from(host.to_owned()).unwrap();
        let mut c = ClientConnection::new(Arc::new(client), name).unwrap();
        let mut s = ServerConnection::new(Arc::new(server)).unwrap();
        while c.is_handshaking() || s.is_handshaking() {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut buf.as_slice()).unwrap();
            // The server's view of a failure reaches the client as an alert on the next turn.
            let _ = s.process_new_packets();
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets()?;
        }
        Ok(())
    }

    #[test]
    fn a_broker_certificate_from_the_configured_ca_is_accepted() {
        let pki = pki(&["127.0.0.1"]);
        let ca = file("mqtt.tls.ca_file", pki.ca_pem.clone());
        let config = build(Some(&ca), None, None).unwrap();
        assert_eq!(handshake(config, "127.0.0.1", &pki), Ok(()));
    }

    #[test]
    fn a_broker_certificate_from_another_ca_is_refused() {
        let pki = pki(&["127.0.0.1"]);
        let other = self::pki(&["127.0.0.1"]);
        let ca = file("mqtt.tls.ca_file", other.ca_pem);
        let config = build(Some(&ca), None, None).unwrap();
        assert_eq!(
            handshake(config, "127.0.0.1", &pki),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        );
    }

    #[test]
    fn without_a_ca_file_a_private_ca_is_not_trusted() {
        let pki = pki(&["127.0.0.1"]);
        let config = build(None, None, None).unwrap();
        assert!(matches!(
            handshake(config, "127.0.0.1", &pki),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ));
    }

    #[test]
    fn a_certificate_for_another_name_is_refused_unless_server_name_says_so() {
        let pki = pki(&["broker.example.org"]);
        let ca = file("mqtt.tls.ca_file", pki.ca_pem.clone());
        let plain = build(Some(&ca), None, None).unwrap();
        assert!(matches!(
            handshake(plain, "127.0.0.1", &pki),
            Err(rustls::Error::InvalidCertificate(_))
        ));
        let named = build(Some(&ca), None, Some("broker.example.org")).unwrap();
        assert_eq!(handshake(named, "127.0.0.1", &pki), Ok(()));
        let wrong = build(Some(&ca), None, Some("other.example.org")).unwrap();
        assert!(matches!(
            handshake(wrong, "127.0.0.1", &pki),
            Err(rustls::Error::InvalidCertificate(_))
        ));
    }

    #[test]
    fn a_missing_file_is_refused_naming_the_key_and_the_file() {
        let cfg = MqttTlsConfig {
            enabled: true,
            ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..MqttTlsConfig::default()
        };
        let e = load(&cfg).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mqtt.tls.ca_file: cannot read /nonexistent/ca.pem"
        );
        assert!(
            matches!(&e, TlsError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{e:?}"
        );
    }

    #[test]
    fn tls_is_off_unless_enabled_and_then_reads_no_file() {
        let cfg = MqttTlsConfig {
            ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..MqttTlsConfig::default()
        };
        assert!(load(&cfg).unwrap().is_none());
    }

    #[test]
    fn a_ca_file_without_pem_is_refused_naming_the_key_and_the_file() {
        let pki = pki(&["127.0.0.1"]);
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pki.ca_pem.as_bytes())
            .unwrap()
            .to_vec();
        let e = build(Some(&file("mqtt.tls.ca_file", der)), None, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mqtt.tls.ca_file: /etc/gridwatch/mqtt.tls.ca_file.pem holds no PEM CERTIFICATE \
             (is it DER, or the wrong file?)"
        );
    }

    #[test]
    fn a_truncated_pem_section_is_refused() {
        let e = build(
            Some(&file(
                "mqtt.tls.ca_file",
                "-----BEGIN CERTIFICATE-----\nMIIB\n",
            )),
            None,
            None,
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                TlsError::BadPem {
                    key: "mqtt.tls.ca_file",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_client_key_of_another_certificate_is_refused_naming_both_files() {
        let pki = pki(&["127.0.0.1"]);
        let (cert, _) = leaf(&pki.issuer, &["gridwatch-gateway"]);
        let (_, other_key) = leaf(&pki.issuer, &["gridwatch-gateway"]);
        let identity = ClientIdentity {
            cert: file("mqtt.tls.client_cert_file", cert.pem()),
            key: file("mqtt.tls.client_key_file", other_key.serialize_pem()),
        };
        let ca = file("mqtt.tls.ca_file", pki.ca_pem.clone());
        let e = build(Some(&ca), Some(&identity), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mqtt.tls.client_key_file: /etc/gridwatch/mqtt.tls.client_key_file.pem is not the key \
             of the certificate in /etc/gridwatch/mqtt.tls.client_cert_file.pem"
        );
    }

    #[test]
    fn a_client_certificate_with_its_own_key_is_accepted() {
        let pki = pki(&["127.0.0.1"]);
        let (cert, key) = leaf(&pki.issuer, &["gridwatch-gateway"]);
        let identity = ClientIdentity {
            cert: file("mqtt.tls.client_cert_file", cert.pem()),
            key: file("mqtt.tls.client_key_file", key.serialize_pem()),
        };
        let ca = file("mqtt.tls.ca_file", pki.ca_pem.clone());
        let config = build(Some(&ca), Some(&identity), None).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn a_certificate_file_given_as_the_key_is_refused() {
        let pki = pki(&["127.0.0.1"]);
        let (cert, _) = leaf(&pki.issuer, &["gridwatch-gateway"]);
        let identity = ClientIdentity {
            cert: file("mqtt.tls.client_cert_file", cert.pem()),
            key: file("mqtt.tls.client_key_file", cert.pem()),
        };
        let e = build(None, Some(&identity), None).unwrap_err();
        assert!(
            matches!(
                e,
                TlsError::NoPem {
                    key: "mqtt.tls.client_key_file",
                    what: "PRIVATE KEY",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_client_certificate_without_its_key_is_refused() {
        let cfg = MqttTlsConfig {
            enabled: true,
            client_cert_file: Some(PathBuf::from("/etc/gridwatch/gw.crt")),
            ..MqttTlsConfig::default()
        };
        assert_eq!(
            load(&cfg).unwrap_err().to_string(),
            "mqtt.tls.client_cert_file is set but mqtt.tls.client_key_file is not: a client \
             certificate needs both"
        );
    }

    #[test]
    fn a_server_name_that_is_no_name_is_refused() {
        let e = build(None, None, Some("not a name!")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mqtt.tls.server_name: \"not a name!\" is not a DNS name or an IP address"
        );
    }
}
