//! `--user` resolution against the container's own `/etc/passwd` and
//! `/etc/group`, with Docker's (runc's `GetExecUser`) rules.

use std::path::Path;

use crate::error::RuntimeError;
use crate::paths::resolve_in_root;

/// The credentials a container process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups from `/etc/group` (only when no group was given).
    pub additional_gids: Vec<u32>,
    /// From `/etc/passwd`; `/` when the user has no entry.
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves `user` (`""`, `uid`, `uid:gid`, `name`, `name:group`) inside `rootfs`.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<ExecUser, RuntimeError> {
    let passwd = read_in_root(rootfs, "/etc/passwd")?;
    let group = read_in_root(rootfs, "/etc/group")?;
    resolve(&passwd, &group, user)
}

fn read_in_root(rootfs: &Path, path: &str) -> Result<String, RuntimeError> {
    let host = resolve_in_root(rootfs, path)
        .map_err(|e| RuntimeError::io(format!("resolve {path} in the container"), e))?;
    match std::fs::read(&host) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(RuntimeError::io(format!("read {path} in the container"), e)),
    }
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn resolve(passwd: &str, group: &str, spec: &str) -> Result<ExecUser, RuntimeError> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    let uid_arg: Option<u32> = user_arg.parse().ok();
    let users = parse_passwd(passwd);
    let matched = users.iter().find(|u| {
        if user_arg.is_empty() {
            u.uid == 0
        } else if let Some(uid) = uid_arg {
            u.uid == uid
        } else {
            u.name == user_arg
        }
    });
    let mut out = ExecUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: "/".into(),
    };
    match (matched, uid_arg) {
        (Some(u), _) => {
            out.uid = u.uid;
            out.gid = u.gid;
            if !u.home.is_empty() {
                out.home = u.home.clone();
            }
        }
        (None, Some(uid)) => out.uid = uid,
        (None, None) if user_arg.is_empty() => {}
        (None, None) => {
            return Err(RuntimeError::User(format!(
                "Unable to find user {user_arg}: no matching entries in passwd file"
            )))
        }
    }
    let matched_name = matched.map(|u| u.name.as_str());
    if group_arg.is_empty() && matched_name.is_none() {
        return Ok(out);
    }
    let groups = parse_group(group);
    if !group_arg.is_empty() {
        let found = groups
            .iter()
            .find(|g| g.name == group_arg || g.gid.to_string() == group_arg);
        out.gid = match found {
            Some(g) => g.gid,
            None => group_arg.parse().map_err(|_| {
                RuntimeError::User(format!(
                    "Unable to find group {group_arg}: no matching entries in group file"
                ))
            })?,
        };
    } else if let Some(name) = matched_name {
        out.additional_gids = groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == name))
            .map(|g| g.gid)
            .collect();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nwheel:x:10:app,root\naudio:x:29:app\n";

    fn r(spec: &str) -> Result<ExecUser, RuntimeError> {
        resolve(PASSWD, GROUP, spec)
    }

    #[test]
    fn docker_rules() {
        let root = r("").unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        assert_eq!(root.additional_gids, vec![10]);
        let app = r("app").unwrap();
        assert_eq!((app.uid, app.gid), (1000, 1000));
        assert_eq!(app.additional_gids, vec![10, 29]);
        let nobody = r("65534").unwrap();
        assert_eq!((nobody.uid, nobody.gid), (65534, 65534));
        let unknown_uid = r("4242").unwrap();
        assert_eq!(
            (unknown_uid.uid, unknown_uid.gid, unknown_uid.home.as_str()),
            (4242, 0, "/")
        );
        let with_group = r("app:audio").unwrap();
        assert_eq!((with_group.uid, with_group.gid), (1000, 29));
        assert!(with_group.additional_gids.is_empty());
        assert_eq!(r("1:77").unwrap().gid, 77);
    }

    #[test]
    fn unknown_names_fail_like_docker() {
        assert_eq!(
            r("nosuch").unwrap_err().to_string(),
            "Unable to find user nosuch: no matching entries in passwd file"
        );
        assert_eq!(
            r("app:nosuch").unwrap_err().to_string(),
            "Unable to find group nosuch: no matching entries in group file"
        );
    }

    #[test]
    fn missing_files_allow_numeric_ids() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(resolve_user(d.path(), "12:34").unwrap().uid, 12);
        assert!(resolve_user(d.path(), "root").is_err());
    }
}
