//! `servin stats`: live resource usage, computed from the stats stream as
//! docker computes it (CPU % from the deltas against the previous sample,
//! memory without the inactive page cache, block and network totals).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use hyper::Method;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{join_errors, parse_filters, ps::filters_json, Ctx};
use crate::client::{empty_body, Client, JsonStream};
use crate::containers;
use crate::format::json::{StructValue, Value};
use crate::format::{self, list};
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    no_trunc: bool,
    #[arg(value_name = "CONTAINER")]
    args: Vec<String>,
}

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// One sample of `GET /containers/{id}/stats` (the fields docker uses).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Sample {
    pub name: String,
    pub id: String,
    pub cpu_stats: CpuStats,
    pub precpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
    pub blkio_stats: BlkioStats,
    pub networks: Option<BTreeMap<String, NetStats>>,
    pub pids_stats: PidsStats,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    pub system_cpu_usage: u64,
    pub online_cpus: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CpuUsage {
    pub total_usage: u64,
    pub percpu_usage: Option<Vec<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MemoryStats {
    pub usage: u64,
    pub limit: u64,
    pub stats: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BlkioStats {
    pub io_service_bytes_recursive: Option<Vec<BlkioEntry>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BlkioEntry {
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NetStats {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PidsStats {
    pub current: u64,
}

/// Docker's `StatsEntry`: what one row shows.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Entry {
    pub container: String,
    pub name: String,
    pub id: String,
    pub cpu_percentage: f64,
    pub memory: f64,
    pub memory_limit: f64,
    pub memory_percentage: f64,
    pub network_rx: f64,
    pub network_tx: f64,
    pub block_read: f64,
    pub block_write: f64,
    pub pids: u64,
    pub invalid: bool,
    pub error: Option<String>,
}

impl Entry {
    /// The row for a sample (Linux daemons).
    pub fn from_sample(container: &str, v: &Sample) -> Entry {
        let mem = mem_usage_no_cache(&v.memory_stats);
        let limit = v.memory_stats.limit as f64;
        let (read, write) = block_io(&v.blkio_stats);
        let (rx, tx) = v
            .networks
            .iter()
            .flatten()
            .fold((0.0, 0.0), |(rx, tx), (_, n)| {
                (rx + n.rx_bytes as f64, tx + n.tx_bytes as f64)
            });
        Entry {
            container: container.to_string(),
            name: v.name.clone(),
            id: v.id.clone(),
            cpu_percentage: cpu_percent(v),
            memory: mem,
            memory_limit: limit,
            memory_percentage: if limit != 0.0 {
                mem / limit * 100.0
            } else {
                0.0
            },
            network_rx: rx,
            network_tx: tx,
            block_read: read as f64,
            block_write: write as f64,
            pids: v.pids_stats.current,
            invalid: false,
            error: None,
        }
    }
}

/// Docker's `calculateCPUPercentUnix`.
fn cpu_percent(v: &Sample) -> f64 {
    let cpu_delta =
        v.cpu_stats.cpu_usage.total_usage as f64 - v.precpu_stats.cpu_usage.total_usage as f64;
    let system_delta = v.cpu_stats.system_cpu_usage as f64 - v.precpu_stats.system_cpu_usage as f64;
    let mut online = f64::from(v.cpu_stats.online_cpus);
    if online == 0.0 {
        online = v
            .cpu_stats
            .cpu_usage
            .percpu_usage
            .as_ref()
            .map_or(0, Vec::len) as f64;
    }
    if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * online * 100.0
    } else {
        0.0
    }
}

/// Docker's `calculateMemUsageUnixNoCache`: usage less inactive files
/// (`total_inactive_file` on cgroup v1, `inactive_file` on v2).
fn mem_usage_no_cache(mem: &MemoryStats) -> f64 {
    let stats = mem.stats.clone().unwrap_or_default();
    if let Some(&v) = stats.get("total_inactive_file") {
        if v < mem.usage {
            return (mem.usage - v) as f64;
        }
    }
    let v = stats.get("inactive_file").copied().unwrap_or(0);
    if v < mem.usage {
        return (mem.usage - v) as f64;
    }
    mem.usage as f64
}

fn block_io(blkio: &BlkioStats) -> (u64, u64) {
    let mut read = 0;
    let mut write = 0;
    for e in blkio.io_service_bytes_recursive.iter().flatten() {
        match e.op.as_bytes().first() {
            Some(b'r' | b'R') => read += e.value,
            Some(b'w' | b'W') => write += e.value,
            _ => {}
        }
    }
    (read, write)
}

fn percentage(v: f64) -> String {
    format!("{v:.2}%")
}

/// Docker's `statsContext` for one entry.
pub fn row(e: &Entry, trunc: bool) -> Value {
    const NO_VALUE: &str = "--";
    let dash = |s: String| if e.invalid { NO_VALUE.to_string() } else { s };
    let name = if e.name.len() > 1 {
        e.name[1..].to_string()
    } else {
        NO_VALUE.to_string()
    };
    let id = if trunc {
        format::short_id(&e.id).to_string()
    } else {
        e.id.clone()
    };
    let mem_usage = if e.invalid {
        "-- / --".to_string()
    } else {
        format!(
            "{} / {}",
            format::bytes_size(e.memory),
            format::bytes_size(e.memory_limit)
        )
    };
    let pair = |a: f64, b: f64| {
        format!(
            "{} / {}",
            format::human_size_with_precision(a, 3),
            format::human_size_with_precision(b, 3)
        )
    };
    let fields = vec![
        ("BlockIO", dash(pair(e.block_read, e.block_write))),
        ("CPUPerc", dash(percentage(e.cpu_percentage))),
        ("Container", e.container.clone()),
        ("ID", id),
        ("MemPerc", dash(percentage(e.memory_percentage))),
        ("MemUsage", mem_usage),
        ("Name", name),
        ("NetIO", dash(pair(e.network_rx, e.network_tx))),
        ("PIDs", dash(e.pids.to_string())),
    ];
    Value::Struct(Box::new(StructValue {
        type_name: "*container.statsContext",
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect(),
        sorted_json: true,
        json: None,
    }))
}

fn header() -> Value {
    let h = |k: &str, v: &str| (k.to_string(), Value::str(v));
    Value::Object(vec![
        h("Container", "CONTAINER"),
        h("Name", "NAME"),
        h("ID", "CONTAINER ID"),
        h("CPUPerc", "CPU %"),
        h("MemUsage", "MEM USAGE / LIMIT"),
        h("MemPerc", "MEM %"),
        h("NetIO", "NET I/O"),
        h("BlockIO", "BLOCK I/O"),
        h("PIDs", "PIDS"),
    ])
}

type Shared = Arc<Mutex<Vec<Entry>>>;

fn update(shared: &Shared, container: &str, f: impl FnOnce(&mut Entry)) {
    let mut entries = shared.lock().expect("stats lock");
    if let Some(e) = entries.iter_mut().find(|e| e.container == container) {
        f(e);
    }
}

/// Adds `container` unless present; returns whether it was added.
fn add(shared: &Shared, container: &str) -> bool {
    let mut entries = shared.lock().expect("stats lock");
    if entries.iter().any(|e| e.container == container) {
        return false;
    }
    entries.push(Entry {
        container: container.to_string(),
        ..Default::default()
    });
    true
}

/// Docker's `collect`: reads samples for one container into `shared`,
/// telling `first` once a sample (or an error) is in.
fn collect(
    client: Client,
    shared: Shared,
    container: String,
    stream: bool,
    first: mpsc::Sender<()>,
) {
    tokio::spawn(async move {
        let query = [("stream", if stream { "1" } else { "0" }.to_string())];
        let path = match containers::user_path(&container) {
            Ok(p) => format!("{p}/stats"),
            Err(e) => {
                update(&shared, &container, |en| set_error(en, e.to_string()));
                let _ = first.send(()).await;
                return;
            }
        };
        let resp = match client
            .request(Method::GET, &path, &query, &[], empty_body())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                update(&shared, &container, |en| set_error(en, format!("{e:#}")));
                let _ = first.send(()).await;
                return;
            }
        };
        let mut samples = JsonStream::new(resp);
        let mut first = Some(first);
        loop {
            match tokio::time::timeout(Duration::from_secs(2), samples.next::<Sample>()).await {
                Err(_) => update(&shared, &container, |en| {
                    *en = Entry {
                        container: en.container.clone(),
                        name: en.name.clone(),
                        id: en.id.clone(),
                        invalid: true,
                        error: Some("timeout waiting for stats".into()),
                        ..Default::default()
                    };
                }),
                Ok(Ok(Some(sample))) => update(&shared, &container, |en| {
                    *en = Entry::from_sample(&container, &sample);
                }),
                Ok(Ok(None)) => {
                    update(&shared, &container, |en| set_error(en, "EOF".into()));
                    if let Some(tx) = first.take() {
                        let _ = tx.send(()).await;
                    }
                    return;
                }
                Ok(Err(e)) => update(&shared, &container, |en| set_error(en, e.to_string())),
            }
            if let Some(tx) = first.take() {
                let _ = tx.send(()).await;
            }
            if !stream {
                return;
            }
        }
    });
}

fn set_error(e: &mut Entry, message: String) {
    e.error = Some(message);
    e.invalid = true;
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    let show_all = args.args.is_empty();
    let client = ctx.client().await?;
    let shared: Shared = Arc::new(Mutex::new(Vec::new()));
    let stream = !args.no_stream;
    let (first_tx, mut first_rx) = mpsc::channel::<()>(64);
    let mut expected = 0;
    let mut events_failed: Option<mpsc::Receiver<String>> = None;
    if show_all {
        // Follow starts (and creates with -a) while running, as docker does.
        let (err_tx, err_rx) = mpsc::channel(1);
        events_failed = Some(err_rx);
        let mut filters = parse_filters(usage, "--filter", &[])?;
        filters.insert("type".into(), vec!["container".into()]);
        let events = client
            .request(
                Method::GET,
                "/events",
                &[("filters", filters_json(&filters))],
                &[],
                empty_body(),
            )
            .await?;
        watch_events(
            client.clone(),
            shared.clone(),
            events,
            args.all,
            stream,
            first_tx.clone(),
            err_tx,
        );
        let mut query = Vec::new();
        if args.all {
            query.push(("all", "1".to_string()));
        }
        let raw = client.get_raw("/containers/json", &query).await?;
        let list: Vec<super::ps::Summary> = crate::client::decode(&raw)?;
        for c in list {
            let short = format::short_id(&c.id).to_string();
            if add(&shared, &short) {
                expected += 1;
                collect(
                    client.clone(),
                    shared.clone(),
                    short,
                    stream,
                    first_tx.clone(),
                );
            }
        }
    } else {
        for name in &args.args {
            if add(&shared, name) {
                expected += 1;
                collect(
                    client.clone(),
                    shared.clone(),
                    name.clone(),
                    stream,
                    first_tx.clone(),
                );
            }
        }
    }
    drop(first_tx);
    for _ in 0..expected {
        if first_rx.recv().await.is_none() {
            break;
        }
    }
    if !show_all {
        let errors: Vec<String> = shared
            .lock()
            .expect("stats lock")
            .iter()
            .filter_map(|e| e.error.clone())
            .collect();
        join_errors(errors)?;
    }
    let format = match args.format.as_deref() {
        None | Some("") | Some(list::TABLE_KEY) => DEFAULT_FORMAT.to_string(),
        Some(f) => f.to_string(),
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        ticker.tick().await;
        let entries = shared.lock().expect("stats lock").clone();
        let rows: Vec<Value> = entries.iter().map(|e| row(e, !args.no_trunc)).collect();
        let table = list::render(&format, &rows, &header()).map_err(|e| StatusError::fail(1, e))?;
        let text = if stream { screen(&table) } else { table };
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        drop(out);
        if !stream || (entries.is_empty() && !show_all) {
            return Ok(());
        }
        if let Some(rx) = events_failed.as_mut() {
            if let Ok(e) = rx.try_recv() {
                anyhow::bail!(e);
            }
        }
    }
}

/// Redraws in place the way docker does: home, each line then erase to
/// end of line, then erase below.
fn screen(table: &str) -> String {
    let mut buf = format!("\x1b[H{table}");
    let snapshot = buf.clone();
    for line in snapshot.split('\n') {
        buf.push_str(line);
        buf.push_str(" \x1b[K\n");
    }
    buf.push_str("\x1b[J");
    buf
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Event {
    #[serde(rename = "Action")]
    action: String,
    #[serde(rename = "Actor")]
    actor: Actor,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Actor {
    #[serde(rename = "ID")]
    id: String,
}

fn watch_events(
    client: Client,
    shared: Shared,
    events: hyper::Response<hyper::body::Incoming>,
    all: bool,
    stream: bool,
    first: mpsc::Sender<()>,
    failed: mpsc::Sender<String>,
) {
    tokio::spawn(async move {
        let mut events = JsonStream::new(events);
        loop {
            match events.next::<Event>().await {
                Ok(Some(e)) => {
                    let short = format::short_id(&e.actor.id).to_string();
                    match e.action.as_str() {
                        "start" | "create"
                            if (e.action == "start" || all) && add(&shared, &short) =>
                        {
                            collect(client.clone(), shared.clone(), short, stream, first.clone());
                        }
                        "die" if !all => {
                            shared
                                .lock()
                                .expect("stats lock")
                                .retain(|en| en.container != short);
                        }
                        _ => {}
                    }
                }
                Ok(None) => {
                    let _ = failed.send("unexpected EOF".into()).await;
                    return;
                }
                Err(e) => {
                    let _ = failed.send(e.to_string()).await;
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"read":"2026-11-29T04:20:00Z","name":"/l1","id":"c6299f42c2869a960c79900896bb642a5d1dc192d7a691b21ce02ad2c7df6309",
      "pids_stats":{"current":2},
      "networks":{"eth0":{"rx_bytes":1500,"tx_bytes":0},"eth1":{"rx_bytes":500,"tx_bytes":12}},
      "blkio_stats":{"io_service_bytes_recursive":[{"major":8,"minor":0,"op":"Read","value":4096},{"major":8,"minor":0,"op":"Write","value":8192},{"major":8,"minor":0,"op":"Total","value":12288}]},
      "cpu_stats":{"cpu_usage":{"total_usage":300000000},"system_cpu_usage":20000000000,"online_cpus":2},
      "precpu_stats":{"cpu_usage":{"total_usage":100000000},"system_cpu_usage":10000000000,"online_cpus":2},
      "memory_stats":{"usage":2097152,"limit":8589934592,"stats":{"total_inactive_file":1048576}}}"#;

    #[test]
    fn computes_like_docker() {
        let s: Sample = serde_json::from_str(SAMPLE).unwrap();
        let e = Entry::from_sample("l1", &s);
        assert!((e.cpu_percentage - 4.0).abs() < 1e-9);
        assert_eq!(e.memory, 1_048_576.0);
        assert_eq!((e.block_read, e.block_write), (4096.0, 8192.0));
        assert_eq!((e.network_rx, e.network_tx), (2000.0, 12.0));
        let table = list::render(DEFAULT_FORMAT, &[row(&e, true)], &header()).unwrap();
        assert_eq!(
            table,
            "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O     BLOCK I/O        PIDS\n\
             c6299f42c286   l1        4.00%     1MiB / 8GiB         0.01%     2kB / 12B   4.1kB / 8.19kB   2\n"
        );
    }

    #[test]
    fn invalid_rows_show_dashes() {
        let e = Entry {
            container: "x".into(),
            invalid: true,
            ..Default::default()
        };
        let out = list::render("{{json .}}", &[row(&e, true)], &header()).unwrap();
        assert_eq!(
            out,
            "{\"BlockIO\":\"--\",\"CPUPerc\":\"--\",\"Container\":\"x\",\"ID\":\"\",\"MemPerc\":\"--\",\"MemUsage\":\"-- / --\",\"Name\":\"--\",\"NetIO\":\"--\",\"PIDs\":\"--\"}\n"
        );
    }

    #[test]
    fn redraws_like_docker() {
        assert_eq!(
            screen("A\nb\n"),
            "\x1b[HA\nb\n\x1b[HA \x1b[K\nb \x1b[K\n \x1b[K\n\x1b[J"
        );
    }
}
