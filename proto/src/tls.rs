//! Mutual TLS for every Chipward gRPC connection (rustls, ring provider,
//! through tonic).
//!
//! A deployment has one TLS CA. Servers present a certificate from it and
//! accept only clients whose certificate chains to it; clients check the
//! server's certificate against the same CA and name. What a client may do
//! is read from its certificate by [`crate::access`].
//!
//! Key files are PEM PKCS#8 (`PRIVATE KEY`), as `chipward-pki tls-*`
//! writes them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};
use zeroize::Zeroizing;

/// How long a server waits for a client to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The server name clients expect by default: every certificate
/// `chipward-pki tls-server` makes names it.
pub const DEFAULT_SERVER_NAME: &str = "localhost";
/// Largest PEM file read.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// Why TLS material could not be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than any certificate or key.
    #[error("{path} is larger than {MAX_PEM_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A file does not hold what it should.
    #[error("{path} holds no PEM {what}")]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
    },
    /// The endpoint URL is not usable.
    #[error("endpoint {url:?} refused")]
    Endpoint {
        /// The URL given.
        url: String,
        /// What tonic said.
        #[source]
        source: tonic::transport::Error,
    },
}

/// The three PEM files of one party: the deployment's CA certificate, the
/// party's certificate (chain) and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate that peers' certificates must chain to.
    pub ca: PathBuf,
    /// This party's certificate, leaf first.
    pub cert: PathBuf,
    /// This party's private key (PKCS#8 PEM, owner-only permissions).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files `<name>.pem` and `<name>.key` beside `ca.pem` in `dir`,
    /// the layout `chipward-pki tls-*` writes.
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        }
    }

    /// Reads all three files.
    pub fn load(&self) -> Result<TlsMaterial, TlsError> {
        let ca = read_pem(&self.ca, "CERTIFICATE")?;
        let cert = read_pem(&self.cert, "CERTIFICATE")?;
        let key = Zeroizing::new(read_pem(&self.key, "PRIVATE KEY")?);
        Ok(TlsMaterial { ca, cert, key })
    }
}

/// One party's TLS material in memory, PEM.
#[derive(Clone)]
pub struct TlsMaterial {
    /// CA certificate peers must chain to.
    pub ca: Vec<u8>,
    /// This party's certificate (chain).
    pub cert: Vec<u8>,
    /// This party's private key; wiped when dropped.
    pub key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca_bytes", &self.ca.len())
            .field("cert_bytes", &self.cert.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl TlsMaterial {
    /// A server configuration: presents this certificate, requires a client
    /// certificate chaining to the CA, and drops handshakes slower than
    /// [`HANDSHAKE_TIMEOUT`].
    // Limitation: tonic copies the key into its own identity, which is not
    // wiped when dropped; the copy lives as long as the server.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert, &*self.key))
            .client_ca_root(Certificate::from_pem(&self.ca))
            .client_auth_optional(false)
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// A client configuration that authenticates with this certificate and
    /// accepts a server certificate for `server_name` from the CA.
    pub fn client(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .identity(Identity::from_pem(&self.cert, &*self.key))
            .domain_name(server_name)
    }
}

/// An endpoint for `url` that connects with `tls`. `http://` URLs are
/// rewritten to `https://`: every Chipward server speaks TLS only.
pub fn endpoint(url: &str, tls: &ClientTlsConfig) -> Result<Endpoint, TlsError> {
    let url = match url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_owned(),
    };
    let refused = |source| TlsError::Endpoint {
        url: url.clone(),
        source,
    };
    Endpoint::from_shared(url.clone())
        .map_err(refused)?
        .tls_config(tls.clone())
        .map_err(refused)
}

/// Connects to `url` with `tls`.
pub async fn connect(url: &str, tls: &ClientTlsConfig) -> Result<Channel, TlsError> {
    let e = endpoint(url, tls)?;
    e.connect().await.map_err(|source| TlsError::Endpoint {
        url: url.to_owned(),
        source,
    })
}

/// Connects to `url` as the party `name` of the TLS folder `dir` (the
/// layout of [`TlsFiles::in_dir`]), expecting a server certificate for
/// [`DEFAULT_SERVER_NAME`].
pub async fn connect_as(dir: &Path, name: &str, url: &str) -> Result<Channel, TlsError> {
    let tls = TlsFiles::in_dir(dir, name)
        .load()?
        .client(DEFAULT_SERVER_NAME);
    connect(url, &tls).await
}

/// A channel to `url` with `tls` that connects on first use.
pub fn connect_lazy(url: &str, tls: &ClientTlsConfig) -> Result<Channel, TlsError> {
    Ok(endpoint(url, tls)?.connect_lazy())
}

fn read_pem(path: &Path, label: &'static str) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let read = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let marker = format!("-----BEGIN {label}-----");
    let holds = std::str::from_utf8(&bytes).is_ok_and(|t| t.contains(&marker));
    if !holds {
        bytes.iter_mut().for_each(|b| *b = 0);
        return Err(TlsError::NotPem {
            path: path.to_path_buf(),
            what: label,
        });
    }
    Ok(bytes)
}
