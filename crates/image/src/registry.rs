//! Talking to registries: client set-up, credentials and error mapping.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use servin_api::{Digest, ImageRef};

use crate::StoreError;

/// Credentials for one registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// An identity token or registry token used as a bearer token.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username})"),
            Credentials::Token(_) => f.write_str("Token"),
        }
    }
}

impl Credentials {
    pub(crate) fn to_oci(&self) -> RegistryAuth {
        match self {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credentials::Token(t) => RegistryAuth::Bearer(t.clone()),
        }
    }
}

/// Registries reached over plain HTTP: loopback ones always (as Docker
/// treats 127.0.0.0/8), others when configured `--insecure-registry`.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    pub insecure: Vec<String>,
    /// Inside a VM guest, the address that reaches the host's loopback
    /// (`--host-gateway`): a registry named `127.0.0.1:PORT` or
    /// `localhost:PORT` is the host's, so the engine forwards the guest's
    /// `127.0.0.1:PORT` there. Image names keep their registry as written.
    pub host_gateway: Option<std::net::IpAddr>,
    /// Loopback ports already forwarded to the host gateway (shared by clones).
    pub forwarded: Forwarded,
}

/// The loopback ports a [`RegistryConfig`] forwards to its host gateway.
#[derive(Debug, Clone, Default)]
pub struct Forwarded(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<u16>>>);

/// `(host, port)` of a registry domain (`host`, `host:port`, `[v6]:port`).
fn split_domain(domain: &str) -> (&str, Option<u16>) {
    match domain.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h, p.parse().ok())
        }
        _ => (domain, None),
    }
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
        || host == "[::1]"
}

impl RegistryConfig {
    pub fn is_insecure(&self, domain: &str) -> bool {
        let (host, _) = split_domain(domain);
        is_loopback_host(host) || self.insecure.iter().any(|i| i == domain || i == host)
    }

    /// With a host gateway, makes sure the guest's loopback port of a
    /// loopback registry is forwarded to the same port on the gateway.
    /// Once per port; a port something in the guest already listens on is
    /// left to it.
    fn forward_loopback(&self, domain: &str) {
        let Some(gateway) = self.host_gateway else {
            return;
        };
        let (host, port) = split_domain(domain);
        if !is_loopback_host(host) {
            return;
        }
        let port = port.unwrap_or(80);
        let mut forwarded = self.forwarded.0.lock().unwrap_or_else(|e| e.into_inner());
        if forwarded.contains(&port) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        forwarded.insert(port);
        let listener = match std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(port, error = %e, "cannot forward a loopback registry port to the host");
                return;
            }
        };
        tracing::info!(port, %gateway, "forwarding loopback registry port to the host");
        runtime.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                tokio::spawn(async move {
                    match tokio::net::TcpStream::connect((gateway, port)).await {
                        Ok(mut outbound) => {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                        Err(e) => {
                            tracing::warn!(port, %gateway, error = %e, "cannot reach the host's registry")
                        }
                    }
                });
            }
        });
    }

    pub(crate) fn client(&self, domain: &str) -> Client {
        self.forward_loopback(domain);
        let protocol = if self.is_insecure(domain) {
            ClientProtocol::HttpsExcept(vec![domain.to_string()])
        } else {
            ClientProtocol::Https
        };
        Client::new(ClientConfig {
            protocol,
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(15)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            user_agent: concat!("servin/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        })
    }
}

pub(crate) fn oci_ref(r: &ImageRef) -> Reference {
    match (r.tag(), r.digest()) {
        (_, Some(d)) => Reference::with_digest(r.domain().into(), r.path().into(), d.to_string()),
        (Some(t), None) => Reference::with_tag(r.domain().into(), r.path().into(), t.into()),
        (None, None) => Reference::with_tag(
            r.domain().into(),
            r.path().into(),
            servin_api::DEFAULT_TAG.into(),
        ),
    }
}

pub(crate) fn oci_ref_digest(r: &ImageRef, d: &Digest) -> Reference {
    Reference::with_digest(r.domain().into(), r.path().into(), d.to_string())
}

/// Turns a registry client error into a store error with a message that
/// names the registry and what went wrong, in Docker's words where it has them.
pub(crate) fn map_error(what: &str, e: OciDistributionError) -> StoreError {
    use OciDistributionError as E;
    match e {
        E::UnauthorizedError { url } => StoreError::Unauthorized(format!(
            "{what}: unauthorized: authentication required (registry answered 401 for {url})"
        )),
        E::AuthenticationFailure(m) => {
            StoreError::Unauthorized(format!("{what}: unauthorized: {m}"))
        }
        E::ImageManifestNotFoundError(_) => {
            StoreError::NotFound(format!("manifest for {what} not found: manifest unknown"))
        }
        E::RegistryError { envelope, url } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}", e.code).to_lowercase())
                .collect();
            let text = envelope
                .errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ");
            let has = |c: &str| codes.iter().any(|x| x == c);
            if has("manifestunknown") || has("nameunknown") || has("notfound") {
                StoreError::NotFound(format!("manifest for {what} not found: {text}"))
            } else if has("unauthorized") || has("denied") {
                StoreError::Unauthorized(format!("{what}: unauthorized: {text}"))
            } else {
                StoreError::Registry(format!("{what}: registry error at {url}: {text}"))
            }
        }
        E::ServerError {
            code: 404,
            url,
            message,
        } => StoreError::NotFound(format!("manifest for {what} not found: {message} ({url})")),
        E::ServerError { code, url, message } if code == 401 || code == 403 => {
            StoreError::Unauthorized(format!(
                "{what}: unauthorized: {message} ({url}, status {code})"
            ))
        }
        E::ServerError { code, url, message } => StoreError::Registry(format!(
            "{what}: registry answered {code} for {url}: {message}"
        )),
        E::RequestError(re) => {
            let mut msg = re.to_string();
            let mut src = std::error::Error::source(&re);
            while let Some(s) = src {
                let t = s.to_string();
                if !msg.contains(&t) {
                    msg.push_str(": ");
                    msg.push_str(&t);
                }
                src = s.source();
            }
            StoreError::Registry(format!("{what}: cannot reach the registry: {msg}"))
        }
        E::DigestError(d) => StoreError::Registry(format!("{what}: {d}")),
        other => StoreError::Registry(format!("{what}: {other}")),
    }
}

