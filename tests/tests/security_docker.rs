//! Acceptance: Docker's security defaults for native containers, through
//! the stock docker CLI: the default seccomp profile, custom profiles and
//! `unconfined`, `--privileged` (no filter, the host's devices), `--init`.
//! Needs: docker (CLI), docker-registry, skopeo, busybox-static, tini; root
//! (namespaces, cgroups, overlayfs, seccomp filters).

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use common::env_with_busybox;
use servin_testkit::{require_tools, Cli, Daemon, DaemonOpts, Fixture, LeakCheck, Registry};

/// The `Seccomp:` mode of the container's process (0 none, 2 filter).
fn seccomp_mode(docker: &Cli, image: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[image, "grep", "^Seccomp:", "/proc/self/status"]);
    let out = docker.run(&args).ok();
    out.out()
        .strip_prefix("Seccomp:")
        .unwrap_or_else(|| panic!("no Seccomp line: {:?}", out.stdout))
        .trim()
        .to_string()
}

/// A profile in Docker's format: everything allowed but `mkdir`/`mkdirat`,
/// which fail with `errno`.
fn deny_mkdir_profile(dir: &Path, errno: u32) -> String {
    let path = dir.join(format!("deny-mkdir-{errno}.json"));
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
        ],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno, "args": [],
             "includes": {}, "excludes": {}}
        ]
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&profile).unwrap()).unwrap();
    path.display().to_string()
}

#[test]
fn seccomp_is_on_by_default_and_off_when_privileged_or_unconfined() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;

    assert_eq!(seccomp_mode(d, &image, &[]), "2");
    assert_eq!(
        seccomp_mode(d, &image, &["--security-opt", "seccomp=builtin"]),
        "2"
    );
    // A user without capabilities and without no-new-privileges still gets it.
    assert_eq!(seccomp_mode(d, &image, &["--user", "1000"]), "2");
    assert_eq!(seccomp_mode(d, &image, &["--privileged"]), "0");
    assert_eq!(
        seccomp_mode(d, &image, &["--security-opt", "seccomp=unconfined"]),
        "0"
    );
    // `docker exec` processes get the container's filter too (and none in
    // a privileged container).
    d.run(&["run", "-d", "--name", "filtered", &image, "sleep", "1000"])
        .ok();
    d.run(&[
        "run",
        "-d",
        "--name",
        "unfiltered",
        "--privileged",
        &image,
        "sleep",
        "1000",
    ])
    .ok();
    let exec_mode = |c: &str| {
        let out = d
            .run(&["exec", c, "grep", "^Seccomp:", "/proc/self/status"])
            .ok();
        out.out().trim_start_matches("Seccomp:").trim().to_string()
    };
    assert_eq!(exec_mode("filtered"), "2");
    assert_eq!(exec_mode("unfiltered"), "0");
    let piped = d
        .run(&["exec", "filtered", "sh", "-c", "echo through | cat"])
        .ok();
    assert_eq!(piped.out(), "through");
    d.run(&["rm", "-f", "filtered", "unfiltered"]).ok();
    let info = d
        .run(&["info", "--format", "{{json .SecurityOptions}}"])
        .ok();
    assert_eq!(info.out(), r#"["name=seccomp,profile=builtin"]"#);
    drop(env);
    leaks.assert_clean();
}

/// Everyday shell work (pipes, command substitution, background jobs,
/// process listing, archives, sockets) behaves the same under the default
/// profile as with no filter at all: the profile only takes what Docker's takes.
#[test]
fn everyday_commands_work_under_the_default_profile() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let script = "set -e; echo piped | cat; x=$(echo substituted); echo $x; \
        sleep 0 & wait $!; echo job $?; ps -o comm | grep -c ps; \
        tar -cf /tmp/t.tar /etc/hostname; tar -tf /tmp/t.tar; \
        (sleep 60 | nc -l -p 7777 >/tmp/got &); i=0; \
        until [ -s /tmp/got ]; do \
          echo over-tcp | nc 127.0.0.1 7777 2>/dev/null || true; \
          i=$((i+1)); [ $i -lt 300 ]; [ -s /tmp/got ] || sleep 0.1; \
        done; cat /tmp/got; \
        echo done";
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[image.as_str(), "sh", "-c", script]);
        env.docker.run(&args)
    };
    let unconfined = run(&["--security-opt", "seccomp=unconfined"]).ok();
    let default = run(&[]).ok();
    assert!(default.out().ends_with("done"), "{:?}", default.stdout);
    assert!(
        default.out().contains("piped\nsubstituted\njob 0"),
        "{:?}",
        default.stdout
    );
    assert_eq!(default.stdout, unconfined.stdout);
    drop(env);
    leaks.assert_clean();
}

