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
}

impl RegistryConfig {
    pub fn is_insecure(&self, domain: &str) -> bool {
        let host = domain.rsplit_once(':').map_or(domain, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                domain
            }
        });
        host == "localhost"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
            || host == "[::1]"
            || self.insecure.iter().any(|i| i == domain || i == host)
    }

    pub(crate) fn client(&self, domain: &str) -> Client {
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
