//! `docker top`: the container's processes as the host's `ps` shows them,
//! picked out by the PIDs in the container's cgroup, as Docker does.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{json, Value};
use servin_api::Error;

use super::record::{ContainerRecord, State};
use crate::{Engine, Event};

/// `ps` options that drop the header line, without which nothing can be parsed.
const NO_HEADERS: [&str; 8] = [
    "--no-header",
    "--no-headers",
    "--no-heading",
    "--no-headings",
    "--noheader",
    "--noheaders",
    "--noheading",
    "--noheadings",
];

impl Engine {
    /// `GET /containers/{id}/top?ps_args=…` (default `-ef`).
    pub async fn container_top(&self, name: &str, ps_args: &str) -> Result<Value, Error> {
        let ps_args = if ps_args.is_empty() { "-ef" } else { ps_args };
        validate_ps_args(ps_args)?;
        let rec = self.containers().get(name)?;
        match rec.state {
            State::Restarting { .. } => {
                return Err(Error::conflict(format!(
                    "Container {} is restarting, wait until the container is running",
                    rec.id
                )))
            }
            ref s if !s.is_running() => {
                return Err(Error::conflict(format!(
                    "Container {} is not running",
                    rec.id
                )))
            }
            _ => {}
        }
        let args: Vec<String> = ps_args
            .split(' ')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(a) = args.iter().find(|a| NO_HEADERS.contains(&a.as_str())) {
            return Err(Error::invalid(format!("option {a} is not allowed")));
        }
        let cgroup = cgroup_path(&rec);
        let fallback = rec.state.pid();
        let out = tokio::task::spawn_blocking(move || {
            let mut pids = cgroup_pids(&cgroup);
            if pids.is_empty() {
                pids.extend(fallback);
            }
            let output = run_ps(&args, &pids)?;
            parse_ps(&output, &pids)
        })
        .await
        .map_err(|e| Error::internal(format!("Blocking task failed: {e}")))??;
        self.emit(Event::container("top", &rec.id, &rec));
        Ok(out)
    }
}