#[test]
fn a_custom_profile_is_enforced_with_its_errno() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let dir = tempfile::tempdir().unwrap();
    let eperm = deny_mkdir_profile(dir.path(), 1);
    let eacces = deny_mkdir_profile(dir.path(), 13);
    let d = &env.docker;

    d.run(&["run", "--rm", &image, "mkdir", "/tmp/made"]).ok();
    let denied = d
        .run(&[
            "run",
            "--rm",
            "--security-opt",
            &format!("seccomp={eperm}"),
            &image,
            "mkdir",
            "/tmp/made",
        ])
        .code(1);
    assert!(
        denied.stderr.contains("Operation not permitted"),
        "{}",
        denied.stderr
    );
    let denied = d
        .run(&[
            "run",
            "--rm",
            "--security-opt",
            &format!("seccomp={eacces}"),
            &image,
            "mkdir",
            "/tmp/made",
        ])
        .code(1);
    assert!(
        denied.stderr.contains("Permission denied"),
        "{}",
        denied.stderr
    );
    // The profile is kept with the container: a restart gets it again.
    d.run(&[
        "create",
        "--name",
        "keeps",
        "--security-opt",
        &format!("seccomp={eperm}"),
        &image,
        "mkdir",
        "/made",
    ])
    .ok();
    d.run(&["start", "-a", "keeps"]).code(1);
    d.run(&["start", "-a", "keeps"]).code(1);
    d.run(&["rm", "keeps"]).ok();
    drop(env);
    leaks.assert_clean();
}

/// Creating a user namespace needs no capability at all; only the default
/// profile stops it (`unshare` is allowed only with CAP_SYS_ADMIN), so
/// this tells the filter apart from the capability set.
#[test]
fn the_default_profile_blocks_what_capabilities_would_allow() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;
    // The fixture links no `unshare` applet: call it through busybox.
    let userns = [image.as_str(), "busybox", "unshare", "-U", "true"];

    let blocked = d.run(&[&["run", "--rm"][..], &userns[..]].concat()).fails();
    assert!(
        blocked.stderr.contains("Operation not permitted"),
        "{}",
        blocked.stderr
    );
    // Same capabilities, no filter: allowed.
    d.run(
        &[
            &["run", "--rm", "--security-opt", "seccomp=unconfined"][..],
            &userns[..],
        ]
        .concat(),
    )
    .ok();
    // The default profile opens unshare to containers holding CAP_SYS_ADMIN.
    d.run(&[&["run", "--rm", "--cap-add", "SYS_ADMIN"][..], &userns[..]].concat())
        .ok();
    // ...and mount(2) with it; without it, mount fails with EPERM.
    let mount = [
        image.as_str(),
        "sh",
        "-c",
        "mkdir -p /m && mount -t tmpfs t /m",
    ];
    d.run(&[&["run", "--rm", "--cap-add", "SYS_ADMIN"][..], &mount[..]].concat())
        .ok();
    let no = d.run(&[&["run", "--rm"][..], &mount[..]].concat()).fails();
    // busybox words EPERM from mount(2) its own way.
    assert!(no.stderr.contains("permission denied"), "{}", no.stderr);
    drop(env);
    leaks.assert_clean();
}

#[test]
fn a_bad_profile_or_option_fails_the_create_and_leaves_nothing() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_PERMIT"}]}"#,
    )
    .unwrap();
    let d = &env.docker;

    let out = d
        .run(&[
            "run",
            "--rm",
            "--security-opt",
            &format!("seccomp={}", bad.display()),
            &image,
            "true",
        ])
        .code(125);
    assert!(
        out.stderr
            .contains("invalid seccomp profile: Unknown seccomp action \"SCMP_ACT_PERMIT\""),
        "{}",
        out.stderr
    );
    let out = d
        .run(&["create", "--security-opt", "bogus=1", &image, "true"])
        .fails();
    assert!(
        out.stderr.contains("invalid --security-opt 2: \"bogus=1\""),
        "{}",
        out.stderr
    );
    assert_eq!(
        d.run(&["ps", "-aq"]).ok().out(),
        "",
        "a container was created"
    );
    drop(env);
    leaks.assert_clean();
}

