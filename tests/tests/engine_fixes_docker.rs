//! Acceptance: engine behaviours checked against Docker Engine 20.10 with
//! the stock docker CLI (prune filters, failed starts, `Mounts`).
//! Needs: docker (CLI), docker-registry, skopeo, busybox-static; root
//! (namespaces, cgroups, overlayfs).

mod common;

use common::{env_with_busybox, Env};
use servin_testkit::{require_tools, Cli, Daemon, DaemonOpts, Fixture, LeakCheck, Registry};

/// The lines `docker ARGS` prints, sorted.
fn sorted_lines(docker: &Cli, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = docker
        .run(args)
        .ok()
        .stdout
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Names of all containers, sorted.
fn names(docker: &Cli) -> Vec<String> {
    sorted_lines(docker, &["ps", "-a", "--format", "{{.Names}}"])
}

#[test]
fn container_prune_applies_label_and_until_filters() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;
    for (name, label) in [("keep", "tier=keep"), ("web", "tier=web"), ("bare", "")] {
        let mut args = vec!["create", "--name", name];
        if !label.is_empty() {
            args.extend(["--label", label]);
        }
        args.extend([image.as_str(), "true"]);
        d.run(&args).ok();
    }
    d.run(&[
        "run", "-d", "--name", "running", "--label", "tier=web", &image, "sleep", "60",
    ])
    .ok();
    let all = ["bare", "keep", "running", "web"];

    // A label nothing carries matches nothing: nothing is removed.
    let out = d
        .run(&["container", "prune", "-f", "--filter", "label=none"])
        .ok();
    assert!(!out.stdout.contains("Deleted"), "{}", out.stdout);
    assert_eq!(names(d), all);
    d.run(&["container", "prune", "-f", "--filter", "label=tier=nomatch"])
        .ok();
    assert_eq!(names(d), all);

    // Created within the last hour: `until=1h` keeps them all.
    d.run(&["container", "prune", "-f", "--filter", "until=1h"])
        .ok();
    assert_eq!(names(d), all);

    // docker ps shares the label matching.
    let web = sorted_lines(
        d,
        &[
            "ps",
            "-a",
            "--filter",
            "label=tier=web",
            "--format",
            "{{.Names}}",
        ],
    );
    assert_eq!(web, ["running", "web"]);
    let none = d
        .run(&[
            "ps",
            "-a",
            "--filter",
            "label=none",
            "--format",
            "{{.Names}}",
        ])
        .ok();
    assert_eq!(none.out(), "");

    // `label=tier=web` removes only the stopped one with that value.
    let out = d
        .run(&["container", "prune", "-f", "--filter", "label=tier=web"])
        .ok();
    assert!(out.stdout.contains("Deleted Containers:"), "{}", out.stdout);
    assert_eq!(names(d), ["bare", "keep", "running"]);

    // `label!=tier` removes the stopped ones without the key.
    d.run(&["container", "prune", "-f", "--filter", "label!=tier"])
        .ok();
    assert_eq!(names(d), ["keep", "running"]);

    // Bad filters are refused with Docker's messages and remove nothing.
    let bad = d
        .run(&["container", "prune", "-f", "--filter", "foo=bar"])
        .fails();
    assert!(
        bad.stderr.contains("invalid filter 'foo'"),
        "{}",
        bad.stderr
    );
    let bad = d
        .run(&["container", "prune", "-f", "--filter", "until=xyz"])
        .fails();
    assert!(
        bad.stderr
            .contains("failed to parse value as time or duration: \"xyz\""),
        "{}",
        bad.stderr
    );
    assert_eq!(names(d), ["keep", "running"]);

    // A time after every creation: what is stopped goes, the running stays.
    // The space reclaimed is what the containers wrote (Docker: 1.049MB).
    d.run(&[
        "run",
        "--name",
        "writer",
        &image,
        "dd",
        "if=/dev/zero",
        "of=/tmp/f",
        "bs=1024",
        "count=1024",
    ])
    .ok();
    let out = d
        .run(&[
            "container",
            "prune",
            "-f",
            "--filter",
            "until=2999-01-01T00:00:00Z",
        ])
        .ok();
    assert!(
        out.stdout.contains("Total reclaimed space: 1.049MB"),
        "{}",
        out.stdout
    );
    assert_eq!(names(d), ["running"]);
    d.run(&["rm", "-f", "running"]).ok();
    drop(env);
    leaks.assert_clean();
}

