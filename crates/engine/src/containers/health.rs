//! Healthchecks: the image's `HEALTHCHECK` or `--health-*` flags, probed by
//! exec through the shim, with Docker's states, log and events.

use std::io::Read;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use servin_runtime::{ProcessSpec, ShimClient};

use crate::{Engine, Event};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u64 = 3;
/// Docker keeps the last five results and 4 KiB of output each.
const LOG_ENTRIES: usize = 5;
const MAX_OUTPUT: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub status: String,
    pub failing_streak: u64,
    pub log: Vec<Probe>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

impl Health {
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "Status": self.status,
            "FailingStreak": self.failing_streak,
            "Log": self.log.iter().map(|p| serde_json::json!({
                "Start": p.start, "End": p.end, "ExitCode": p.exit_code, "Output": p.output,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The probe settings of a container, if it has a healthcheck.
struct Check {
    args: Vec<String>,
    interval: Duration,
    timeout: Duration,
    start_period: Duration,
    retries: u64,
}

fn nanos(v: &Value, default: Duration) -> Duration {
    match v.as_i64() {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

fn check_of(config: &Value) -> Option<Check> {
    let hc = &config["Healthcheck"];
    let test: Vec<String> = hc["Test"]
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let args = match test.first().map(String::as_str) {
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), test.get(1..)?.join(" ")],
        _ => return None,
    };
    if args.is_empty() {
        return None;
    }
    Some(Check {
        args,
        interval: nanos(&hc["Interval"], DEFAULT_INTERVAL),
        timeout: nanos(&hc["Timeout"], DEFAULT_TIMEOUT),
        start_period: nanos(&hc["StartPeriod"], Duration::ZERO),
        retries: hc["Retries"]
            .as_u64()
            .filter(|r| *r > 0)
            .unwrap_or(DEFAULT_RETRIES),
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Runs one probe in the container; returns its exit code and output.
fn probe(dir: &std::path::Path, process: &ProcessSpec, timeout: Duration) -> (i64, String) {
    let result = ShimClient::connect(dir).and_then(|c| {
        let (mut stream, id) = c.exec(process)?;
        let _ = stream.set_read_timeout(Some(timeout));
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let started = std::time::Instant::now();
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
            if started.elapsed() > timeout {
                break;
            }
        }
        if started.elapsed() > timeout {
            return Ok((
                -1,
                format!("Health check exceeded timeout ({}s)", timeout.as_secs()),
            ));
        }
        for _ in 0..100 {
            let st = c.exec_status(&id)?;
            if let Some(code) = st.exit_code {
                return Ok((i64::from(code), demux(&raw)));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok((-1, "Health check did not report an exit status".to_string()))
    });
    match result {
        Ok(r) => r,
        Err(e) => (-1, e.to_string()),
    }
}

/// The payload of Docker's 8-byte frames, both streams, capped.
fn demux(raw: &[u8]) -> String {
    let mut out = Vec::new();
    let mut rest = raw;
    while rest.len() >= 8 {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let end = (8 + len).min(rest.len());
        out.extend_from_slice(&rest[8..end]);
        rest = &rest[end..];
    }
    out.truncate(MAX_OUTPUT);
    String::from_utf8_lossy(&out).into_owned()
}

impl Engine {
    /// Starts probing a just-started container, if it has a healthcheck.
    pub(crate) fn start_health(&self, id: &str) {
        let Ok(rec) = self.containers().get(id) else {
            return;
        };
        let Some(check) = check_of(&rec.config) else {
            return;
        };
        let Some(started) = rec.state.pid() else {
            return;
        };
        let _ = self.containers().update(id, |r| {
            r.health = Some(Health {
                status: "starting".into(),
                failing_streak: 0,
                log: Vec::new(),
            });
            Ok(())
        });
        let engine = self.clone();
        let id = id.to_string();
        let process = ProcessSpec {
            args: check.args.clone(),
            env: rec.config["Env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            cwd: rec.config["WorkingDir"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("/")
                .to_string(),
            user: rec.config["User"].as_str().unwrap_or("").to_string(),
            tty: false,
            open_stdin: false,
            init: false,
        };
        tokio::spawn(async move {
            let began = std::time::Instant::now();
            loop {
                tokio::time::sleep(check.interval).await;
                // Stop when the container stopped or was restarted (another loop took over).
                match engine.containers().get(&id) {
                    Ok(r) if r.state.pid() == Some(started) => {}
                    _ => return,
                }
                let dir = engine.containers().dir(&id);
                let (p, timeout) = (process.clone(), check.timeout);
                let start = now();
                let Ok((code, output)) =
                    tokio::task::spawn_blocking(move || probe(&dir, &p, timeout)).await
                else {
                    return;
                };
                let end = now();
                let in_start_period = began.elapsed() < check.start_period;
                let mut changed = None;
                let updated = engine.containers().update(&id, |r| {
                    let h = r.health.get_or_insert(Health {
                        status: "starting".into(),
                        failing_streak: 0,
                        log: Vec::new(),
                    });
                    h.log.push(Probe {
                        start,
                        end,
                        exit_code: code,
                        output,
                    });
                    if h.log.len() > LOG_ENTRIES {
                        h.log.remove(0);
                    }
                    let before = h.status.clone();
                    if code == 0 {
                        h.failing_streak = 0;
                        h.status = "healthy".into();
                    } else if !in_start_period {
                        h.failing_streak += 1;
                        if h.failing_streak >= check.retries {
                            h.status = "unhealthy".into();
                        }
                    }
                    if h.status != before {
                        changed = Some(h.status.clone());
                    }
                    Ok(())
                });
                let Ok((_, rec)) = updated else { return };
                if let Some(status) = changed {
                    engine.emit(Event::container(
                        &format!("health_status: {status}"),
                        &id,
                        &rec,
                    ));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_healthcheck_forms() {
        let c = check_of(&serde_json::json!({"Healthcheck": {"Test": ["CMD-SHELL", "test -f /ok"], "Interval": 1_000_000_000i64, "Retries": 2}})).unwrap();
        assert_eq!(c.args, ["/bin/sh", "-c", "test -f /ok"]);
        assert_eq!(
            (c.interval, c.retries, c.timeout),
            (Duration::from_secs(1), 2, DEFAULT_TIMEOUT)
        );
        assert!(check_of(&serde_json::json!({"Healthcheck": {"Test": ["NONE"]}})).is_none());
        assert!(check_of(&serde_json::json!({})).is_none());
        assert_eq!(
            check_of(&serde_json::json!({"Healthcheck": {"Test": ["CMD", "true"]}}))
                .unwrap()
                .args,
            ["true"]
        );
    }

    #[test]
    fn demux_joins_frames() {
        let mut raw = vec![1, 0, 0, 0, 0, 0, 0, 3];
        raw.extend_from_slice(b"ok\n");
        raw.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 2]);
        raw.extend_from_slice(b"e\n");
        assert_eq!(demux(&raw), "ok\ne\n");
    }
}