/// The container's cgroup below each hierarchy's root, as the runtime makes it.
fn cgroup_path(rec: &ContainerRecord) -> String {
    let parent = rec.host_config["CgroupParent"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("servin")
        .trim_matches('/');
    if parent.is_empty() {
        format!("/{}", rec.id)
    } else {
        format!("/{parent}/{}", rec.id)
    }
}

/// The PIDs in the container's cgroup, in every mounted hierarchy (v1 or v2).
fn cgroup_pids(cgroup: &str) -> BTreeSet<u32> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut pids = BTreeSet::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        if !matches!(post.split(' ').next(), Some("cgroup" | "cgroup2")) {
            continue;
        }
        let Some(mount_point) = pre.split(' ').nth(4) else {
            continue;
        };
        let procs = format!("{mount_point}{cgroup}/cgroup.procs");
        if let Ok(text) = std::fs::read_to_string(procs) {
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    pids
}

/// Runs `ps ARGS -qPIDS`, or `ps ARGS` when `ps` refuses `-q` with those
/// options; a failure reports the first line `ps` printed on stderr.
fn run_ps(args: &[String], pids: &BTreeSet<u32>) -> Result<String, Error> {
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    let with_pids = Command::new("ps")
        .args(args)
        .arg(format!("-q{}", list.join(",")))
        .output();
    if let Ok(out) = &with_pids {
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
    }
    let out = Command::new("ps")
        .args(args)
        .output()
        .map_err(|e| Error::internal(format!("ps: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr
            .lines()
            .next()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| out.status.to_string());
        return Err(Error::internal(format!("ps: {why}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Refuses `-o x=PID`-style options that would rename a column to `PID`.
fn validate_ps_args(args: &str) -> Result<(), Error> {
    let b = args.as_bytes();
    let mut tokens: Vec<(usize, &str)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        tokens.push((start, &args[start..i]));
    }
    for (n, (start, token)) in tokens.iter().enumerate() {
        // The pattern is `\s+(\S*)=\s*(PID\S*)`: a token after whitespace.
        if *start == 0 {
            continue;
        }
        for (eq, _) in token
            .match_indices('=')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let rest = &token[eq + 1..];
            let value = if rest.is_empty() {
                tokens.get(n + 1).map(|(_, t)| *t).unwrap_or("")
            } else {
                rest
            };
            if value.starts_with("PID") {
                let key = &token[..eq];
                if key != "pid" {
                    return Err(Error::invalid(format!(
                        "specifying \"{key}={value}\" is not allowed"
                    )));
                }
                break;
            }
        }
    }
    Ok(())
}

/// Parses `ps` output as Docker does: columns are found from the header and
/// widened left over the rows, so a `CMD` with spaces stays one field; rows
/// whose PID is not the container's are dropped (with the thread rows, PID
/// `-`, that follow them).
fn parse_ps(output: &str, pids: &BTreeSet<u32>) -> Result<Value, Error> {
    let lines: Vec<&[u8]> = output.split('\n').map(str::as_bytes).collect();
    let header = lines[0];
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for (i, c) in header.iter().enumerate() {
        let space = c.is_ascii_whitespace();
        match spans.last_mut() {
            Some((_, end)) if !space && *end == i => *end = i + 1,
            _ if !space => spans.push((i, i + 1)),
            _ => {}
        }
    }
    let titles: Vec<String> = spans
        .iter()
        .map(|(s, e)| String::from_utf8_lossy(&header[*s..*e]).into_owned())
        .collect();
    let pid_index = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::internal("Couldn't find PID field in ps output"))?;
    let rows = &lines[1..];
    if let Some(first) = spans.first_mut() {
        first.0 = 0;
    }
    for i in 1..spans.len() {
        let previous_end = spans[i - 1].1 as isize;
        let mut start = spans[i].0 as isize - 1;
        loop {
            let blocked = rows.iter().any(|l| {
                (l.len() as isize) > start && start >= 0 && !l[start as usize].is_ascii_whitespace()
            });
            if blocked {
                start -= 1;
            }
            if start < previous_end {
                break;
            }
            if !blocked {
                spans[i].0 = start as usize;
                break;
            }
        }
    }
    let mut processes: Vec<Vec<String>> = Vec::new();
    let mut keep_threads = false;
    for line in rows.iter().filter(|l| !l.is_empty()) {
        let fields: Vec<String> = spans
            .iter()
            .enumerate()
            .map(|(i, (s, _))| {
                let end = spans.get(i + 1).map_or(line.len(), |n| n.0).min(line.len());
                let s = (*s).min(end);
                String::from_utf8_lossy(&line[s..end]).trim().to_string()
            })
            .collect();
        let pid = &fields[pid_index];
        if pid == "-" {
            if keep_threads {
                processes.push(fields);
            }
            continue;
        }
        let p: u32 = pid
            .parse()
            .map_err(|e| Error::internal(format!("Unexpected pid '{pid}': {e}")))?;
        keep_threads = pids.contains(&p);
        if keep_threads {
            processes.push(fields);
        }
    }
    Ok(json!({
        "Titles": titles,
        "Processes": if processes.is_empty() { Value::Null } else { json!(processes) },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS: &str = "\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 04:00 ?        00:00:01 /sbin/init splash
root        4242    4200  0 04:34 ?        00:00:00 sleep 1000
root        4243    4242  0 04:34 ?        00:00:00 sh -c echo a  b
";

    #[test]
    fn keeps_the_container_rows_with_whole_commands() {
        let pids = BTreeSet::from([4242, 4243]);
        let v = parse_ps(PS, &pids).unwrap();
        assert_eq!(
            v["Titles"],
            json!(["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"])
        );
        assert_eq!(
            v["Processes"],
            json!([
                [
                    "root",
                    "4242",
                    "4200",
                    "0",
                    "04:34",
                    "?",
                    "00:00:00",
                    "sleep 1000"
                ],
                [
                    "root",
                    "4243",
                    "4242",
                    "0",
                    "04:34",
                    "?",
                    "00:00:00",
                    "sh -c echo a  b"
                ],
            ])
        );
        assert_eq!(
            parse_ps(PS, &BTreeSet::new()).unwrap()["Processes"],
            Value::Null
        );
        assert!(parse_ps("USER CMD\nroot x\n", &pids).is_err());
    }

    #[test]
    fn ps_args_may_not_rename_a_column_to_pid() {
        assert!(validate_ps_args("-ef").is_ok());
        assert!(validate_ps_args("-o pid=PID,comm").is_ok());
        let err = validate_ps_args("-o x=PID").unwrap_err();
        assert_eq!(err.message, "specifying \"x=PID\" is not allowed");
        assert!(validate_ps_args("-o comm= PIDX").is_err());
    }
}