fn inspect(docker: &Cli, name: &str, format: &str) -> String {
    docker
        .run(&["inspect", "--format", format, name])
        .ok()
        .out()
        .to_string()
}

#[test]
fn a_start_that_fails_before_the_process_runs_is_recorded() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let registry = Registry::start().expect("registry starts");
    let daemon = Daemon::start(DaemonOpts::default().arg("--init-path").arg("/nonexistent"))
        .expect("servind starts");
    let docker = Cli::docker(&daemon.host()).expect("docker CLI");
    let env = Env {
        registry,
        daemon,
        docker,
    };
    let image = env.publish(&Fixture::busybox().unwrap(), "busybox:latest");
    env.docker.run(&["pull", "-q", &image]).ok();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;

    // Docker 20.10 with `--init-path /nonexistent`: the run fails with
    // 127, and the container is Created with that code and the error.
    let run = d
        .run(&["run", "--init", "--name", "noinit", &image, "true"])
        .code(127);
    assert!(run.stderr.contains("/nonexistent"), "{}", run.stderr);
    let state = "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}} {{.State.StartedAt}} {{.State.FinishedAt}}";
    assert_eq!(
        inspect(d, "noinit", state),
        "created 127 false 0001-01-01T00:00:00Z 0001-01-01T00:00:00Z"
    );
    let error = inspect(d, "noinit", "{{.State.Error}}");
    assert!(
        error.contains("/nonexistent") && error.contains("no such file or directory"),
        "{error}"
    );
    let ps = d
        .run(&[
            "ps",
            "-a",
            "--filter",
            "name=noinit",
            "--format",
            "{{.Status}}",
        ])
        .ok();
    assert_eq!(ps.out(), "Created");
    let created = d
        .run(&[
            "ps",
            "-aq",
            "--filter",
            "status=created",
            "--filter",
            "name=noinit",
        ])
        .ok();
    assert_eq!(created.out().len(), 12, "{}", created.stdout);
    // As Docker: `wait` answers the recorded code at once, and `exited`
    // matches only containers that ran.
    assert_eq!(d.run(&["wait", "noinit"]).ok().out(), "127");
    let exited = d.run(&["ps", "-aq", "--filter", "exited=127"]).ok();
    assert_eq!(exited.out(), "");
    // A second start fails the same way and is recorded again.
    d.run(&["start", "noinit"]).fails();
    assert_eq!(inspect(d, "noinit", "{{.State.ExitCode}}"), "127");

    // A command that does not exist: 127, Created, with the error.
    d.run(&["run", "--name", "nocmd", &image, "nosuchcommand"])
        .code(127);
    assert_eq!(
        inspect(d, "nocmd", "{{.State.Status}} {{.State.ExitCode}}"),
        "created 127"
    );
    assert!(inspect(d, "nocmd", "{{.State.Error}}").contains("nosuchcommand"));

    // A `--mount` bind source that vanished fails Docker's checks before
    // the start: nothing is recorded. A `-v` source is made again.
    let src = tempfile::tempdir().unwrap();
    let gone = src.path().join("gone");
    let remade = src.path().join("remade");
    std::fs::create_dir(&gone).unwrap();
    std::fs::create_dir(&remade).unwrap();
    d.run(&[
        "create",
        "--name",
        "mountgone",
        "--mount",
        &format!("type=bind,src={},dst=/x", gone.display()),
        &image,
        "true",
    ])
    .ok();
    d.run(&[
        "create",
        "--name",
        "bindgone",
        "-v",
        &format!("{}:/x", remade.display()),
        &image,
        "true",
    ])
    .ok();
    std::fs::remove_dir(&gone).unwrap();
    std::fs::remove_dir(&remade).unwrap();
    let failed = d.run(&["start", "mountgone"]).fails();
    assert!(
        failed.stderr.contains("bind source path does not exist"),
        "{}",
        failed.stderr
    );
    assert_eq!(
        inspect(
            d,
            "mountgone",
            "{{.State.Status}} {{.State.ExitCode}} [{{.State.Error}}]"
        ),
        "created 0 []"
    );
    d.run(&["start", "-a", "bindgone"]).ok();
    assert!(remade.is_dir());
    assert_eq!(
        inspect(d, "bindgone", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );

    d.run(&["rm", "noinit", "nocmd", "mountgone", "bindgone"])
        .ok();
    drop(env);
    leaks.assert_clean();
}

