//! Containers as Docker's API shows them: `GET /containers/json` rows and
//! `GET /containers/{id}/json` documents.

use serde_json::{json, Value};
use servin_api::Error;

use super::create::{binds, BindSpec};
use super::record::{ContainerRecord, State, ZERO_TIME};
use crate::Engine;

/// `Config` as Docker shows it: the networks asked for are kept in the
/// record (`NetworkingConfig`) but shown under `NetworkSettings`.
fn config_view(config: &Value) -> Value {
    let mut c = config.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("NetworkingConfig");
    }
    c
}

fn ago(rfc3339: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return String::new();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 172_800 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

fn status_text(rec: &ContainerRecord) -> String {
    match &rec.state {
        State::Created => "Created".into(),
        s if s.never_started() => "Created".into(),
        State::Running { started_at, .. } => match rec.health.as_ref().map(|h| h.status.as_str()) {
            Some("starting") => format!("Up {} (health: starting)", ago(started_at)),
            Some(s) => format!("Up {} ({s})", ago(started_at)),
            None => format!("Up {}", ago(started_at)),
        },
        State::Paused { started_at, .. } => format!("Up {} (Paused)", ago(started_at)),
        State::Restarting { .. } => "Restarting".into(),
        State::Exited {
            code, finished_at, ..
        } => format!("Exited ({code}) {} ago", ago(finished_at)),
        State::Removing => "Removal In Progress".into(),
        State::Dead => "Dead".into(),
    }
}

fn command(rec: &ContainerRecord) -> String {
    let words: Vec<String> = [&rec.config["Entrypoint"], &rec.config["Cmd"]]
        .iter()
        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    words.join(" ")
}

fn created_unix(rec: &ContainerRecord) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&rec.created)
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

impl Engine {
    /// `GET /containers/json`.
    pub fn list_containers(
        &self,
        all: bool,
        filters: &str,
        limit: Option<usize>,
    ) -> Result<Vec<Value>, Error> {
        let filters = crate::filters::Filters::parse(filters)?;
        let wanted = |key: &str| filters.values(key);
        filters.accept_only(&[
            "id", "name", "status", "label", "exited", "ancestor", "before", "since", "volume",
            "network", "health",
        ])?;
        for h in wanted("health") {
            if !matches!(h.as_str(), "starting" | "healthy" | "unhealthy" | "none") {
                return Err(Error::invalid(format!(
                    "Unrecognised filter value for health: {h}"
                )));
            }
        }
        // `before`/`since`: created before or after another container.
        let created_of = |key: &str| -> Result<Option<String>, Error> {
            match wanted(key).first() {
                None => Ok(None),
                Some(v) => self
                    .containers()
                    .get(v)
                    .map(|c| Some(c.created))
                    .map_err(|_| Error::not_found(format!("no such container {v}"))),
            }
        };
        let (before, since) = (created_of("before")?, created_of("since")?);
        let any_of = |key: &str, hit: &dyn Fn(&str) -> bool| {
            let values = wanted(key);
            values.is_empty() || values.iter().any(|v| hit(v))
        };
        let mut rows: Vec<ContainerRecord> = self
            .containers()
            .all()
            .into_iter()
            .filter(|r| all || r.state.is_running() || !wanted("status").is_empty())
            .filter(|r| any_of("id", &|p| r.id.starts_with(p)))
            .filter(|r| before.as_ref().is_none_or(|t| r.created < *t))
            .filter(|r| since.as_ref().is_none_or(|t| r.created > *t))
            .filter(|r| {
                let health = r.health.as_ref().map_or("none", |h| h.status.as_str());
                any_of("health", &|h| h == health)
            })
            .filter(|r| {
                let mounts = self.mount_views(r);
                any_of("volume", &|v| {
                    mounts.iter().any(|m| {
                        m["Destination"] == v
                            || m["Name"] == v
                            || (m["Name"].is_null() && m["Source"] == v)
                    })
                })
            })
            .filter(|r| {
                let view = self.network_settings_view(r);
                let nets = view["Networks"].as_object().cloned().unwrap_or_default();
                any_of("network", &|n| {
                    nets.iter()
                        .any(|(name, ep)| name == n || ep["NetworkID"] == n)
                })
            })
            .filter(|r| {
                let names = wanted("name");
                names.is_empty() || names.iter().any(|n| r.name.contains(n.trim_start_matches('/')))
            })
            .filter(|r| {
                let st = wanted("status");
                st.is_empty() || st.iter().any(|s| s == r.state.name())
            })
            .filter(|r| filters.match_labels(&r.config["Labels"]))
            .filter(|r| {
                let ex = wanted("exited");
                ex.is_empty() || matches!(&r.state, State::Exited { code, .. } if !r.state.never_started() && ex.iter().any(|e| e == &code.to_string()))
            })
            .filter(|r| {
                let anc = wanted("ancestor");
                anc.is_empty() || anc.iter().any(|a| *a == r.image || self.image_id(a).map(|d| d.to_string() == r.image_id).unwrap_or(false))
            })
            .collect();
        rows.sort_by(|a, b| b.created.cmp(&a.created));
        if let Some(n) = limit {
            rows.truncate(n);
        }
        Ok(rows
            .iter()
            .map(|r| {
                json!({
                    "Id": r.id,
                    "Names": [format!("/{}", r.name)],
                    "Image": r.image,
                    "ImageID": r.image_id,
                    "Command": command(r),
                    "Created": created_unix(r),
                    "Ports": self.ports_row_view(r),
                    "Labels": r.config["Labels"],
                    "State": r.state.name(),
                    "Status": status_text(r),
                    "HostConfig": {"NetworkMode": r.host_config["NetworkMode"].as_str().filter(|s| !s.is_empty()).unwrap_or("default")},
                    "NetworkSettings": {"Networks": self.network_settings_view(r)["Networks"]},
                    "Mounts": self.mount_views(r),
                })
            })
            .collect())
    }

