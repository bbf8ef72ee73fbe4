//! Timing of `spawn_shim` + `start` + `wait` for `true`, per runtime:
//! `cargo test -p servin-runtime --release --test bench -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use servin_runtime::RuntimeKind;

fn median_run(fx: &Fixture, runtime: &RuntimeKind, n: usize) -> Duration {
    let mut times = Vec::new();
    for i in 0..=n {
        let mut spec = fx.spec(&["true"]);
        spec.runtime = runtime.clone();
        let t = Instant::now();
        let client = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap();
        let t1 = t.elapsed();
        client.start().unwrap();
        let t2 = t.elapsed();
        let exit = client.wait().unwrap();
        let elapsed = t.elapsed();
        if std::env::var_os("SERVIN_BENCH_PHASES").is_some() {
            eprintln!("spawn {t1:?} start {:?} wait {:?}", t2 - t1, elapsed - t2);
        }
        assert_eq!(exit.code, 0);
        // The first run warms the page cache.
        if i > 0 {
            times.push(elapsed);
        }
        fx.assert_clean(&spec);
        if i == n && std::env::var_os("SERVIN_BENCH_SHOW_LOG").is_some() {
            let log = std::fs::read_to_string(spec.state_dir.join("shim.log")).unwrap();
            eprintln!("{log}");
        }
    }
    times.sort();
    times[times.len() / 2]
}

#[test]
#[ignore = "benchmark: run explicitly"]
fn bench_true() {
    if !require_root("bench_true") {
        return;
    }
    let fx = Fixture::new();
    let builtin = median_run(&fx, &RuntimeKind::Builtin, 10);
    eprintln!("builtin (libcontainer): median of 10 = {builtin:?}");
    if let Some(runc) = runc_path() {
        let r = median_run(&fx, &RuntimeKind::Runc { path: runc }, 10);
        eprintln!("runc: median of 10 = {r:?}");
    }
}
