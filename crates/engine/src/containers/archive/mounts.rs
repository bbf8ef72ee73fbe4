//! The container's mounts as `docker cp` sees them: what a path below a
//! volume, a bind mount, a tmpfs or one of the `/etc` files the engine
//! writes reads from, and whether it may be written.
//!
//! Read from the record only (no volume is created, no directory made): a
//! copy must not change what the container will get when it starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::resolve::Redirects;

/// One mount of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CpMount {
    /// The destination, clean, below the container's root (no leading `/`).
    pub(super) rel: PathBuf,
    /// What is mounted there on the host; `None` for a tmpfs.
    pub(super) source: Option<PathBuf>,
    pub(super) readonly: bool,
}

/// A destination as a clean path below the root; `None` for the root itself.
fn rel_of(destination: &str) -> Option<PathBuf> {
    let mut parts: Vec<&str> = Vec::new();
    for c in destination.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.iter().collect())
}

/// The container's mounts, in the order the runtime mounts them: `-v`
/// binds and volumes, `--mount`, `--tmpfs`, the anonymous volumes of
/// `Config.Volumes`, then `/etc/hosts`, `/etc/resolv.conf` and
/// `/etc/hostname` when the engine wrote them. `anonymous` maps a
/// destination to its anonymous volume.
pub(super) fn container_mounts(
    host_config: &Value,
    anonymous: &BTreeMap<String, String>,
    volumes_root: &Path,
    container_dir: &Path,
) -> Vec<CpMount> {
    // Destinations the request names; an anonymous volume of
    // `Config.Volumes` under one of them is not mounted.
    let mut named: Vec<String> = Vec::new();
    for b in host_config["Binds"].as_array().into_iter().flatten() {
        if let Some(dst) = b.as_str().and_then(|b| b.split(':').nth(1)) {
            named.push(dst.to_string());
        }
    }
    for m in host_config["Mounts"].as_array().into_iter().flatten() {
        named.push(m["Target"].as_str().unwrap_or("").to_string());
    }
    if let Some(t) = host_config["Tmpfs"].as_object() {
        named.extend(t.keys().cloned());
    }
    let mut out = Vec::new();
    let mut push = |dest: &str, source: Option<PathBuf>, readonly: bool| {
        if let Some(rel) = rel_of(dest) {
            out.push(CpMount {
                rel,
                source,
                readonly,
            });
        }
    };
    for b in host_config["Binds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, o] => (*s, *d, *o),
            _ => continue,
        };
        let readonly = opts.split(',').any(|o| o == "ro");
        let source = if src.starts_with('/') {
            PathBuf::from(src)
        } else {
            volumes_root.join(src).join("_data")
        };
        push(dst, Some(source), readonly);
    }
    for m in host_config["Mounts"].as_array().into_iter().flatten() {
        let target = m["Target"].as_str().unwrap_or("");
        let readonly = m["ReadOnly"].as_bool().unwrap_or(false);
        let source = m["Source"].as_str().filter(|s| !s.is_empty());
        match (m["Type"].as_str().unwrap_or(""), source) {
            ("bind", Some(s)) => push(target, Some(PathBuf::from(s)), readonly),
            ("volume", Some(s)) => push(target, Some(volumes_root.join(s).join("_data")), readonly),
            ("volume", None) => {
                if let Some(name) = anonymous.get(target) {
                    push(
                        target,
                        Some(volumes_root.join(name).join("_data")),
                        readonly,
                    );
                }
            }
            ("tmpfs", _) => push(target, None, readonly),
            _ => {}
        }
    }
    if let Some(t) = host_config["Tmpfs"].as_object() {
        for (dst, opts) in t {
            let readonly = opts.as_str().unwrap_or("").split(',').any(|o| o == "ro");
            push(dst, None, readonly);
        }
    }
    for (dst, name) in anonymous {
        if !named.contains(dst) {
            push(dst, Some(volumes_root.join(name).join("_data")), false);
        }
    }
    for (dest, file) in [
        ("/etc/hosts", "hosts"),
        ("/etc/resolv.conf", "resolv.conf"),
        ("/etc/hostname", "hostname"),
    ] {
        let source = container_dir.join(file);
        if source.is_file() {
            push(dest, Some(source), false);
        }
    }
    out
}

/// The mount `rel` (a resolved path below the root) is in, if any: the one
/// with the longest destination, the last of equals.
pub(super) fn covering<'a>(mounts: &'a [CpMount], rel: &Path) -> Option<&'a CpMount> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| rel.starts_with(&m.rel))
        .max_by_key(|(i, m)| (m.rel.components().count(), *i))
        .map(|(_, m)| m)
}

/// What a stopped container's root filesystem lacks: every mount with a
/// source on the host (a tmpfs is empty then, as in Docker).
pub(super) fn redirects(mounts: &[CpMount]) -> Redirects {
    let mut r = Redirects::default();
    for m in mounts {
        if let Some(source) = &m.source {
            r.add(m.rel.clone(), source.clone());
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mounts_come_from_the_record() {
        let hc = json!({
            "Binds": ["/host/src:/data:ro", "named:/vol", "bad"],
            "Mounts": [
                {"Type": "bind", "Source": "/b", "Target": "/mnt/b/"},
                {"Type": "volume", "Target": "/anon"},
                {"Type": "tmpfs", "Target": "/run/t"}
            ],
            "Tmpfs": {"/scratch": "size=1m,ro"}
        });
        let anonymous = BTreeMap::from([
            ("/anon".to_string(), "abc".to_string()),
            ("/cfg".to_string(), "cfgvol".to_string()),
            ("/scratch".to_string(), "covered".to_string()),
        ]);
        let m = container_mounts(&hc, &anonymous, Path::new("/v"), Path::new("/nonexistent"));
        let view: Vec<(&str, Option<&str>, bool)> = m
            .iter()
            .map(|m| {
                (
                    m.rel.to_str().unwrap(),
                    m.source.as_deref().map(|s| s.to_str().unwrap()),
                    m.readonly,
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                ("data", Some("/host/src"), true),
                ("vol", Some("/v/named/_data"), false),
                ("mnt/b", Some("/b"), false),
                ("anon", Some("/v/abc/_data"), false),
                ("run/t", None, false),
                ("scratch", None, true),
                ("cfg", Some("/v/cfgvol/_data"), false),
            ]
        );
        assert_eq!(
            covering(&m, Path::new("data/x/y")).map(|m| m.readonly),
            Some(true)
        );
        assert!(covering(&m, Path::new("database")).is_none());
        assert!(covering(&m, Path::new("")).is_none());
    }
}
