//! `POST /containers/create`: Docker's create body merged with the image's
//! defaults, validated, and recorded. Also the translation of a record into
//! the runtime's [`ContainerSpec`] at start.

use std::path::Path;

use serde_json::{json, Map, Value};
use servin_api::Error;
use servin_runtime::seccomp::Seccomp;
use servin_runtime::{ContainerSpec, MountSpec, NetworkMode, ProcessSpec, Resources, RuntimeKind};

use super::names;
use super::record::{ContainerRecord, State};
use crate::Engine;

/// What `create` answers.
pub struct Created {
    pub id: String,
    pub warnings: Vec<String>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// Docker's memory minimum.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

fn check_host_config(hc: &Value) -> Result<(), Error> {
    let mem = hc["Memory"].as_i64().unwrap_or(0);
    if mem != 0 && mem < MIN_MEMORY {
        return Err(Error::invalid("Minimum memory limit allowed is 6MB"));
    }
    let swap = hc["MemorySwap"].as_i64().unwrap_or(0);
    if swap > 0 && mem == 0 {
        return Err(Error::invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if swap > 0 && swap < mem {
        return Err(Error::invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if hc["NanoCpus"].as_i64().unwrap_or(0) < 0 {
        return Err(Error::invalid(
            "Range of CPUs is from 0.01 to the number of CPUs available",
        ));
    }
    if let Some(rp) = hc["RestartPolicy"]["Name"].as_str() {
        if !matches!(rp, "" | "no" | "always" | "on-failure" | "unless-stopped") {
            return Err(Error::invalid(format!("invalid restart policy '{rp}'")));
        }
    }
    Ok(())
}

/// `HostConfig.Sysctls`: only the namespaced ones, and no network ones in
/// the host's network namespace. runc refuses these at start; refused here,
/// nothing is made.
fn check_sysctls(hc: &Value, mode: &str) -> Result<(), Error> {
    for key in hc["Sysctls"].as_object().into_iter().flat_map(|m| m.keys()) {
        if !servin_api::sysctl_is_namespaced(key) {
            return Err(Error::invalid(format!(
                "sysctl {key:?} is not in a separate kernel namespace: only net.*, fs.mqueue.* and the kernel.msg*, kernel.sem and kernel.shm* ones can be set"
            )));
        }
        if key.starts_with("net.") && mode == "host" {
            return Err(Error::invalid(format!(
                "sysctl {key:?} not allowed in host network namespace"
            )));
        }
    }
    Ok(())
}

/// What `HostConfig.SecurityOpt` asks for.
#[derive(Debug, PartialEq)]
struct SecurityOpts {
    seccomp: Seccomp,
    no_new_privileges: bool,
}

/// Parses `HostConfig.SecurityOpt` as Docker's daemon does (`key=value`,
/// or the old `key:value`); a seccomp profile is checked here so that a bad
/// one fails the create. SELinux and AppArmor options are accepted and have
/// no effect: this engine applies neither.
fn security_opts(hc: &Value) -> Result<SecurityOpts, Error> {
    let mut out = SecurityOpts {
        seccomp: Seccomp::Builtin,
        no_new_privileges: false,
    };
    for opt in hc["SecurityOpt"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
    {
        match opt {
            "no-new-privileges" => {
                out.no_new_privileges = true;
                continue;
            }
            "disable" => continue,
            _ => {}
        }
        let Some((key, value)) = opt.split_once('=').or_else(|| opt.split_once(':')) else {
            return Err(Error::invalid(format!("invalid --security-opt 1: {opt:?}")));
        };
        match key {
            "label" | "apparmor" => {}
            "seccomp" => {
                out.seccomp = Seccomp::from_security_opt(value)
                    .map_err(|e| Error::invalid(format!("invalid seccomp profile: {e}")))?;
            }
            "no-new-privileges" => {
                out.no_new_privileges = servin_api::parse_go_bool(value)
                    .ok_or_else(|| Error::invalid(format!("invalid --security-opt 2: {opt:?}")))?;
            }
            _ => return Err(Error::invalid(format!("invalid --security-opt 2: {opt:?}"))),
        }
    }
    Ok(out)
}

/// Destinations that get an anonymous volume: `--mount type=volume`
/// without a source, and `Config.Volumes` (`-v /dir`, the image's VOLUMEs)
/// that no bind, mount or tmpfs covers.
fn anonymous_targets(config: &Value, hc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut covered = Vec::new();
    for b in hc["Binds"].as_array().into_iter().flatten() {
        if let Some(dst) = b.as_str().and_then(|b| b.split(':').nth(1)) {
            covered.push(dst.to_string());
        }
    }
    for m in hc["Mounts"].as_array().into_iter().flatten() {
        let target = m["Target"].as_str().unwrap_or("").to_string();
        if m["Type"] == "volume" && m["Source"].as_str().is_none_or(str::is_empty) {
            out.push(target);
        } else {
            covered.push(target);
        }
    }
    if let Some(t) = hc["Tmpfs"].as_object() {
        covered.extend(t.keys().cloned());
    }
    for target in config["Volumes"]
        .as_object()
        .into_iter()
        .flat_map(|v| v.keys())
    {
        if !covered.contains(target) && !out.contains(target) {
            out.push(target.clone());
        }
    }
    out
}

/// The anonymous volume kept for `target`.
fn anonymous_volume<'a>(rec: &'a ContainerRecord, target: &str) -> Result<&'a str, Error> {
    rec.anonymous_volumes
        .get(target)
        .map(String::as_str)
        .ok_or_else(|| Error::internal(format!("No anonymous volume was made for {target}")))
}

/// The host's init binary for `--init`, as Docker's `exec.LookPath` reports
/// a missing or unusable one.
fn check_init_binary(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let p = path.display();
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(Error::internal(format!("exec: \"{p}\": permission denied"))),
        Err(e) => Err(Error::internal(format!(
            "exec: \"{p}\": stat {p}: {}",
            io_reason(&e)
        ))),
    }
}

/// An I/O error's reason the way Go prints it (`no such file or directory`).
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    let reason = s.split(" (os error").next().unwrap_or(&s);
    let mut c = reason.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Image env first, then the container's, later keys overriding.
fn merge_env(image: &Value, container: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for list in [image, container] {
        for e in list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
        {
            let key = e.split('=').next().unwrap_or(e);
            out.retain(|x| x.split('=').next().unwrap_or(x) != key);
            out.push(e.to_string());
        }
    }
    out
}

impl Engine {
    /// Creates a container from Docker's create body.
    pub fn create_container(&self, name: Option<&str>, body: &Value) -> Result<Created, Error> {
        let image_name = body["Image"].as_str().unwrap_or("");
        if image_name.is_empty() {
            return Err(Error::invalid(
                "config cannot be empty in order to create a container",
            ));
        }
        let (image, image_config) = self.image(image_name)?;
        let img = image_config.get("config").cloned().unwrap_or(json!({}));
        let mut hc = body.get("HostConfig").cloned().unwrap_or(json!({}));
        check_host_config(&hc)?;
        security_opts(&hc)?;
        let networking = self.check_networking(&hc, body)?;
        let mode = crate::networks::network_mode(&hc);
        self.check_links(&mut hc, &mode)?;
        check_sysctls(&hc, &mode)?;
        crate::networks::mac_from(&body["MacAddress"])?;
        if hc.is_object() {
            hc["NetworkMode"] = json!(crate::networks::network_mode(&hc));
        }

        let name_given = name.is_some_and(|n| !n.is_empty());
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(n);
                if !valid_name(n) {
                    return Err(Error::invalid(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                n.to_string()
            }
            None => names::generate(
                &self
                    .containers()
                    .all()
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>(),
            ),
        };

        let mut config: Map<String, Value> = body.as_object().cloned().unwrap_or_default();
        config.remove("HostConfig");
        config.remove("NetworkingConfig");
        if let Some(n) = networking {
            config.insert("NetworkingConfig".into(), n);
        }
        let mut exposed = img["ExposedPorts"].as_object().cloned().unwrap_or_default();
        if let Some(own) = body["ExposedPorts"].as_object() {
            exposed.extend(own.clone());
        }
        if !exposed.is_empty() {
            config.insert("ExposedPorts".into(), Value::Object(exposed));
        }
        let mut volumes = img["Volumes"].as_object().cloned().unwrap_or_default();
        if let Some(own) = body["Volumes"].as_object() {
            volumes.extend(own.clone());
        }
        if !volumes.is_empty() {
            config.insert("Volumes".into(), Value::Object(volumes));
        }
        let has_entrypoint = !body["Entrypoint"].is_null();
        let entrypoint = if has_entrypoint {
            body["Entrypoint"].clone()
        } else {
            img["Entrypoint"].clone()
        };
        let cmd = if !body["Cmd"].is_null() {
            body["Cmd"].clone()
        } else if has_entrypoint {
            Value::Null
        } else {
            img["Cmd"].clone()
        };
        let args: Vec<String> = [&entrypoint, &cmd]
            .iter()
            .flat_map(|v| v.as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if args.is_empty() {
            return Err(Error::invalid("No command specified"));
        }
        let id = new_id();
        config.insert("Entrypoint".into(), entrypoint);
        config.insert("Cmd".into(), cmd);
        config.insert("Env".into(), json!(merge_env(&img["Env"], &body["Env"])));
        config.insert("Image".into(), json!(image_name));
        for key in ["WorkingDir", "User", "StopSignal"] {
            if config
                .get(key)
                .and_then(|v| v.as_str())
                .is_none_or(|s| s.is_empty())
            {
                if let Some(v) = img.get(key).filter(|v| !v.is_null()) {
                    config.insert(key.into(), v.clone());
                }
            }
        }
        let mut labels = img["Labels"].as_object().cloned().unwrap_or_default();
        if let Some(l) = body["Labels"].as_object() {
            labels.extend(l.clone());
        }
        config.insert("Labels".into(), Value::Object(labels));
        if config
            .get("Hostname")
            .and_then(|v| v.as_str())
            .is_none_or(|s| s.is_empty())
        {
            config.insert("Hostname".into(), json!(&id[..12]));
        }
        if config.get("Healthcheck").is_none_or(|v| v.is_null()) && !img["Healthcheck"].is_null() {
            config.insert("Healthcheck".into(), img["Healthcheck"].clone());
        }
        for key in [
            "Tty",
            "OpenStdin",
            "StdinOnce",
            "AttachStdin",
            "AttachStdout",
            "AttachStderr",
        ] {
            config.entry(key).or_insert(json!(false));
        }

        let mut warnings = Vec::new();
        if hc["Memory"].as_i64().unwrap_or(0) > 0
            && !std::path::Path::new("/sys/fs/cgroup/memory").exists()
            && !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        {
            warnings.push(
                "Your kernel does not support memory limit capabilities. Limitation discarded."
                    .into(),
            );
        }
        let runtime = hc["Runtime"]
            .as_str()
            .filter(|r| !r.is_empty())
            .unwrap_or("servin")
            .to_string();
        if runtime != "servin" && runtime != "runc" {
            return Err(Error::invalid(format!(
                "unknown or invalid runtime name: {runtime}"
            )));
        }
        let rec = ContainerRecord {
            id: id.clone(),
            name,
            created: now(),
            image: image_name.to_string(),
            image_id: image.id.to_string(),
            config: Value::Object(config),
            host_config: hc,
            state: State::Created,
            restart_count: 0,
            manually_stopped: false,
            runtime,
            health: None,
            anonymous_volumes: Default::default(),
        };
        // Anonymous volumes are made once, here, and kept for every start.
        let mut rec = rec;
        rec.anonymous_volumes = anonymous_targets(&rec.config, &rec.host_config)
            .into_iter()
            .map(|t| (t, new_id()))
            .collect();
        if let Err(e) = self.prepare_mounts(&rec) {
            self.drop_anonymous_volumes(&rec);
            return Err(e);
        }
        // A generated name can clash with one generated at the same moment
        // for a concurrent create: pick another, as Docker does.
        while let Err(e) = self.containers().insert(rec.clone()) {
            if name_given || e.kind != servin_api::ErrorKind::Conflict {
                self.drop_anonymous_volumes(&rec);
                return Err(e);
            }
            let taken: Vec<String> = self
                .containers()
                .all()
                .into_iter()
                .map(|c| c.name)
                .collect();
            rec.name = names::generate(&taken);
        }
        self.emit(crate::Event::container(
            "create",
            &id,
            &self.containers().get(&id)?,
        ));
        Ok(Created { id, warnings })
    }

    /// Checks bind sources and creates named volumes, before anything is recorded.
    pub(crate) fn prepare_mounts(&self, rec: &ContainerRecord) -> Result<Vec<MountSpec>, Error> {
        let mut out = Vec::new();
        let hc = &rec.host_config;
        for b in binds(hc) {
            let Some(bind) = BindSpec::parse(b) else {
                return Err(Error::invalid(format!(
                    "invalid volume specification: '{b}'"
                )));
            };
            let (src, dst) = (bind.source, bind.destination);
            if !dst.starts_with('/') {
                return Err(Error::invalid(format!("invalid volume specification: '{b}': invalid mount config: destination must be an absolute path")));
            }
            let readonly = bind.has("ro");
            let source = if src.starts_with('/') {
                // `-v` creates a missing host directory, as Docker does.
                std::fs::create_dir_all(src).map_err(|e| {
                    Error::invalid(format!(
                        "error while creating mount source path '{src}': {e}"
                    ))
                })?;
                Path::new(src).to_path_buf()
            } else {
                self.volume_data(src)?
            };
            out.push(MountSpec::Bind {
                source,
                destination: dst.to_string(),
                readonly,
            });
        }
        for m in hc["Mounts"].as_array().into_iter().flatten() {
            let target = m["Target"].as_str().unwrap_or("").to_string();
            if !target.starts_with('/') {
                return Err(Error::invalid(
                    "invalid mount config: Target must be an absolute path",
                ));
            }
            let readonly = m["ReadOnly"].as_bool().unwrap_or(false);
            match m["Type"].as_str().unwrap_or("") {
                "bind" => {
                    let src = m["Source"].as_str().unwrap_or("");
                    if !Path::new(src).exists() {
                        return Err(Error::invalid(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                        )));
                    }
                    out.push(MountSpec::Bind {
                        source: src.into(),
                        destination: target,
                        readonly,
                    });
                }
                "volume" => {
                    let source = match m["Source"].as_str().filter(|s| !s.is_empty()) {
                        Some(name) => self.volume_data(name)?,
                        None => self.anonymous_volume_data(anonymous_volume(rec, &target)?)?,
                    };
                    out.push(MountSpec::Bind {
                        source,
                        destination: target,
                        readonly,
                    });
                }
                "tmpfs" => {
                    let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
                    if readonly {
                        options.push("ro".into());
                    }
                    if let Some(size) = m["TmpfsOptions"]["SizeBytes"].as_i64() {
                        options.push(format!("size={size}"));
                    }
                    out.push(MountSpec::Tmpfs {
                        destination: target,
                        options,
                    });
                }
                other => {
                    return Err(Error::invalid(format!(
                        "invalid mount config: mount type unknown: {other:?}"
                    )))
                }
            }
        }
        if let Some(t) = hc["Tmpfs"].as_object() {
            for (dst, opts) in t {
                let mut options = vec![
                    "nosuid".to_string(),
                    "nodev".to_string(),
                    "noexec".to_string(),
                ];
                options.extend(
                    opts.as_str()
                        .unwrap_or("")
                        .split(',')
                        .filter(|o| !o.is_empty())
                        .map(str::to_string),
                );
                out.push(MountSpec::Tmpfs {
                    destination: dst.clone(),
                    options,
                });
            }
        }
        // `-v /dir` and the image's VOLUMEs.
        for (target, name) in &rec.anonymous_volumes {
            if !out.iter().any(|m| m.destination() == target) {
                out.push(MountSpec::Bind {
                    source: self.anonymous_volume_data(name)?,
                    destination: target.clone(),
                    readonly: false,
                });
            }
        }
        Ok(out)
    }

    /// The volumes Docker fills from the container's filesystem when they
    /// are empty at a start (all but binds and `nocopy` ones), as (data
    /// folder, destination).
    pub(crate) fn volume_copies(&self, rec: &ContainerRecord) -> Vec<(std::path::PathBuf, String)> {
        let hc = &rec.host_config;
        let mut out = Vec::new();
        for bind in binds(hc).filter_map(BindSpec::parse) {
            if !bind.is_host_path() && !bind.has("nocopy") {
                out.push((self.volume_path(bind.source), bind.destination.to_string()));
            }
        }
        for m in hc["Mounts"].as_array().into_iter().flatten() {
            let target = m["Target"].as_str().unwrap_or("");
            if m["Type"] != "volume" || m["VolumeOptions"]["NoCopy"].as_bool().unwrap_or(false) {
                continue;
            }
            let name = match m["Source"].as_str().filter(|s| !s.is_empty()) {
                Some(n) => n,
                None => match rec.anonymous_volumes.get(target) {
                    Some(n) => n.as_str(),
                    None => continue,
                },
            };
            out.push((self.volume_path(name), target.to_string()));
        }
        for (target, name) in &rec.anonymous_volumes {
            if !out.iter().any(|(_, d)| d == target) {
                out.push((self.volume_path(name), target.clone()));
            }
        }
        out
    }

    /// The container's layers, top first: its own upper dir, then the
    /// image's snapshots.
    pub(crate) fn layers_top_first(
        &self,
        rec: &ContainerRecord,
    ) -> Result<Vec<std::path::PathBuf>, Error> {
        let store = self.image_store();
        let image = store.resolve(&rec.image_id)?;
        let mut out = vec![self.containers().dir(&rec.id).join("upper")];
        out.extend(
            image
                .layers
                .iter()
                .rev()
                .map(|l| store.snapshots().path(&l.diff_id)),
        );
        Ok(out)
    }

    /// Gives a container created before its anonymous volumes were kept
    /// in its record one for each destination that needs it.
    pub(crate) fn keep_anonymous_volumes(
        &self,
        rec: ContainerRecord,
    ) -> Result<ContainerRecord, Error> {
        let missing: Vec<String> = anonymous_targets(&rec.config, &rec.host_config)
            .into_iter()
            .filter(|t| !rec.anonymous_volumes.contains_key(t))
            .collect();
        if missing.is_empty() {
            return Ok(rec);
        }
        let (_, rec) = self.containers().update(&rec.id, |r| {
            for t in &missing {
                r.anonymous_volumes.insert(t.clone(), new_id());
            }
            Ok(())
        })?;
        Ok(rec)
    }

    /// Removes a container's anonymous volumes (`rm -v`, `--rm`, a create
    /// that failed); one still in use elsewhere stays.
    pub(crate) fn drop_anonymous_volumes(&self, rec: &ContainerRecord) {
        for name in rec.anonymous_volumes.values() {
            if let Err(e) = self.remove_volume(name, true) {
                tracing::info!(volume = %name, error = %e.message, "anonymous volume kept");
            }
        }
    }

    /// The runtime's view of a container, built at each start, in the
    /// network sandbox [`Engine::setup_network`] made.
    pub(crate) fn runtime_spec(
        &self,
        rec: &ContainerRecord,
        sandbox: &crate::networks::Sandbox,
        mounts: Vec<MountSpec>,
    ) -> Result<ContainerSpec, Error> {
        let dir = self.containers().dir(&rec.id);
        let store = self.image_store();
        let image = store.resolve(&rec.image_id)?;
        let layers = image
            .layers
            .iter()
            .map(|l| store.snapshots().path(&l.diff_id))
            .collect();
        let c = &rec.config;
        let hc = &rec.host_config;
        let strs = crate::strs;
        let mut args = strs(&c["Entrypoint"]);
        args.extend(strs(&c["Cmd"]));
        let mut hostname = c["Hostname"].as_str().unwrap_or(&rec.id[..12]).to_string();
        let network = sandbox.mode.clone();
        let etc = match &sandbox.share_from {
            Some(other) => {
                let etc = crate::networks::shared_etc(other, &dir)?;
                if let Ok(h) = std::fs::read_to_string(&etc.2) {
                    hostname = h.trim().to_string();
                }
                etc
            }
            None => self.write_etc_files(rec, &dir, &hostname, sandbox)?,
        };
        let nano = hc["NanoCpus"].as_i64().unwrap_or(0);
        let resources = Resources {
            memory: hc["Memory"].as_i64().filter(|m| *m > 0),
            memory_swap: hc["MemorySwap"].as_i64().filter(|m| *m != 0),
            cpu_shares: hc["CpuShares"].as_u64().filter(|m| *m > 0),
            cpu_quota: if nano > 0 {
                Some(nano / 10_000)
            } else {
                hc["CpuQuota"].as_i64().filter(|m| *m > 0)
            },
            cpu_period: if nano > 0 {
                Some(100_000)
            } else {
                hc["CpuPeriod"].as_u64().filter(|m| *m > 0)
            },
            pids_limit: hc["PidsLimit"].as_i64().filter(|m| *m > 0),
        };
        let security = security_opts(hc)?;
        let init = hc["Init"].as_bool().unwrap_or(false);
        let init_path = if init {
            let p = self.config().init_path.clone();
            check_init_binary(&p)?;
            Some(p)
        } else {
            None
        };
        let runtime = if rec.runtime == "runc" {
            RuntimeKind::Runc {
                path: "runc".into(),
            }
        } else {
            RuntimeKind::Builtin
        };
        Ok(ContainerSpec {
            id: rec.id.clone(),
            state_dir: dir.clone(),
            layers,
            process: ProcessSpec {
                args,
                env: crate::links::merge_env(
                    sandbox
                        .links
                        .iter()
                        .flat_map(|l| l.env(&rec.name))
                        .collect(),
                    strs(&c["Env"]),
                ),
                cwd: c["WorkingDir"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("/")
                    .to_string(),
                user: c["User"].as_str().unwrap_or("").to_string(),
                tty: rec.tty(),
                open_stdin: c["OpenStdin"].as_bool().unwrap_or(false),
                init,
            },
            hostname,
            domainname: c["Domainname"].as_str().unwrap_or("").to_string(),
            mounts,
            readonly_rootfs: hc["ReadonlyRootfs"].as_bool().unwrap_or(false),
            network,
            resources,
            privileged: hc["Privileged"].as_bool().unwrap_or(false),
            cap_add: strs(&hc["CapAdd"]),
            cap_drop: strs(&hc["CapDrop"]),
            no_new_privileges: security.no_new_privileges,
            runtime,
            cgroup_parent: hc["CgroupParent"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("servin")
                .to_string(),
            etc_hosts: Some(etc.0),
            etc_resolv_conf: Some(etc.1),
            etc_hostname: Some(etc.2),
            log_path: self.log_path(&rec.id),
            stop_signal: c["StopSignal"].as_str().map(str::to_string),
            seccomp: security.seccomp,
            init_path,
            sysctls: hc["Sysctls"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
        })
    }

    pub(crate) fn log_path(&self, id: &str) -> std::path::PathBuf {
        self.containers().dir(id).join(format!("{id}-json.log"))
    }

    fn write_etc_files(
        &self,
        rec: &ContainerRecord,
        dir: &Path,
        hostname: &str,
        sandbox: &crate::networks::Sandbox,
    ) -> Result<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf), Error> {
        let host_network = sandbox.mode == NetworkMode::Host;
        let io = |p: &Path, e: std::io::Error| {
            Error::internal(format!("Cannot write {}: {e}", p.display()))
        };
        let hosts = dir.join("hosts");
        let mut text = if host_network {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_string()
        };
        for extra in rec.host_config["ExtraHosts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
        {
            // `host:ip` (or `host=ip`, newer CLIs); `host-gateway` is the
            // default bridge's gateway, as Docker has it.
            let split = match (extra.split_once('='), extra.split_once(':')) {
                (Some(a), Some(b)) => Some(if a.0.len() < b.0.len() { a } else { b }),
                (a, b) => a.or(b),
            };
            if let Some((h, ip)) = split {
                let ip = match ip {
                    "host-gateway" => {
                        self.host_gateway_ip()
                            .map(|g| g.to_string())
                            .ok_or_else(|| {
                                Error::invalid("unable to derive the IP value for host-gateway")
                            })?
                    }
                    other => other
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string(),
                };
                text.push_str(&format!("{ip}\t{h}\n"));
            }
        }
        for l in &sandbox.links {
            text.push_str(&l.hosts_line());
        }
        if !host_network {
            if sandbox.endpoints.is_empty() {
                text.push_str(&format!("127.0.1.1\t{hostname}\n"));
            }
            for e in &sandbox.endpoints {
                text.push_str(&format!("{}\t{hostname}\n", e.ip));
            }
        }
        std::fs::write(&hosts, text).map_err(|e| io(&hosts, e))?;
        let resolv = dir.join("resolv.conf");
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let text = crate::networks::resolv_conf(
            &rec.host_config,
            &host_resolv,
            sandbox.embedded_dns,
            host_network,
        );
        std::fs::write(&resolv, text).map_err(|e| io(&resolv, e))?;
        let hn = dir.join("hostname");
        std::fs::write(&hn, format!("{hostname}\n")).map_err(|e| io(&hn, e))?;
        Ok((hosts, resolv, hn))
    }
}

/// A new 64-hex container ID.
pub fn new_id() -> String {
    let mut buf = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    hex_encode(&buf)
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The entries of a host config's `Binds` (`-v`).
pub(crate) fn binds(hc: &Value) -> impl Iterator<Item = &str> {
    hc["Binds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
}

/// One `Binds` entry, `SOURCE:DESTINATION[:OPTIONS]`: a host path when
/// SOURCE is absolute, else a volume name.
pub(crate) struct BindSpec<'a> {
    pub source: &'a str,
    pub destination: &'a str,
    pub options: Option<&'a str>,
}

impl<'a> BindSpec<'a> {
    /// `None` unless the entry has two or three parts.
    pub fn parse(b: &'a str) -> Option<BindSpec<'a>> {
        let mut parts = b.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(source), Some(destination), options, None) => Some(BindSpec {
                source,
                destination,
                options,
            }),
            _ => None,
        }
    }

    /// Whether OPTIONS (comma-separated) has `option`.
    pub fn has(&self, option: &str) -> bool {
        self.options
            .is_some_and(|o| o.split(',').any(|x| x == option))
    }

    pub fn is_host_path(&self) -> bool {
        self.source.starts_with('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> Result<SecurityOpts, Error> {
        security_opts(&json!({ "SecurityOpt": list }))
    }

    #[test]
    fn security_opts_like_dockerd() {
        let o = opts(&[]).unwrap();
        assert_eq!((o.seccomp, o.no_new_privileges), (Seccomp::Builtin, false));
        let o = opts(&["no-new-privileges", "seccomp=unconfined", "label=disable"]).unwrap();
        assert_eq!(
            (o.seccomp, o.no_new_privileges),
            (Seccomp::Unconfined, true)
        );
        let o = opts(&["no-new-privileges:true", "seccomp:builtin"]).unwrap();
        assert_eq!((o.seccomp, o.no_new_privileges), (Seccomp::Builtin, true));
        assert!(
            !opts(&["no-new-privileges=false"])
                .unwrap()
                .no_new_privileges
        );
        let profile = r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#;
        assert!(matches!(
            opts(&[profile]).unwrap().seccomp,
            Seccomp::Custom(_)
        ));

        let msg = |l: &[&str]| opts(l).unwrap_err().to_string();
        assert_eq!(msg(&["bogus"]), "invalid --security-opt 1: \"bogus\"");
        assert_eq!(msg(&["bogus=1"]), "invalid --security-opt 2: \"bogus=1\"");
        assert_eq!(
            msg(&["no-new-privileges=maybe"]),
            "invalid --security-opt 2: \"no-new-privileges=maybe\""
        );
        assert_eq!(
            msg(&[r#"seccomp={"defaultAction":"SCMP_ACT_NOPE"}"#]),
            "invalid seccomp profile: Unknown seccomp action \"SCMP_ACT_NOPE\" in defaultAction"
        );
        assert_eq!(
            opts(&["seccomp=[1]"]).unwrap_err().kind,
            servin_api::ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn init_binary_errors_name_the_path() {
        assert_eq!(
            check_init_binary(Path::new("/nonexistent/init"))
                .unwrap_err()
                .to_string(),
            "exec: \"/nonexistent/init\": stat /nonexistent/init: no such file or directory"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("init");
        std::fs::write(&f, "").unwrap();
        assert!(check_init_binary(&f)
            .unwrap_err()
            .to_string()
            .ends_with("permission denied"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        check_init_binary(&f).unwrap();
    }

    #[test]
    fn binds_have_two_or_three_parts() {
        let b = BindSpec::parse("data:/srv:ro,nocopy").unwrap();
        assert_eq!((b.source, b.destination), ("data", "/srv"));
        assert!(b.has("ro") && b.has("nocopy") && !b.has("rw") && !b.is_host_path());
        let b = BindSpec::parse("/host:/srv").unwrap();
        assert!(b.is_host_path() && b.options.is_none() && !b.has("ro"));
        assert!(BindSpec::parse("/only").is_none());
        assert!(BindSpec::parse("a:/b:ro:extra").is_none());
    }
}
