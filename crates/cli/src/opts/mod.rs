//! The container flags of `run` and `create` (docker's `containerOptions`)
//! and their translation into the create request body (docker's `parse`).

pub mod body;
mod flags;
mod kv;
mod mounts;
mod ports;
pub mod units;

use std::collections::BTreeMap;

use body::{CreateRequest, EndpointSettings, HealthConfig, RestartPolicy, Ulimit};

pub use flags::ContainerFlags;
pub use kv::read_files;

/// Why flags could not become a request.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A bad flag value, reported by pflag with the usage: `invalid
    /// argument "lots" for "-m, --memory" flag: invalid size: 'lots'`.
    Flag(String),
    /// A rejected combination, reported by docker's `parse`.
    Invalid(String),
}

fn flag_error(name: &str, value: &str, err: impl std::fmt::Display) -> ParseError {
    ParseError::Flag(format!(
        "invalid argument {value:?} for \"{name}\" flag: {err}"
    ))
}

fn invalid(msg: impl Into<String>) -> ParseError {
    ParseError::Invalid(msg.into())
}

/// Looks up a process environment variable (injected for tests).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn int_flag(name: &str, value: &Option<String>, bits: u32) -> Result<i64, ParseError> {
    match value {
        None => Ok(0),
        Some(v) => units::parse_int(v, bits).map_err(|e| flag_error(name, v, e)),
    }
}

fn size_flag(name: &str, value: &Option<String>) -> Result<i64, ParseError> {
    match value {
        None => Ok(0),
        Some(v) => units::ram_in_bytes(v).map_err(|e| flag_error(name, v, e)),
    }
}

fn duration_flag(name: &str, value: &Option<String>) -> Result<i64, ParseError> {
    match value {
        None => Ok(0),
        Some(v) => units::parse_duration(v).map_err(|e| flag_error(name, v, e)),
    }
}

fn nonempty(v: Vec<String>) -> Option<Vec<String>> {
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

/// Docker's `RestartPolicy` parsing (`opts.ParseRestartPolicy`).
pub fn parse_restart_policy(policy: &str) -> Result<RestartPolicy, String> {
    if policy.is_empty() {
        return Ok(RestartPolicy {
            name: String::new(),
            maximum_retry_count: 0,
        });
    }
    let (name, count) = match policy.split_once(':') {
        Some(("", _)) => {
            return Err("invalid restart policy format: no policy provided before colon".into())
        }
        Some((name, count)) => (name, count),
        None => (policy, ""),
    };
    let maximum_retry_count = if count.is_empty() {
        0
    } else {
        count.parse::<i64>().map_err(|_| {
            "invalid restart policy format: maximum retry count must be an integer".to_string()
        })?
    };
    Ok(RestartPolicy {
        name: name.to_string(),
        maximum_retry_count,
    })
}

/// Docker client's `normalizeCapabilities`: upper case, `CAP_` prefix,
/// deduplicated and sorted.
fn normalize_caps(caps: &[String]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for c in caps {
        let mut c = c.to_uppercase();
        if c != "ALL" && !c.starts_with("CAP_") {
            c = format!("CAP_{c}");
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out.sort();
    nonempty(out)
}

fn is_user_defined_network(name: &str) -> bool {
    !matches!(name, "default" | "bridge" | "host" | "none") && !name.starts_with("container:")
}

/// `key=value` strings to a map (`opts.ConvertKVStringsToMap`).
fn kv_map(values: &[String]) -> BTreeMap<String, String> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (v.clone(), String::new()),
        })
        .collect()
}

const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
    "as",
];

/// go-units `ParseUlimit`.
fn parse_ulimit(val: &str) -> Result<Ulimit, String> {
    let Some((name, limits)) = val.split_once('=') else {
        return Err(format!("invalid ulimit argument: {val}"));
    };
    if !ULIMIT_NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let parse = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("strconv.ParseInt: parsing {s:?}: invalid syntax"))
    };
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => {
            let s = parse(soft)?;
            (s, s)
        }
        [soft, hard] => (parse(soft)?, parse(hard)?),
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ))
        }
    };
    if hard != -1 {
        if soft == -1 {
            return Err(format!("ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"));
        }
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
    }
    Ok(Ulimit {
        name: name.to_string(),
        hard,
        soft,
    })
}