/// Checks credentials against a registry, as `docker login` asks the daemon to.
pub async fn login(
    registries: &RegistryConfig,
    server: &str,
    credentials: &Credentials,
) -> Result<(), StoreError> {
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    let host = match host {
        "" | "index.docker.io" | "registry-1.docker.io" => servin_api::DEFAULT_REGISTRY,
        h => h,
    };
    let probe = ImageRef::parse(&format!("{host}/library/login-probe"))
        .map_err(|_| StoreError::InvalidArgument(format!("Invalid registry address {server:?}")))?;
    let client = registries.client(probe.domain());
    let oref = oci_ref(&probe);
    let auth = credentials.to_oci();
    let what = format!("login to {host}");
    client
        .auth(&oref, &auth, RegistryOperation::Pull)
        .await
        .map_err(|e| map_error(&what, e))?;
    // Registries with basic auth only answer 401 on a real request.
    match client.catalog(&oref, &auth, Some(1), None).await {
        Err(e) => match map_error(&what, e) {
            err @ (StoreError::Unauthorized(_) | StoreError::Registry(_))
                if is_auth_failure(&err) =>
            {
                Err(err)
            }
            _ => Ok(()),
        },
        Ok(_) => Ok(()),
    }
}

fn is_auth_failure(e: &StoreError) -> bool {
    match e {
        StoreError::Unauthorized(_) => true,
        StoreError::Registry(m) => m.contains(" 401 ") || m.to_lowercase().contains("unauthorized"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_insecure() {
        let c = RegistryConfig::default();
        assert!(c.is_insecure("127.0.0.1:5000"));
        assert!(c.is_insecure("localhost:5000"));
        assert!(c.is_insecure("localhost"));
        assert!(!c.is_insecure("registry.example:5000"));
        assert_eq!(split_domain("[::1]:5000"), ("[::1]", Some(5000)));
    }

    /// The guest's 127.0.0.1:PORT reaches the same port on the gateway.
    #[tokio::test]
    async fn loopback_registry_port_is_forwarded_to_the_gateway() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // The "host" registry: a listener on another loopback address.
        let host = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
        let port = host.local_addr().unwrap().port();
        let config = RegistryConfig {
            host_gateway: Some("127.0.0.2".parse().unwrap()),
            ..Default::default()
        };
        let _client = config.client(&format!("127.0.0.1:{port}"));
        let server = tokio::spawn(async move {
            let (mut s, _) = host.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(b"pong").await.unwrap();
            buf
        });
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut reply = [0u8; 4];
        c.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"pong");
        assert_eq!(&server.await.unwrap(), b"ping");
    }
}