    /// `GET /containers/{id}/json`.
    pub fn inspect_container(&self, name: &str) -> Result<Value, Error> {
        let r = self.containers().get(name)?;
        let dir = self.containers().dir(&r.id);
        let (pid, started, finished, code, oom, error) = match &r.state {
            State::Running { pid, started_at } | State::Paused { pid, started_at } => {
                (*pid, started_at.as_str(), ZERO_TIME, 0, false, "")
            }
            State::Exited {
                code,
                oom_killed,
                started_at,
                finished_at,
                error,
            } => (
                0,
                started_at.as_str(),
                finished_at.as_str(),
                *code,
                *oom_killed,
                error.as_str(),
            ),
            _ => (0, ZERO_TIME, ZERO_TIME, 0, false, ""),
        };
        let args: Vec<Value> = [&r.config["Entrypoint"], &r.config["Cmd"]]
            .iter()
            .flat_map(|v| v.as_array().cloned().unwrap_or_default())
            .collect();
        let path = args.first().cloned().unwrap_or(json!(""));
        let mounts = self.mount_views(&r);
        let mut host_config = r.host_config.clone();
        if host_config.is_object() {
            host_config["Links"] = crate::links::inspect_form(&r.host_config, &r.name);
        }
        Ok(json!({
            "Id": r.id,
            "Created": r.created,
            "Path": path,
            "Args": args.get(1..).unwrap_or(&[]),
            "State": {
                "Status": r.state.name(),
                "Running": matches!(r.state, State::Running { .. } | State::Paused { .. }),
                "Paused": matches!(r.state, State::Paused { .. }),
                "Restarting": matches!(r.state, State::Restarting { .. }),
                "OOMKilled": oom,
                "Dead": matches!(r.state, State::Dead),
                "Pid": pid,
                "ExitCode": code,
                "Error": error,
                "Health": r.health.as_ref().map(|h| h.to_json()),
                "StartedAt": started,
                "FinishedAt": finished,
            },
            "Image": r.image_id,
            "ResolvConfPath": dir.join("resolv.conf"),
            "HostnamePath": dir.join("hostname"),
            "HostsPath": dir.join("hosts"),
            "LogPath": self.log_path(&r.id),
            "Name": format!("/{}", r.name),
            "RestartCount": r.restart_count,
            "Driver": "overlayfs",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": null,
            "HostConfig": host_config,
            "GraphDriver": {"Name": "overlayfs", "Data": {"MergedDir": dir.join("rootfs"), "UpperDir": dir.join("upper"), "WorkDir": dir.join("work")}},
            "Mounts": mounts,
            "Config": config_view(&r.config),
            "NetworkSettings": self.network_settings_view(&r),
        }))
    }

