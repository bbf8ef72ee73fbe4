//! Resource limits, exec, pause, stats, and a shim outliving its daemon.
//! Needs root: each test skips without it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use servin_runtime::{ProcessSpec, RuntimeError, ShimClient, ShimState};

#[test]
fn memory_limit_oom_kills_with_137() {
    if !require_root("memory_limit_oom_kills_with_137") {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"]);
    spec.resources.memory = Some(32 << 20);
    let (_, err, exit) = run(&spec);
    assert_eq!(exit.code, 137, "stderr: {err}");
    assert!(exit.oom_killed);
    fx.assert_clean(&spec);
}

#[test]
fn limits_reach_the_cgroups() {
    if !require_root("limits_reach_the_cgroups") {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&[
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
         /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    ]);
    spec.resources.memory = Some(64 << 20);
    spec.resources.memory_swap = Some(-1);
    spec.resources.pids_limit = Some(42);
    spec.resources.cpu_shares = Some(512);
    spec.resources.cpu_quota = Some(50_000);
    spec.resources.cpu_period = Some(100_000);
    let (out, err, exit) = run(&spec);
    if !std::path::Path::new("/sys/fs/cgroup/memory").exists() {
        eprintln!("cgroup v2 host: limits checked by the runtime only");
        return;
    }
    assert_eq!(exit.code, 0, "stderr: {err}");
    assert_eq!(out, format!("{}\n42\n512\n50000\n", 64 << 20));
    fx.assert_clean(&spec);
}

#[test]
fn exec_pause_resume_and_stats() {
    if !require_root("exec_pause_resume_and_stats") {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&["sleep", "100"]);
    spec.process.env.push("FROM_CONTAINER=yes".into());
    let client = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap();
    client.start().unwrap();

    let p = ProcessSpec {
        args: vec![
            "sh".into(),
            "-c".into(),
            "echo $FROM_CONTAINER $EXTRA; id -u; exit 5".into(),
        ],
        env: vec!["EXTRA=1".into()],
        cwd: String::new(),
        user: "nobody".into(),
        tty: false,
        open_stdin: false,
        init: false,
    };
    let (stream, id) = client.exec(&p).unwrap();
    let (out, err) = read_frames(stream);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "yes 1\n65534\n",
        "{}",
        String::from_utf8_lossy(&err)
    );
    let status = client.exec_status(&id).unwrap();
    assert_eq!((status.running, status.exit_code), (false, Some(5)));

    let mut missing = p.clone();
    missing.args = vec!["nosuch".into()];
    let e = client.exec(&missing).unwrap_err();
    assert_eq!(e.exit_code(), Some(127), "{e}");
    assert!(matches!(
        client.exec_status(&servin_runtime::ExecId("nope".into())),
        Err(RuntimeError::ExecNotFound(_))
    ));

    let mut interactive = p.clone();
    interactive.args = vec!["cat".into()];
    interactive.open_stdin = true;
    let (mut stream, id) = client.exec(&interactive).unwrap();
    stream.write_all(b"ping\n").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (out, _) = read_frames(stream);
    assert_eq!(out, b"ping\n");
    assert_eq!(client.exec_status(&id).unwrap().exit_code, Some(0));

    let mut tty = p.clone();
    tty.tty = true;
    tty.open_stdin = true;
    tty.args = vec!["sh".into()];
    let (mut stream, id) = client.exec(&tty).unwrap();
    client.exec_resize(&id, 90, 20).unwrap();
    stream.write_all(b"stty size; tty; exit 6\n").unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut out).unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("20 90\r\n/dev/pts/"), "{out}");
    assert_eq!(client.exec_status(&id).unwrap().exit_code, Some(6));

    let stats = client.stats().unwrap();
    assert!(
        stats["memory_stats"]["usage"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(
        stats["pids_stats"]["current"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(
        stats["cpu_stats"]["cpu_usage"]["total_usage"].is_u64(),
        "{stats}"
    );

    client.pause().unwrap();
    assert_eq!(client.state().unwrap(), ShimState::Paused);
    assert!(matches!(client.exec(&p), Err(RuntimeError::Conflict(_))));
    client.resume().unwrap();
    assert!(matches!(client.state().unwrap(), ShimState::Running { .. }));
    client.pause().unwrap();
    // SIGKILL reaches a paused container.
    client.kill(9).unwrap();
    let exit = client.wait().unwrap();
    assert_eq!(exit.code, 137);
    assert!(matches!(
        client.kill(9),
        Err(RuntimeError::Conflict(_)) | Err(RuntimeError::ShimUnavailable { .. })
    ));
    fx.assert_clean(&spec);
}

/// Not a test by itself: the spawning "daemon" of `shim_outlives_its_daemon`,
/// run in a child process that the test SIGKILLs.
#[test]
#[ignore = "helper run by shim_outlives_its_daemon"]
fn spawner_helper() {
    let Ok(spec_path) = std::env::var("SERVIN_TEST_SPAWN_SPEC") else {
        return;
    };
    let spec: servin_runtime::ContainerSpec =
        serde_json::from_slice(&std::fs::read(spec_path).unwrap()).unwrap();
    let client = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap();
    client.start().unwrap();
    println!("STARTED");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn shim_outlives_its_daemon() {
    if !require_root("shim_outlives_its_daemon") {
        return;
    }
    let fx = Fixture::new();
    let spec = fx.spec(&[
        "sh",
        "-c",
        "echo one; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo two; sleep 100",
    ]);
    let spec_path = fx.path().join("spec-for-helper.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let mut daemon = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "spawner_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SERVIN_TEST_SPAWN_SPEC", &spec_path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(daemon.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = lines.next().expect("helper exited early").unwrap();
        if line.contains("STARTED") {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();

    let client = ShimClient::connect(&spec.state_dir).unwrap();
    assert!(matches!(client.state().unwrap(), ShimState::Running { .. }));
    // The container keeps running and its output keeps reaching the log.
    std::fs::write(spec.state_dir.join("rootfs/tmp/go"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log_lines(&spec).iter().any(|(_, l)| l == "two\n") {
        assert!(Instant::now() < deadline, "{:?}", log_lines(&spec));
        std::thread::sleep(Duration::from_millis(20));
    }
    // sh as PID 1 ignores SIGTERM (no handler), as under Docker.
    client.kill(9).unwrap();
    let exit = client.wait().unwrap();
    assert_eq!(exit.code, 137);
    assert_eq!(
        servin_runtime::read_exit_status(&spec.state_dir),
        Some(exit)
    );
    fx.assert_clean(&spec);
}

#[test]
fn restart_keeps_the_container_layer() {
    if !require_root("restart_keeps_the_container_layer") {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&[
        "sh",
        "-c",
        "cat /state 2>/dev/null; echo run >> /state; sleep 100",
    ]);
    let first = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap();
    first.start().unwrap();
    let again = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap_err();
    assert!(matches!(again, RuntimeError::Conflict(_)), "{again}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !spec.state_dir.join("upper/state").exists() {
        assert!(
            Instant::now() < deadline,
            "the container never wrote /state"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill(9).unwrap();
    assert_eq!(first.wait().unwrap().code, 137);

    spec.process.args = vec!["cat".into(), "/state".into()];
    let (out, err, exit) = run(&spec);
    assert_eq!((out.as_str(), exit.code), ("run\n", 0), "{err}");
    fx.assert_clean(&spec);
}

/// CPU time (user + system, in clock ticks) a process has used.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(") ").unwrap().1;
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Clients that vanish (attach, wait, half-written requests) cost the shim
/// nothing while the container runs on.
#[test]
fn vanished_clients_do_not_busy_the_shim() {
    if !require_root("vanished_clients_do_not_busy_the_shim") {
        return;
    }
    let fx = Fixture::new();
    // Silent: no output write would notice a vanished client.
    let mut spec = fx.spec(&["sleep", "100"]);
    spec.process.open_stdin = true;
    let client = servin_runtime::spawn_shim(&spec, &shim_bin()).unwrap();
    client.start().unwrap();
    drop(client.attach(true, true, true).unwrap());
    drop(client.attach(false, true, false).unwrap());
    let half = client.attach(false, true, true).unwrap();
    half.shutdown(std::net::Shutdown::Write).unwrap();
    let mut raw =
        std::os::unix::net::UnixStream::connect(spec.state_dir.join("shim.sock")).unwrap();
    raw.write_all(b"{\"op\":").unwrap();
    drop(raw);
    let pid = std::fs::read_to_string(spec.state_dir.join("shim.pid")).unwrap();
    let before = cpu_ticks(pid.trim());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid.trim()) - before;
    assert!(used < 20, "the shim used {used} ticks in one second");
    client.kill(9).unwrap();
    assert_eq!(client.wait().unwrap().code, 137);
    drop(half);
    fx.assert_clean(&spec);
}

/// Containers waiting for `start` hold nothing another container's
/// create or cleanup needs.
#[test]
fn created_containers_do_not_block_others() {
    if !require_root("created_containers_do_not_block_others") {
        return;
    }
    let fx = Fixture::new();
    let waiting = fx.spec(&["true"]);
    let a = servin_runtime::spawn_shim(&waiting, &shim_bin()).unwrap();
    let t = Instant::now();
    let other = fx.spec(&["echo", "done"]);
    let (out, _, exit) = run(&other);
    assert_eq!((out.as_str(), exit.code), ("done\n", 0));
    assert!(cgroup_dirs_named(&other.id).is_empty());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(a.state().unwrap(), ShimState::Created);
    a.kill(9).unwrap();
    let exit = a.wait().unwrap();
    assert_eq!((exit.code, exit.started_at), (137, None));
    fx.assert_clean(&waiting);
    fx.assert_clean(&other);
}