/// `docker volume ls -q`, sorted.
fn volumes(docker: &Cli) -> Vec<String> {
    sorted_lines(docker, &["volume", "ls", "-q"])
}

#[test]
fn inspect_lists_every_mount_and_anonymous_volumes_are_made_once() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;
    let src = tempfile::tempdir().unwrap();
    let s = src.path().display().to_string();
    d.run(&[
        "create",
        "--name",
        "mnt",
        "-v",
        &format!("{s}:/b1:ro"),
        "-v",
        "named1:/v1",
        "-v",
        "/anon1",
        "--mount",
        &format!("type=bind,src={s},dst=/b2,readonly"),
        "--mount",
        "type=volume,src=named2,dst=/v2",
        "--mount",
        "type=volume,dst=/v3",
        "--mount",
        "type=tmpfs,dst=/t1,tmpfs-size=1m",
        "--tmpfs",
        "/t2:size=2m",
        &image,
        "sh",
        "-c",
        "echo run >> /v3/f; echo run >> /anon1/f; cat /v3/f /anon1/f; grep -c ' /t[12] tmpfs' /proc/mounts",
    ])
    .ok();

    // What Docker 20.10 shows for the same flags, in destination order.
    let mounts = || -> Vec<serde_json::Value> {
        let v: serde_json::Value =
            serde_json::from_str(&inspect(d, "mnt", "{{json .Mounts}}")).unwrap();
        let mut v = v.as_array().cloned().unwrap();
        v.sort_by_key(|m| m["Destination"].as_str().unwrap().to_string());
        v
    };
    let before = mounts();
    let rows: Vec<String> = before
        .iter()
        .map(|m| {
            format!(
                "{} {} {} mode={} rw={} prop={}",
                m["Type"].as_str().unwrap(),
                m["Destination"].as_str().unwrap(),
                m["Source"].as_str().unwrap().replace(&s, "SRC"),
                m["Mode"].as_str().unwrap(),
                m["RW"],
                m["Propagation"].as_str().unwrap()
            )
        })
        .map(|r| {
            // Volume sources are under the data root.
            let data_root = env.daemon.data_root().display().to_string();
            r.replace(&data_root, "ROOT")
        })
        .collect();
    let anon1 = before[0]["Name"].as_str().unwrap().to_string();
    let v3 = before[6]["Name"].as_str().unwrap().to_string();
    assert_eq!(
        rows,
        [
            format!("volume /anon1 ROOT/volumes/{anon1}/_data mode= rw=true prop="),
            "bind /b1 SRC mode=ro rw=false prop=rprivate".to_string(),
            "bind /b2 SRC mode= rw=false prop=rprivate".to_string(),
            "tmpfs /t1  mode= rw=true prop=".to_string(),
            "volume /v1 ROOT/volumes/named1/_data mode=z rw=true prop=".to_string(),
            "volume /v2 ROOT/volumes/named2/_data mode=z rw=true prop=".to_string(),
            format!("volume /v3 ROOT/volumes/{v3}/_data mode=z rw=true prop="),
        ]
    );
    assert_eq!(anon1.len(), 64, "{anon1}");
    assert_eq!(v3.len(), 64, "{v3}");
    assert_eq!(
        inspect(d, "mnt", "{{json .HostConfig.Tmpfs}}"),
        r#"{"/t2":"size=2m"}"#
    );
    let mut all = vec![anon1.clone(), v3.clone(), "named1".into(), "named2".into()];
    all.sort();
    assert_eq!(volumes(d), all, "made at create");

    // Each start finds what the one before wrote: the same volumes.
    let first = d.run(&["start", "-a", "mnt"]).ok();
    assert_eq!(first.stdout, "run\nrun\n2\n");
    let second = d.run(&["start", "-a", "mnt"]).ok();
    assert_eq!(second.stdout, "run\nrun\nrun\nrun\n2\n");
    assert_eq!(mounts(), before);
    assert_eq!(volumes(d), all, "no volume made at start");

    // The anonymous volumes are in use: `volume prune` keeps them.
    d.run(&["volume", "prune", "-f"]).ok();
    assert_eq!(volumes(d), all);
    // `rm -v` takes the anonymous volumes; named ones stay.
    d.run(&["rm", "-v", "mnt"]).ok();
    assert_eq!(volumes(d), ["named1", "named2"]);
    // `--rm` does the same.
    d.run(&[
        "run",
        "--rm",
        "-v",
        "/data",
        "-v",
        "named1:/k",
        "--mount",
        "type=volume,dst=/m",
        &image,
        "true",
    ])
    .ok();
    assert_eq!(volumes(d), ["named1", "named2"]);
    d.run(&["volume", "rm", "named1", "named2"]).ok();
    drop(env);
    leaks.assert_clean();
}