impl ContainerFlags {
    /// Docker's `parse`: flags plus image and command → the create body.
    /// `lookup` reads the process environment (`-e NAME` takes its value).
    pub fn to_request(
        &self,
        image: &str,
        args: &[String],
        lookup: Lookup<'_>,
    ) -> Result<CreateRequest, ParseError> {
        let mut attach = [false; 3];
        for a in &self.attach {
            match a.to_lowercase().as_str() {
                "stdin" => attach[0] = true,
                "stdout" => attach[1] = true,
                "stderr" => attach[2] = true,
                _ => {
                    return Err(flag_error(
                        "-a, --attach",
                        a,
                        "valid streams are STDIN, STDOUT and STDERR",
                    ))
                }
            }
        }
        for s in &self.sysctl {
            let key = s.split_once('=').map(|(k, _)| k);
            if !key.is_some_and(servin_api::sysctl_is_namespaced) {
                return Err(flag_error(
                    "--sysctl",
                    s,
                    format!("sysctl '{s}' is not allowed"),
                ));
            }
        }
        for l in &self.link {
            servin_api::parse_link(l).map_err(|e| flag_error("--link", l, e))?;
        }
        for e in &self.env {
            if e.split('=').next().unwrap_or_default().is_empty() {
                return Err(flag_error(
                    "-e, --env",
                    e,
                    format!("invalid environment variable: {e}"),
                ));
            }
        }
        for l in &self.label {
            let key = l
                .split('=')
                .next()
                .unwrap_or_default()
                .trim_start_matches([' ', '\t']);
            if key.is_empty() {
                return Err(flag_error(
                    "-l, --label",
                    l,
                    format!("invalid label '{l}': empty name"),
                ));
            }
            if key.contains([' ', '\t']) {
                return Err(flag_error(
                    "-l, --label",
                    l,
                    format!("label '{key}' contains whitespaces"),
                ));
            }
        }
        let mut ulimits = Vec::new();
        for u in &self.ulimit {
            let parsed = parse_ulimit(u).map_err(|e| flag_error("--ulimit", u, e))?;
            ulimits.retain(|x: &Ulimit| x.name != parsed.name);
            ulimits.push(parsed);
        }
        ulimits.sort_by(|a, b| a.name.cmp(&b.name));
        let mut mounts = Vec::new();
        for m in &self.mount {
            mounts.push(mounts::parse_mount(m).map_err(|e| flag_error("--mount", m, e))?);
        }
        let memory = size_flag("-m, --memory", &self.memory)?;
        let memory_reservation = size_flag("--memory-reservation", &self.memory_reservation)?;
        let memory_swap = match self.memory_swap.as_deref() {
            Some("-1") => -1,
            _ => size_flag("--memory-swap", &self.memory_swap)?,
        };
        let shm_size = size_flag("--shm-size", &self.shm_size)?;
        let nano_cpus = match &self.cpus {
            None => 0,
            Some(v) => units::parse_cpus(v).map_err(|e| flag_error("--cpus", v, e))?,
        };
        let cpu_shares = int_flag("-c, --cpu-shares", &self.cpu_shares, 64)?;
        let cpu_period = int_flag("--cpu-period", &self.cpu_period, 64)?;
        let cpu_quota = int_flag("--cpu-quota", &self.cpu_quota, 64)?;
        let pids_limit = int_flag("--pids-limit", &self.pids_limit, 64)?;
        let oom_score_adj = int_flag("--oom-score-adj", &self.oom_score_adj, 64)?;
        let swappiness = match &self.memory_swappiness {
            None => -1,
            Some(v) => {
                units::parse_int(v, 64).map_err(|e| flag_error("--memory-swappiness", v, e))?
            }
        };
        let stop_timeout = match &self.stop_timeout {
            None => None,
            Some(v) => {
                Some(units::parse_int(v, 64).map_err(|e| flag_error("--stop-timeout", v, e))?)
            }
        };
        let health_retries = int_flag("--health-retries", &self.health_retries, 64)?;
        let health_interval = duration_flag("--health-interval", &self.health_interval)?;
        let health_timeout = duration_flag("--health-timeout", &self.health_timeout)?;
        let health_start_period =
            duration_flag("--health-start-period", &self.health_start_period)?;
        let health_start_interval =
            duration_flag("--health-start-interval", &self.health_start_interval)?;
        let init = match &self.init {
            None => None,
            Some(v) => Some(units::parse_bool(v).map_err(|e| flag_error("--init", v, e))?),
        };

        // From here on, docker's `parse` proper.
        let attach_stdin = attach[0] || self.interactive;
        let (attach_stdout, attach_stderr) = if self.attach.is_empty() {
            (true, true)
        } else {
            (attach[1], attach[2])
        };
        if swappiness != -1 && !(0..=100).contains(&swappiness) {
            return Err(invalid(format!(
                "invalid value: {swappiness}. Valid memory swappiness range is 0-100"
            )));
        }
        let volumes = mounts::parse_volumes(&self.volume).map_err(invalid)?;
        let tmpfs = mounts::parse_tmpfs(&self.tmpfs);
        let entrypoint = self.entrypoint.as_deref().map(|e| vec![e.to_string()]);
        let (mut exposed, port_bindings) = ports::parse_publish(&self.publish).map_err(invalid)?;
        ports::add_exposed(&mut exposed, &self.expose).map_err(invalid)?;
        let mut env = kv::read_files(&self.env_file, Some(lookup)).map_err(invalid)?;
        env.extend(self.env.iter().map(|e| kv::with_process_value(e, lookup)));
        let mut labels = kv::read_files(&self.label_file, None).map_err(invalid)?;
        labels.extend(self.label.iter().cloned());
        let pid = self.pid.clone().unwrap_or_default();
        if !valid_namespace_mode(&pid, &["host"], "container:") {
            return Err(invalid("--pid: invalid PID mode"));
        }
        let uts = self.uts.clone().unwrap_or_default();
        if !valid_namespace_mode(&uts, &["host"], "") {
            return Err(invalid("--uts: invalid UTS mode"));
        }
        let userns = self.userns.clone().unwrap_or_default();
        if !valid_namespace_mode(&userns, &["host"], "") {
            return Err(invalid("--userns: invalid USER mode"));
        }
        let cgroupns = self.cgroupns.clone().unwrap_or_default();
        if !matches!(cgroupns.as_str(), "" | "host" | "private") {
            return Err(invalid("--cgroupns: invalid CGROUP mode"));
        }
        let restart_policy = parse_restart_policy(&self.restart).map_err(invalid)?;
        let log_driver = self.log_driver.clone().unwrap_or_default();
        if log_driver == "none" && !self.log_opt.is_empty() {
            return Err(invalid(format!(
                "invalid logging opts for driver {log_driver}"
            )));
        }
        let mut security_opt = Vec::new();
        let mut masked_paths = None;
        let mut readonly_paths = None;
        for opt in &self.security_opt {
            let (k, v) = match opt.split_once('=') {
                Some(kv) => kv,
                None if opt == "no-new-privileges" => (opt.as_str(), ""),
                None => opt.split_once(':').unwrap_or((opt.as_str(), "")),
            };
            if v.is_empty() && k != "no-new-privileges" {
                return Err(invalid(format!("Invalid --security-opt: {opt:?}")));
            }
            if opt == "systempaths=unconfined" {
                masked_paths = Some(Vec::new());
                readonly_paths = Some(Vec::new());
                continue;
            }
            if k == "seccomp" && v != "builtin" && v != "unconfined" {
                security_opt.push(seccomp_profile(v)?);
                continue;
            }
            security_opt.push(opt.clone());
        }
        let mut storage_opt = BTreeMap::new();
        for o in &self.storage_opt {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| invalid("invalid storage option"))?;
            storage_opt.insert(k.to_string(), v.to_string());
        }
        let healthcheck = self.healthcheck(
            health_interval,
            health_timeout,
            health_start_period,
            health_start_interval,
            health_retries,
        )?;

