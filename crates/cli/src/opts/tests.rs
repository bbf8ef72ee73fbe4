//! Flags → create body, compared byte for byte with the bodies docker v28
//! sent for the same command lines (captured in `testdata/`).

use clap::Parser;

use super::*;

#[derive(Parser, Debug)]
#[command(no_binary_name = true, disable_help_flag = true)]
struct Line {
    #[arg(short = 'd')]
    detach: bool,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    platform: Option<String>,
    #[command(flatten)]
    flags: ContainerFlags,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    rest: Vec<String>,
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn body(line: &[&str]) -> Result<String, ParseError> {
    let line = Line::try_parse_from(line).expect("clap accepts the line");
    let mut req = line
        .flags
        .to_request(&line.rest[0], &line.rest[1..], &no_env)?;
    if line.detach {
        let c = &mut req.config;
        c.attach_stdin = false;
        c.attach_stdout = false;
        c.attach_stderr = false;
        c.stdin_once = false;
    }
    Ok(req.to_json())
}

fn same(name: &str, line: &[&str]) {
    let want = std::fs::read_to_string(format!(
        "{}/src/opts/testdata/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert_eq!(body(line).unwrap(), want.trim_end(), "body for {name}");
}

#[test]
fn bodies_match_docker() {
    same("plain", &["busybox"]);
    same("it", &["-i", "-t", "--name", "it1", "busybox", "sh"]);
    same("attach", &["-a", "stdin", "-a", "stdout", "-i", "busybox"]);
    same(
        "resources",
        &[
            "-m",
            "64m",
            "--memory-swap",
            "128m",
            "--cpus",
            "1.5",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "100",
            "busybox",
        ],
    );
    same(
        "security",
        &[
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "ALL",
            "--privileged",
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "label=disable",
            "--init",
            "--stop-signal",
            "SIGUSR1",
            "--stop-timeout",
            "5",
            "--restart",
            "on-failure:3",
            "busybox",
        ],
    );
    same(
        "health",
        &[
            "--health-cmd",
            "true",
            "--health-interval",
            "5s",
            "--health-timeout",
            "2s",
            "--health-retries",
            "3",
            "--health-start-period",
            "1m",
            "busybox",
        ],
    );
    same(
        "misc",
        &[
            "--no-healthcheck",
            "--network",
            "none",
            "--runtime",
            "runc",
            "--platform",
            "linux/amd64",
            "--entrypoint",
            "",
            "--init=false",
            "--restart",
            "unless-stopped",
            "busybox",
        ],
    );
    same(
        "ports",
        &[
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1:9000:9000/udp",
            "--expose",
            "7000",
            "-P",
            "busybox",
        ],
    );
    same(
        "extra",
        &[
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "nproc=10",
            "--sysctl",
            "net.core.somaxconn=1024",
            "--dns",
            "1.1.1.1",
            "--dns-search",
            "example.com",
            "--dns-option",
            "ndots:2",
            "--add-host",
            "h:1.2.3.4",
            "--group-add",
            "10",
            "--log-driver",
            "json-file",
            "--log-opt",
            "max-size=1m",
            "--shm-size",
            "64m",
            "--memory-reservation",
            "32m",
            "--memory-swappiness",
            "10",
            "--oom-kill-disable",
            "--oom-score-adj",
            "100",
            "--cpuset-cpus",
            "0",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "50000",
            "--ipc",
            "host",
            "--pid",
            "host",
            "--uts",
            "host",
            "--storage-opt",
            "size=1G",
            "--cgroupns",
            "private",
            "--userns",
            "host",
            "--domainname",
            "dom",
            "--stop-signal",
            "9",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "systempaths=unconfined",
            "--expose",
            "80/udp",
            "--privileged",
            "busybox",
        ],
    );
    same(
        "hostnet",
        &["--network", "host", "--restart", "always", "busybox"],
    );
    same(
        "volumes",
        &[
            "-v",
            "/tmp:/data",
            "-v",
            "/tmp:/ro:ro",
            "-v",
            "named:/vol",
            "-v",
            "/anon",
            "--mount",
            "type=bind,src=/tmp,dst=/m,readonly",
            "--mount",
            "type=volume,src=v2,dst=/v2",
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=1m",
            "--tmpfs",
            "/run:size=1m",
            "--tmpfs",
            "/x",
            "--read-only",
            "busybox",
        ],
    );
}

#[test]
fn env_files_and_detach_match_docker() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("envfile");
    std::fs::write(&env_file, "FOO=bar\n# comment\nBAZ\n\nQ=1 2\n").unwrap();
    same(
        "basics",
        &[
            "-d",
            "--rm",
            "-e",
            "A=1",
            "-e",
            "B",
            "--env-file",
            env_file.to_str().unwrap(),
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            "--entrypoint",
            "/bin/sh",
            "--hostname",
            "h",
            "--label",
            "a=b",
            "-l",
            "c",
            "--name",
            "basics",
            "busybox",
            "-c",
            "sleep 1",
        ],
    );
}

#[test]
fn flag_value_errors_like_pflag() {
    let err = |line: &[&str]| match body(line) {
        Err(ParseError::Flag(m)) => m,
        other => panic!("{line:?}: {other:?}"),
    };
    assert_eq!(
        err(&["--memory=lots", "busybox"]),
        "invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'"
    );
    assert_eq!(
        err(&["--cpus=abc", "busybox"]),
        "invalid argument \"abc\" for \"--cpus\" flag: failed to parse abc as a rational number"
    );
    assert_eq!(
        err(&["--stop-timeout", "x", "busybox"]),
        "invalid argument \"x\" for \"--stop-timeout\" flag: strconv.ParseInt: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        err(&["--health-interval", "5", "busybox"]),
        "invalid argument \"5\" for \"--health-interval\" flag: time: missing unit in duration \"5\""
    );
    assert_eq!(
        err(&["-a", "bogus", "busybox"]),
        "invalid argument \"bogus\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"
    );
    assert_eq!(
        err(&["-e", "=x", "busybox"]),
        "invalid argument \"=x\" for \"-e, --env\" flag: invalid environment variable: =x"
    );
    assert_eq!(
        err(&["--mount", "type=bind", "busybox"]),
        "invalid argument \"type=bind\" for \"--mount\" flag: target is required"
    );
}

#[test]
fn invalid_combinations_like_docker() {
    let err = |line: &[&str]| match body(line) {
        Err(ParseError::Invalid(m)) => m,
        other => panic!("{line:?}: {other:?}"),
    };
    assert_eq!(
        err(&["--rm", "--restart=always", "busybox"]),
        "conflicting options: cannot specify both --restart and --rm"
    );
    assert_eq!(
        err(&["--restart", "on-failure:x", "busybox"]),
        "invalid restart policy format: maximum retry count must be an integer"
    );
    assert_eq!(
        err(&["--restart", ":1", "busybox"]),
        "invalid restart policy format: no policy provided before colon"
    );
    assert_eq!(
        err(&["--no-healthcheck", "--health-cmd", "x", "busybox"]),
        "--no-healthcheck conflicts with --health-* options"
    );
    assert_eq!(
        err(&["--security-opt", "bogus", "busybox"]),
        "Invalid --security-opt: \"bogus\""
    );
    assert_eq!(
        err(&["--memory-swappiness", "200", "busybox"]),
        "invalid value: 200. Valid memory swappiness range is 0-100"
    );
    assert_eq!(
        err(&["--pid", "bogus", "busybox"]),
        "--pid: invalid PID mode"
    );
}

#[test]
fn restart_policies() {
    let p = parse_restart_policy("on-failure:5").unwrap();
    assert_eq!((p.name.as_str(), p.maximum_retry_count), ("on-failure", 5));
    assert_eq!(parse_restart_policy("always").unwrap().name, "always");
    assert_eq!(parse_restart_policy("").unwrap().name, "");
    assert!(parse_restart_policy("no").unwrap().is_none());
}

#[test]
fn env_takes_process_values() {
    let line = Line::try_parse_from(["-e", "HOME_X", "busybox"]).unwrap();
    let lookup = |k: &str| (k == "HOME_X").then(|| "/root".to_string());
    let req = line.flags.to_request("busybox", &[], &lookup).unwrap();
    assert_eq!(req.config.env, Some(vec!["HOME_X=/root".to_string()]));
}