#[test]
fn a_failed_exec_leaves_the_container_removable() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;
    // With Docker's default seccomp filter, and without one.
    for (name, opts) in [
        ("filtered", vec![]),
        ("unconfined", vec!["--security-opt", "seccomp=unconfined"]),
    ] {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend(opts);
        args.extend([image.as_str(), "sleep", "600"]);
        d.run(&args).ok();
        // The working directory fails inside the runtime's init, after the
        // process was forked into the container.
        // Docker reports it in the exec's stream, with exit code 126.
        let failed = d
            .run(&["exec", "-w", "/nonexistent", name, "true"])
            .code(126);
        assert!(
            failed.stdout.contains("OCI runtime exec failed"),
            "{failed:?}"
        );
        let failed = d.run(&["exec", "-u", "nosuchuser", name, "true"]).code(126);
        assert!(
            failed
                .stdout
                .to_lowercase()
                .contains("unable to find user nosuchuser"),
            "{failed:?}"
        );
        // Detached, nobody reads the stream: the failure is the request's
        // answer, as Docker's.
        let failed = d.run(&["exec", "-d", name, "/nonexistent"]).code(1);
        assert!(
            failed
                .stderr
                .contains("Error response from daemon: OCI runtime exec failed")
                && failed.stderr.contains("/nonexistent"),
            "{failed:?}"
        );
        // The container still runs execs, and goes with rm -f.
        let out = d.run(&["exec", name, "echo", "alive"]).ok();
        assert_eq!(out.out(), "alive");
        d.run(&["rm", "-f", name]).ok();
    }
    assert_eq!(names(d), Vec::<String>::new());
    drop(env);
    leaks.assert_clean();
}

/// Unmounts its path when dropped, so a failed assertion leaves no mount.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_removal_that_cannot_finish_leaves_a_dead_container_to_remove_again() {
    require_tools!(
        "docker",
        "docker-registry",
        "skopeo",
        "busybox",
        "mount",
        "umount"
    );
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;
    let id = d
        .run(&["create", "--name", "stuck", &image, "true"])
        .ok()
        .out()
        .to_string();
    // A mount left in the container's folder makes its removal fail with
    // EBUSY (what a stuck shim's rootfs did).
    let busy = env
        .daemon
        .data_root()
        .join("containers")
        .join(&id)
        .join("busy");
    std::fs::create_dir(&busy).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "servin-test", busy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let mounted = Mounted(busy);
    let failed = d.run(&["rm", "stuck"]).fails();
    assert!(
        failed
            .stderr
            .contains(&format!("unable to remove filesystem for {id}")),
        "{}",
        failed.stderr
    );
    let ps = d
        .run(&[
            "ps",
            "-a",
            "--filter",
            "name=stuck",
            "--format",
            "{{.Status}}",
        ])
        .ok();
    assert_eq!(ps.out(), "Dead");
    assert_eq!(inspect(d, "stuck", "{{.State.Status}}"), "dead");
    d.run(&["start", "stuck"]).fails();
    drop(mounted);
    d.run(&["rm", "stuck"]).ok();
    assert_eq!(names(d), Vec::<String>::new());
    drop(env);
    leaks.assert_clean();
}

