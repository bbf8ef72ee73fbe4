//! Registry credentials from the docker CLI's config file
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), sent to
//! the daemon as `X-Registry-Auth`, as the docker CLI does.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::commands::NO_AUTH;

fn config_path() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(std::path::PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".docker/config.json"))
}

/// The key docker uses for a registry in `auths`.
fn keys_for(domain: &str) -> Vec<String> {
    if domain == "docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
        ]
    } else {
        vec![
            domain.to_string(),
            format!("https://{domain}"),
            format!("http://{domain}"),
        ]
    }
}

/// The `X-Registry-Auth` value for `domain`: stored credentials, or anonymous.
pub fn header_for(domain: &str) -> String {
    let Some(path) = config_path() else {
        return NO_AUTH.into();
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return NO_AUTH.into();
    };
    let Ok(config) = serde_json::from_str::<Value>(&text) else {
        return NO_AUTH.into();
    };
    encode(&config, domain).unwrap_or_else(|| NO_AUTH.into())
}

fn encode(config: &Value, domain: &str) -> Option<String> {
    let entry = keys_for(domain)
        .iter()
        .find_map(|k| config["auths"].get(k).cloned())?;
    let mut auth = json!({ "serveraddress": domain });
    if let Some(b64) = entry["auth"].as_str().filter(|s| !s.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (user, pass) = text.split_once(':')?;
        auth["username"] = json!(user);
        auth["password"] = json!(pass);
    }
    if let Some(token) = entry["identitytoken"].as_str().filter(|s| !s.is_empty()) {
        auth["identitytoken"] = json!(token);
    }
    if auth.get("username").is_none() && auth.get("identitytoken").is_none() {
        return None;
    }
    Some(base64::engine::general_purpose::URL_SAFE.encode(auth.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_basic_and_token_entries() {
        let basic = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let config = json!({"auths": {
            "127.0.0.1:5000": {"auth": basic},
            "https://index.docker.io/v1/": {"identitytoken": "tok"},
        }});
        let decode = |s: String| -> Value {
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE.decode(s).unwrap())
                .unwrap()
        };
        let a = decode(encode(&config, "127.0.0.1:5000").unwrap());
        assert_eq!(
            (a["username"].as_str(), a["password"].as_str()),
            (Some("alice"), Some("s3cret"))
        );
        assert_eq!(
            decode(encode(&config, "docker.io").unwrap())["identitytoken"],
            "tok"
        );
        assert!(encode(&config, "other.example").is_none());
    }
}