        let mut req = CreateRequest::default();
        let c = &mut req.config;
        c.hostname = self.hostname.clone().unwrap_or_default();
        c.domainname = self.domainname.clone().unwrap_or_default();
        c.exposed_ports = exposed;
        c.user = self.user.clone().unwrap_or_default();
        c.tty = self.tty;
        c.open_stdin = self.interactive;
        c.attach_stdin = attach_stdin;
        c.attach_stdout = attach_stdout;
        c.attach_stderr = attach_stderr;
        c.env = nonempty(env);
        c.cmd = nonempty(args.to_vec());
        c.image = image.to_string();
        c.volumes = volumes
            .anonymous
            .iter()
            .map(|v| (v.clone(), body::Empty {}))
            .collect();
        c.entrypoint = entrypoint;
        c.working_dir = self.workdir.clone().unwrap_or_default();
        c.labels = kv_map(&labels);
        c.stop_signal = self.stop_signal.clone().unwrap_or_default();
        c.healthcheck = healthcheck;
        c.stop_timeout = stop_timeout;
        c.stdin_once = c.open_stdin && c.attach_stdin;

        let h = &mut req.host_config;
        h.binds = nonempty(volumes.binds);
        h.container_id_file = self.cidfile.clone().unwrap_or_default();
        h.oom_score_adj = oom_score_adj;
        h.auto_remove = self.rm;
        h.privileged = self.privileged;
        h.port_bindings = port_bindings;
        h.publish_all_ports = self.publish_all;
        h.dns = self.dns.clone();
        h.dns_search = self.dns_search.clone();
        h.dns_options = self.dns_option.clone();
        h.extra_hosts = nonempty(self.add_host.clone());
        h.links = nonempty(self.link.clone());
        h.volumes_from = nonempty(self.volumes_from.clone());
        h.ipc_mode = self.ipc.clone().unwrap_or_default();
        h.network_mode = self
            .network
            .first()
            .map(|n| network_target(n))
            .unwrap_or_else(|| "default".into());
        h.pid_mode = pid;
        h.uts_mode = uts;
        h.userns_mode = userns;
        h.cgroupns_mode = cgroupns;
        h.cap_add = normalize_caps(&self.cap_add);
        h.cap_drop = normalize_caps(&self.cap_drop);
        h.group_add = nonempty(self.group_add.clone());
        h.restart_policy = restart_policy;
        h.security_opt = nonempty(security_opt);
        h.masked_paths = masked_paths;
        h.readonly_paths = readonly_paths;
        h.storage_opt = storage_opt;
        h.readonly_rootfs = self.read_only;
        h.log_config.r#type = log_driver;
        h.log_config.config = kv_map(&self.log_opt);
        h.volume_driver = self.volume_driver.clone().unwrap_or_default();
        h.shm_size = shm_size;
        h.tmpfs = tmpfs;
        h.sysctls = kv_map(&self.sysctl);
        h.runtime = self.runtime.clone().unwrap_or_default();
        h.mounts = mounts;
        h.annotations = kv_map(&self.annotation);
        h.cgroup_parent = self.cgroup_parent.clone().unwrap_or_default();
        h.memory = memory;
        h.memory_reservation = memory_reservation;
        h.memory_swap = memory_swap;
        h.memory_swappiness = swappiness;
        h.oom_kill_disable = self.oom_kill_disable;
        h.nano_cpus = nano_cpus;
        h.cpu_shares = cpu_shares;
        h.cpu_period = cpu_period;
        h.cpu_quota = cpu_quota;
        h.cpuset_cpus = self.cpuset_cpus.clone().unwrap_or_default();
        h.cpuset_mems = self.cpuset_mems.clone().unwrap_or_default();
        h.pids_limit = pids_limit;
        h.ulimits = ulimits;
        h.init = init;