#[test]
fn ps_filters_before_since_volume_network_and_health() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;
    let ps = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["ps", "--format", "{{.Names}}"];
        all.extend(args);
        sorted_lines(d, &all)
    };
    let first = d
        .run(&[
            "create",
            "--name",
            "first",
            "-v",
            "vol1:/data",
            &image,
            "true",
        ])
        .ok()
        .out()
        .to_string();
    let up = d
        .run(&[
            "run",
            "-d",
            "--name",
            "up",
            "--network",
            "none",
            &image,
            "sleep",
            "600",
        ])
        .ok()
        .out()
        .to_string();
    d.run(&["create", "--name", "last", &image, "true"]).ok();

    // As Docker 20.10: since/before compare creation, and do not imply -a.
    assert_eq!(ps(&["--filter", "since=first"]), ["up"]);
    assert_eq!(ps(&["-a", "--filter", "since=first"]), ["last", "up"]);
    assert_eq!(ps(&["-a", "--filter", "before=last"]), ["first", "up"]);
    assert_eq!(ps(&["-a", "--filter", &format!("before={up}")]), ["first"]);
    assert_eq!(ps(&["-a", "--filter", "volume=vol1"]), ["first"]);
    assert_eq!(ps(&["-a", "--filter", "volume=/data"]), ["first"]);
    assert_eq!(
        ps(&["-a", "--filter", "volume=nosuch"]),
        Vec::<String>::new()
    );
    assert_eq!(ps(&["--filter", "network=none"]), ["up"]);
    assert_eq!(ps(&["--filter", "network=bridge"]), Vec::<String>::new());
    assert_eq!(
        ps(&["-a", "--filter", "health=none"]),
        ["first", "last", "up"]
    );
    assert_eq!(
        ps(&["-a", "--filter", "health=healthy"]),
        Vec::<String>::new()
    );
    // Several ids: any of them.
    assert_eq!(
        ps(&[
            "-a",
            "--filter",
            &format!("id={}", &first[..12]),
            "--filter",
            &format!("id={up}")
        ]),
        ["first", "up"]
    );

    let bad = d.run(&["ps", "--filter", "health=foo"]).fails();
    assert!(
        bad.stderr
            .contains("Unrecognised filter value for health: foo"),
        "{}",
        bad.stderr
    );
    let bad = d.run(&["ps", "--filter", "since=nosuch"]).fails();
    assert!(
        bad.stderr.contains("no such container nosuch"),
        "{}",
        bad.stderr
    );
    let bad = d.run(&["ps", "--filter", "nosuchkey=1"]).fails();
    assert!(
        bad.stderr.contains("invalid filter 'nosuchkey'"),
        "{}",
        bad.stderr
    );

    d.run(&["rm", "-f", "first", "up", "last"]).ok();
    d.run(&["volume", "rm", "vol1"]).ok();
    drop(env);
    leaks.assert_clean();
}

#[test]
fn an_empty_volume_gets_what_the_image_has_at_its_destination() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;
    let ls = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend(extra);
        args.extend([image.as_str(), "/bin/busybox", "ls", "-l", "/bin"]);
        d.run(&args)
    };
    let plain = ls(&[]).ok().stdout;
    assert!(plain.contains("busybox"), "{plain}");
    // As Docker 20.10: a named and an anonymous volume over /bin show the
    // image's /bin (content, modes, owners, symlinks).
    assert_eq!(ls(&["-v", "copied:/bin"]).ok().stdout, plain);
    assert_eq!(ls(&["--mount", "type=volume,dst=/bin"]).ok().stdout, plain);
    // The copy is the volume's own: a volume that is not empty is left as it is.
    d.run(&[
        "run",
        "--rm",
        "-v",
        "copied:/bin",
        &image,
        "/bin/busybox",
        "rm",
        "/bin/cat",
    ])
    .ok();
    let after = ls(&["-v", "copied:/bin"]).ok().stdout;
    assert!(!after.contains(" cat"), "{after}");
    assert!(after.contains("busybox"), "{after}");
    // volume-nocopy: the volume stays empty, so there is no /bin/busybox.
    ls(&["--mount", "type=volume,src=empty,dst=/bin,volume-nocopy"]).code(127);
    d.run(&["volume", "rm", "copied", "empty"]).ok();
    assert_eq!(
        d.run(&["volume", "ls", "-q"]).ok().out(),
        "",
        "--rm left an anonymous volume"
    );
    drop(env);
    leaks.assert_clean();
}

#[test]
fn a_removal_cut_short_by_a_daemon_stop_leaves_a_dead_container() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (mut env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let id = env
        .docker
        .run(&["create", "--name", "halfgone", &image, "true"])
        .ok()
        .out()
        .to_string();
    // What a daemon stopped in the middle of `docker rm` leaves on disk.
    env.daemon.stop().unwrap();
    let path = env
        .daemon
        .data_root()
        .join("containers")
        .join(&id)
        .join("container.json");
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    rec["state"] = serde_json::json!({"status": "removing"});
    std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    env.daemon.restart().unwrap();

    // As Docker restores one: dead, and removable (it stayed "removal in
    // progress" for ever).
    let d = &env.docker;
    assert_eq!(inspect(d, "halfgone", "{{.State.Status}}"), "dead");
    d.run(&["rm", "halfgone"]).ok();
    assert_eq!(names(d), Vec::<String>::new());
    drop(env);
    leaks.assert_clean();
}