#[test]
fn init_runs_the_command_as_its_child_and_forwards_signals() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox", "tini");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;

    let ps = d
        .run(&["run", "--rm", "--init", &image, "ps", "-o", "pid,ppid,comm"])
        .ok();
    let rows: Vec<Vec<&str>> = ps
        .out()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["1", "0", "docker-init"], "{}", ps.stdout);
    assert!(
        rows.iter().any(|r| r[1] == "1" && r[2] == "ps"),
        "{}",
        ps.stdout
    );
    d.run(&["run", "--rm", "--init", &image, "sh", "-c", "exit 3"])
        .code(3);

    // sleep as PID 1 would ignore SIGTERM and be killed (137); under the
    // init it gets the signal and dies of it (128 + 15).
    d.run(&[
        "run", "-d", "--name", "sleepy", "--init", &image, "sleep", "1000",
    ])
    .ok();
    d.run(&["stop", "-t", "60", "sleepy"]).ok();
    let code = d
        .run(&["inspect", "-f", "{{.State.ExitCode}}", "sleepy"])
        .ok();
    assert_eq!(code.out(), "143");
    d.run(&["rm", "sleepy"]).ok();
    drop(env);
    leaks.assert_clean();
}

#[test]
fn a_missing_init_binary_fails_the_start_naming_it() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let registry = Registry::start().expect("registry starts");
    let daemon = Daemon::start(
        DaemonOpts::default()
            .arg("--init-path")
            .arg("/nonexistent/servin-init"),
    )
    .expect("servind starts");
    let leaks = LeakCheck::new(daemon.dir()).without_fds();
    let docker = Cli::docker(&daemon.host()).expect("docker CLI");
    let image = registry.reference("busybox:latest");
    servin_testkit::push(&Fixture::busybox().unwrap(), &image).expect("skopeo push");
    docker.run(&["pull", "-q", &image]).ok();

    let out = docker
        .run(&["run", "--name", "noinit", "--init", &image, "true"])
        .fails();
    assert!(
        out.stderr.contains(
            "exec: \"/nonexistent/servin-init\": stat /nonexistent/servin-init: no such file or directory"
        ),
        "{}",
        out.stderr
    );
    // Without --init the same daemon runs containers.
    docker.run(&["run", "--rm", &image, "true"]).ok();
    docker.run(&["rm", "-f", "noinit"]).ok();
    drop(docker);
    drop(daemon);
    drop(registry);
    leaks.assert_clean();
}

/// A device node of the host that Docker's default set does not include.
fn host_only_device() -> Option<String> {
    ["loop0", "loop-control", "fuse", "kvm", "net/tun"]
        .iter()
        .map(|n| format!("/dev/{n}"))
        .find_map(|p| {
            let m = std::fs::metadata(&p).ok()?;
            let ft = m.file_type();
            (ft.is_char_device() || ft.is_block_device()).then_some(p)
        })
}

#[test]
fn privileged_containers_get_the_hosts_devices() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let Some(dev) = host_only_device() else {
        servin_testkit::skip(
            "privileged_containers_get_the_hosts_devices",
            "the host has none of /dev/loop0, loop-control, fuse, kvm, net/tun",
        );
        return;
    };
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;

    let out = d
        .run(&[
            "run",
            "--rm",
            "--privileged",
            &image,
            "stat",
            "-c",
            "%t:%T",
            &dev,
        ])
        .ok();
    let host = std::process::Command::new("stat")
        .args(["-c", "%t:%T", &dev])
        .output()
        .expect("stat on the host");
    assert_eq!(out.out(), String::from_utf8_lossy(&host.stdout).trim());
    let absent = d.run(&["run", "--rm", &image, "stat", &dev]).code(1);
    assert!(
        absent.stderr.contains("No such file or directory"),
        "{}",
        absent.stderr
    );
    drop(env);
    leaks.assert_clean();
}

#[test]
fn runc_enforces_the_same_profiles() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox", "runc");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let dir = tempfile::tempdir().unwrap();
    let eperm = deny_mkdir_profile(dir.path(), 1);
    let d = &env.docker;

    assert_eq!(seccomp_mode(d, &image, &["--runtime", "runc"]), "2");
    assert_eq!(
        seccomp_mode(d, &image, &["--runtime", "runc", "--privileged"]),
        "0"
    );
    let denied = d
        .run(&[
            "run",
            "--rm",
            "--runtime",
            "runc",
            "--security-opt",
            &format!("seccomp={eperm}"),
            &image,
            "mkdir",
            "/tmp/made",
        ])
        .code(1);
    assert!(
        denied.stderr.contains("Operation not permitted"),
        "{}",
        denied.stderr
    );
    let blocked = d
        .run(&[
            "run",
            "--rm",
            "--runtime",
            "runc",
            &image,
            "busybox",
            "unshare",
            "-U",
            "true",
        ])
        .fails();
    assert!(
        blocked.stderr.contains("Operation not permitted"),
        "{}",
        blocked.stderr
    );
    drop(env);
    leaks.assert_clean();
}