        if self.rm && !h.restart_policy.is_none() {
            return Err(invalid(
                "conflicting options: cannot specify both --restart and --rm",
            ));
        }
        req.networking_config.endpoints_config = self.endpoints()?;
        Ok(req)
    }

    fn healthcheck(
        &self,
        interval: i64,
        timeout: i64,
        start_period: i64,
        start_interval: i64,
        retries: i64,
    ) -> Result<Option<HealthConfig>, ParseError> {
        let cmd = self.health_cmd.clone().unwrap_or_default();
        let have = !cmd.is_empty()
            || interval != 0
            || timeout != 0
            || start_period != 0
            || retries != 0
            || start_interval != 0;
        if self.no_healthcheck {
            if have {
                return Err(invalid(
                    "--no-healthcheck conflicts with --health-* options",
                ));
            }
            return Ok(Some(HealthConfig {
                test: vec!["NONE".into()],
                ..Default::default()
            }));
        }
        if !have {
            return Ok(None);
        }
        for (value, name) in [
            (interval, "--health-interval"),
            (timeout, "--health-timeout"),
            (retries, "--health-retries"),
            (start_period, "--health-start-period"),
            (start_interval, "--health-start-interval"),
        ] {
            if value < 0 {
                return Err(invalid(format!("{name} cannot be negative")));
            }
        }
        Ok(Some(HealthConfig {
            test: if cmd.is_empty() {
                Vec::new()
            } else {
                vec!["CMD-SHELL".into(), cmd]
            },
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        }))
    }

    /// Docker's `parseNetworkOpts` for plain network names and aliases.
    fn endpoints(&self) -> Result<BTreeMap<String, EndpointSettings>, ParseError> {
        let mut endpoints = BTreeMap::new();
        let aliases = nonempty(self.network_alias.clone());
        if self.network.is_empty() {
            if aliases.is_some() {
                return Err(invalid(
                    "network-scoped aliases are only supported for user-defined networks",
                ));
            }
            endpoints.insert("default".to_string(), EndpointSettings::default());
            return Ok(endpoints);
        }
        let (mut user_defined, mut builtin) = (false, false);
        for (i, n) in self.network.iter().enumerate() {
            let target = network_target(n);
            if target.trim().is_empty() {
                return Err(invalid("no name set for network"));
            }
            if is_user_defined_network(&target) {
                user_defined = true;
            } else {
                builtin = true;
            }
            let ep = EndpointSettings {
                aliases: if i == 0 { aliases.clone() } else { None },
                ..Default::default()
            };
            if ep.aliases.is_some() && !is_user_defined_network(&target) {
                return Err(invalid(
                    "network-scoped aliases are only supported for user-defined networks",
                ));
            }
            if endpoints.contains_key(&target) {
                return Err(invalid(format!(
                    "network {target:?} is specified multiple times"
                )));
            }
            // Docker's CLI also gives `--link` to a user network's endpoint.
            let mut ep = ep;
            if i == 0 && is_user_defined_network(&target) {
                ep.links = nonempty(self.link.clone());
            }
            if i == 0 && self.network.len() == 1 && ep == EndpointSettings::default() {
                continue;
            }
            endpoints.insert(target, ep);
        }
        if user_defined && builtin {
            return Err(invalid("conflicting options: cannot attach both user-defined and non-user-defined network-modes"));
        }
        Ok(endpoints)
    }
}