    /// `Mounts` as Docker shows them: `-v` binds and volumes, every
    /// `--mount` (bind, volume, tmpfs) and the anonymous volumes of
    /// `Config.Volumes`; `--tmpfs` is only in `HostConfig.Tmpfs`.
    fn mount_views(&self, r: &ContainerRecord) -> Vec<Value> {
        let volume = |name: &str, dst: &str, mode: &str, rw: bool| json!({"Type": "volume", "Name": name, "Source": self.volume_path(name), "Destination": dst, "Driver": "local", "Mode": mode, "RW": rw, "Propagation": ""});
        let mut out = Vec::new();
        for b in binds(&r.host_config).filter_map(BindSpec::parse) {
            let rw = !b.has("ro");
            if b.is_host_path() {
                out.push(json!({"Type": "bind", "Source": b.source, "Destination": b.destination, "Mode": b.options.unwrap_or(""), "RW": rw, "Propagation": "rprivate"}));
            } else {
                out.push(volume(
                    b.source,
                    b.destination,
                    b.options.unwrap_or("z"),
                    rw,
                ));
            }
        }
        for m in r.host_config["Mounts"].as_array().into_iter().flatten() {
            let dst = m["Target"].as_str().unwrap_or("");
            let rw = !m["ReadOnly"].as_bool().unwrap_or(false);
            match m["Type"].as_str().unwrap_or("") {
                "bind" => {
                    let propagation = m["BindOptions"]["Propagation"]
                        .as_str()
                        .filter(|p| !p.is_empty())
                        .unwrap_or("rprivate");
                    out.push(json!({"Type": "bind", "Source": m["Source"], "Destination": dst, "Mode": "", "RW": rw, "Propagation": propagation}));
                }
                "volume" => {
                    let name = match m["Source"].as_str().filter(|s| !s.is_empty()) {
                        Some(n) => n,
                        None => match r.anonymous_volumes.get(dst) {
                            Some(n) => n.as_str(),
                            None => continue,
                        },
                    };
                    out.push(volume(name, dst, "z", rw));
                }
                "tmpfs" => out.push(json!({"Type": "tmpfs", "Source": "", "Destination": dst, "Mode": "", "RW": rw, "Propagation": ""})),
                _ => {}
            }
        }
        for (dst, name) in &r.anonymous_volumes {
            if !out.iter().any(|m| m["Destination"] == dst.as_str()) {
                out.push(volume(name, dst, "", true));
            }
        }
        out
    }

    /// `POST /containers/prune`: stopped containers that pass the `label`,
    /// `label!` and `until` filters (created before that time).
    pub async fn prune_containers(&self, filters: &str) -> Result<Value, Error> {
        let filters = crate::filters::Filters::parse(filters)?;
        filters.accept_only(&["label", "label!", "until"])?;
        let until = filters.until(chrono::Utc::now())?;
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for r in self.containers().all() {
            if !matches!(r.state, State::Exited { .. } | State::Created | State::Dead) {
                continue;
            }
            let created = chrono::DateTime::parse_from_rfc3339(&r.created).ok();
            if until.is_some_and(|u| created.is_none_or(|c| c > u)) {
                continue;
            }
            if !filters.match_labels(&r.config["Labels"]) {
                continue;
            }
            // What the container wrote, as Docker counts its layer's size.
            let upper = self.containers().dir(&r.id).join("upper");
            let size = tokio::task::spawn_blocking(move || servin_image::dir_size(&upper))
                .await
                .unwrap_or(0);
            self.remove_container(&r.id, false, false).await?;
            reclaimed += size;
            deleted.push(r.id);
        }
        Ok(
            json!({"ContainersDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed}),
        )
    }
}