#[test]
fn volume_prune_applies_label_filters() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let env = Env::start();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;
    let kept = d
        .run(&["volume", "create", "--label", "keep=1"])
        .ok()
        .out()
        .to_string();
    let plain = d.run(&["volume", "create"]).ok().out().to_string();
    let mut both = vec![kept.clone(), plain.clone()];
    both.sort();

    d.run(&["volume", "prune", "-f", "--filter", "label=none"])
        .ok();
    assert_eq!(volumes(d), both, "a label nothing has matches nothing");
    let bad = d
        .run(&["volume", "prune", "-f", "--filter", "foo=bar"])
        .fails();
    assert!(
        bad.stderr.contains("invalid filter 'foo'"),
        "{}",
        bad.stderr
    );
    assert_eq!(volumes(d), both);
    d.run(&["volume", "prune", "-f", "--filter", "label!=keep"])
        .ok();
    assert_eq!(volumes(d), [kept]);
    d.run(&["volume", "prune", "-f", "--filter", "label=keep=1"])
        .ok();
    assert_eq!(volumes(d), Vec::<String>::new());
    drop(env);
    leaks.assert_clean();
}

#[test]
fn docker_cp_reaches_anonymous_volumes_of_a_stopped_container() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;
    d.run(&[
        "create",
        "--name",
        "cpanon",
        "-v",
        "/data",
        "--mount",
        "type=volume,dst=/m",
        &image,
        "sh",
        "-c",
        "touch /data/seen /m/seen; cat /data/f /m/g",
    ])
    .ok();
    // A first run leaves the volumes not empty: no copy-up from the
    // container's own folders hides where `cp` writes.
    d.run(&["start", "-a", "cpanon"]).fails();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), "into -v /data\n").unwrap();
    std::fs::write(src.path().join("g"), "into --mount\n").unwrap();
    let f = src.path().join("f").display().to_string();
    let g = src.path().join("g").display().to_string();
    d.run(&["cp", &f, "cpanon:/data/f"]).ok();
    d.run(&["cp", &g, "cpanon:/m/g"]).ok();
    // What was copied is in the volumes the container gets at its start.
    let out = d.run(&["start", "-a", "cpanon"]).ok();
    assert_eq!(out.stdout, "into -v /data\ninto --mount\n");
    d.run(&["rm", "-v", "cpanon"]).ok();
    assert_eq!(volumes(d), Vec::<String>::new());
    drop(env);
    leaks.assert_clean();
}

/// A shim killed with SIGKILL records no exit and tears nothing down: the
/// daemon does it for it, so the container's processes do not live on
/// unseen, its rootfs is unmounted and `rm` works (it left the container
/// Dead with EBUSY before).
#[test]
fn a_killed_shim_leaves_no_process_or_mount_behind() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox", "runc");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let d = &env.docker;
    for runtime in ["servin", "runc"] {
        let id = d
            .run(&[
                "run",
                "-d",
                "--runtime",
                runtime,
                "--name",
                "orphan",
                &image,
                "sleep",
                "600",
            ])
            .ok()
            .out()
            .to_string();
        let pid = d
            .run(&["inspect", "-f", "{{.State.Pid}}", "orphan"])
            .ok()
            .out()
            .to_string();
        let dir = env.daemon.data_root().join("containers").join(&id);
        let shim = std::fs::read_to_string(dir.join("shim.pid")).unwrap();
        let killed = std::process::Command::new("kill")
            .args(["-9", shim.trim()])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let state = loop {
            let s = d
                .run(&[
                    "inspect",
                    "-f",
                    "{{.State.Status}} {{.State.ExitCode}}",
                    "orphan",
                ])
                .ok();
            if s.out() != "running 0" || std::time::Instant::now() > deadline {
                break s.out().to_string();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert_eq!(state, "exited 137", "{runtime}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{runtime}: the container's process {pid} outlived its shim"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(dir.to_str().unwrap()),
            "{runtime}: the container's rootfs is still mounted"
        );
        d.run(&["rm", "orphan"]).ok();
    }
    drop(env);
    leaks.assert_clean();
}