/// The network a `--network` value names (`name=x,alias=y` or `x`).
fn network_target(value: &str) -> String {
    if !value.contains('=') {
        return value.to_string();
    }
    value
        .split(',')
        .find_map(|f| {
            let (k, v) = f.split_once('=')?;
            (k.trim().eq_ignore_ascii_case("name")).then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// Docker's `PidMode.Valid` and friends: empty, one of `words`, or
/// `prefix` + a non-empty name.
fn valid_namespace_mode(mode: &str, words: &[&str], prefix: &str) -> bool {
    if mode.is_empty() || words.contains(&mode) {
        return true;
    }
    !prefix.is_empty()
        && mode
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty())
}

/// `--security-opt seccomp=FILE`: the profile's compacted JSON.
fn seccomp_profile(path: &str) -> Result<String, ParseError> {
    let text = std::fs::read(path).map_err(|e| {
        invalid(format!(
            "opening seccomp profile ({path}) failed: {}",
            crate::commands::path_error("open", path, &e)
        ))
    })?;
    serde_json::from_slice::<serde::de::IgnoredAny>(&text).map_err(|e| {
        invalid(format!(
            "compacting json for seccomp profile ({path}) failed: {e}"
        ))
    })?;
    Ok(format!("seccomp={}", crate::format::json::compact(&text)))
}

#[cfg(test)]
mod tests;
