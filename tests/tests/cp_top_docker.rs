//! Acceptance: `docker cp`, `docker export` and `docker top` through the
//! stock docker CLI, with running and stopped containers.
//! Needs: docker (CLI), docker-registry, skopeo, busybox-static, tar; root
//! (namespaces, cgroups, overlayfs).

mod common;

use std::path::Path;

use common::{env_with_busybox, Env};
use servin_testkit::http::Request;
use servin_testkit::{require_tools, LeakCheck};

/// A tree on the host to copy in: `hello.txt` and `dir/{a.txt,sub/b.txt}`.
fn host_tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("hello.txt"), "hello from the host\n").unwrap();
    std::fs::create_dir_all(d.path().join("dir/sub")).unwrap();
    std::fs::write(d.path().join("dir/a.txt"), "a\n").unwrap();
    std::fs::write(d.path().join("dir/sub/b.txt"), "b\n").unwrap();
    d
}

fn arg(p: &Path) -> String {
    p.display().to_string()
}

/// Copy mounts (`containers/<id>/.cp-*`) still mounted or still on disk.
fn copy_leftovers(env: &Env) -> Vec<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let containers = env.daemon.data_root().join("containers");
    // This daemon's only: tests running alongside copy too.
    let ours = format!("{}/", containers.display());
    let mut left: Vec<String> = mountinfo
        .lines()
        .filter(|l| l.contains("/.cp-") && l.contains(&ours))
        .map(str::to_string)
        .collect();
    for c in std::fs::read_dir(containers).unwrap().flatten() {
        for e in std::fs::read_dir(c.path()).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(".cp-") {
                left.push(e.path().display().to_string());
            }
        }
    }
    left
}

#[track_caller]
fn assert_no_copy_mounts(env: &Env) {
    let left = copy_leftovers(env);
    assert!(left.is_empty(), "copy mounts left: {left:#?}");
}

/// Copies a file and a directory in and out of `name`; `check_in` reads a
/// file inside the container by other means than `docker cp`.
fn copy_both_ways(env: &Env, name: &str, check_in: &dyn Fn(&str) -> String) {
    let host = host_tree();
    let docker = &env.docker;
    docker
        .run(&[
            "cp",
            &arg(&host.path().join("hello.txt")),
            &format!("{name}:/tmp/"),
        ])
        .ok();
    docker
        .run(&[
            "cp",
            &arg(&host.path().join("dir")),
            &format!("{name}:/tmp/copied"),
        ])
        .ok();
    assert_eq!(check_in("/tmp/hello.txt"), "hello from the host\n");
    assert_eq!(check_in("/tmp/copied/sub/b.txt"), "b\n");

    let out = tempfile::tempdir().unwrap();
    docker
        .run(&["cp", &format!("{name}:/etc/passwd"), &arg(out.path())])
        .ok();
    let passwd = std::fs::read_to_string(out.path().join("passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    docker
        .run(&[
            "cp",
            &format!("{name}:/tmp/copied"),
            &arg(&out.path().join("back")),
        ])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.path().join("back/a.txt")).unwrap(),
        "a\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("back/sub/b.txt")).unwrap(),
        "b\n"
    );
    // Through a symlink: bin/sh -> busybox, followed with -L.
    docker
        .run(&[
            "cp",
            "-L",
            &format!("{name}:/bin/sh"),
            &arg(&out.path().join("sh")),
        ])
        .ok();
    let sh = std::fs::metadata(out.path().join("sh")).unwrap();
    assert!(sh.is_file() && sh.len() > 100_000, "{sh:?}");
    // Without -L the symlink itself; with `/.` the directory's contents.
    docker
        .run(&[
            "cp",
            &format!("{name}:/bin/sh"),
            &arg(&out.path().join("link")),
        ])
        .ok();
    assert_eq!(
        std::fs::read_link(out.path().join("link")).unwrap(),
        Path::new("busybox")
    );
    docker
        .run(&[
            "cp",
            &format!("{name}:/etc/."),
            &arg(&out.path().join("etc")),
        ])
        .ok();
    assert!(out.path().join("etc/passwd").is_file());

    let missing = docker
        .run(&["cp", &format!("{name}:/nope"), &arg(out.path())])
        .code(1);
    assert_eq!(
        missing.stderr.trim_end(),
        format!("Error response from daemon: Could not find the file /nope in container {name}")
    );
    let not_dir = docker
        .run(&[
            "cp",
            &arg(&host.path().join("hello.txt")),
            &format!("{name}:/etc/passwd/x"),
        ])
        .code(1);
    assert!(
        not_dir
            .stderr
            .contains("extraction point is not a directory"),
        "{}",
        not_dir.stderr
    );
    assert_no_copy_mounts(env);
}

#[test]
fn cp_with_a_running_container() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    env.docker
        .run(&["run", "-d", "--name", "cpr", &image, "sleep", "1000"])
        .ok();
    copy_both_ways(&env, "cpr", &|path| {
        env.docker.run(&["exec", "cpr", "cat", path]).ok().stdout
    });
    env.docker.run(&["rm", "-f", "cpr"]).ok();
    assert_no_copy_mounts(&env);
}

#[test]
fn cp_with_stopped_containers() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    // Never started: what is copied in is there when it starts.
    env.docker
        .run(&["create", "--name", "cps", &image, "sleep", "1000"])
        .ok();
    let read_after_start = |path: &str| {
        env.docker.run(&["start", "cps"]).ok();
        let text = env.docker.run(&["exec", "cps", "cat", path]).ok().stdout;
        env.docker.run(&["stop", "-t", "0", "cps"]).ok();
        text
    };
    copy_both_ways(&env, "cps", &read_after_start);

    // Exited: its changes, deletions included, are what `docker cp` sees.
    env.docker
        .run(&[
            "run",
            "--name",
            "cpe",
            &image,
            "sh",
            "-c",
            "echo made > /tmp/made && rm /etc/group",
        ])
        .ok();
    let out = tempfile::tempdir().unwrap();
    env.docker
        .run(&["cp", "cpe:/tmp/made", &arg(out.path())])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.path().join("made")).unwrap(),
        "made\n"
    );
    let gone = env
        .docker
        .run(&["cp", "cpe:/etc/group", &arg(out.path())])
        .code(1);
    assert!(
        gone.stderr.contains("Could not find the file /etc/group"),
        "{}",
        gone.stderr
    );
    assert_no_copy_mounts(&env);

    // A client that goes away mid-download leaves no mount behind either.
    {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(env.daemon.socket()).unwrap();
        s.write_all(b"GET /containers/cpe/archive?path=/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut first = [0u8; 4096];
        let n = s.read(&mut first).unwrap();
        assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !copy_leftovers(&env).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_no_copy_mounts(&env);
    env.docker.run(&["rm", "-f", "cps", "cpe"]).ok();
    drop(env);
    leaks.assert_clean();
}

/// A plain ustar archive: `(name, type, content or link target)`.
fn tar(entries: &[(&str, u8, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, data) in entries {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let size = if *kind == b'0' { data.len() } else { 0 };
        for (range, value) in [(100..107, 0o644), (108..115, 0), (116..123, 0)] {
            h[range].copy_from_slice(format!("{value:07o}").as_bytes());
        }
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[136..147].copy_from_slice(format!("{:011o}", 0).as_bytes());
        h[156] = *kind;
        if *kind == b'2' {
            h[157..157 + data.len()].copy_from_slice(data.as_bytes());
        }
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        if *kind == b'0' {
            out.extend_from_slice(data.as_bytes());
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn put_archive(env: &Env, container: &str, path: &str, body: &[u8]) -> (u16, String) {
    let uri = format!("/containers/{container}/archive?path={path}&noOverwriteDirNonDir=true");
    let mut req = Request::get(&uri).header("Content-Type", "application/x-tar");
    req.method = "PUT";
    req.body = body;
    let resp = env.daemon.request(&req).unwrap();
    let message = resp
        .json()
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_default();
    (resp.status, message)
}

#[test]
fn hostile_archives_are_refused_and_leave_nothing_outside() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    env.docker
        .run(&["run", "-d", "--name", "target", &image, "sleep", "1000"])
        .ok();
    env.docker
        .run(&["create", "--name", "stopped", &image, "true"])
        .ok();
    let outside = format!("/tmp/servin-cp-evil-{}", std::process::id());
    let deep = format!("{}{}", "../".repeat(16), &outside[1..]);
    let through_link = format!("link/{}/x", &outside[1..]);
    let hostile: [(&str, Vec<u8>, &str); 3] = [
        (
            "climbs",
            tar(&[("../evil", b'0', "evil\n")]),
            "escapes the root: ../evil",
        ),
        ("deep", tar(&[(&deep, b'0', "evil\n")]), "escapes the root"),
        (
            "symlink",
            tar(&[("link", b'2', "/"), (&through_link, b'0', "evil\n")]),
            "link is a symlink",
        ),
    ];
    for container in ["target", "stopped"] {
        for (what, body, expected) in &hostile {
            let (status, message) = put_archive(&env, container, "/tmp", body);
            assert_eq!(status, 400, "{container}/{what}: {message}");
            assert!(message.contains(expected), "{container}/{what}: {message}");
            assert!(
                !Path::new(&outside).exists(),
                "{container}/{what} wrote {outside}"
            );
        }
        assert_no_copy_mounts(&env);
    }
    let ls = env.docker.run(&["exec", "target", "ls", "/"]).ok();
    assert!(!ls.stdout.contains("evil"), "{}", ls.stdout);
    let data_root = env.daemon.data_root();
    let id = env
        .docker
        .run(&["inspect", "--format", "{{.Id}}", "target"])
        .ok()
        .out()
        .to_string();
    assert!(!data_root.join("containers").join(&id).join("evil").exists());
    assert!(!data_root.join("containers").join("evil").exists());

    // A directory may not become a file, as with Docker.
    let (status, message) = put_archive(&env, "target", "/", &tar(&[("etc", b'0', "x")]));
    assert_eq!(status, 400, "{message}");
    assert_eq!(
        message,
        r#"cannot overwrite directory "/etc" with non-directory "/""#
    );
    let (status, _) = put_archive(&env, "target", "/", &tar(&[("fine.txt", b'0', "ok\n")]));
    assert_eq!(status, 200);
    let fine = env.docker.run(&["exec", "target", "cat", "/fine.txt"]).ok();
    assert_eq!(fine.stdout, "ok\n");
    env.docker.run(&["rm", "-f", "target", "stopped"]).ok();
}

#[test]
fn export_writes_the_whole_filesystem() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox", "tar");
    let (env, image) = env_with_busybox();
    env.docker
        .run(&["run", "--name", "exp", &image, "sh", "-c", "echo x > /made"])
        .ok();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("exp.tar");
    env.docker.run(&["export", "-o", &arg(&file), "exp"]).ok();
    let list = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&file)
        .output()
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    let names = String::from_utf8(list.stdout).unwrap();
    let names: Vec<&str> = names.lines().collect();
    for wanted in ["bin/busybox", "bin/sh", "etc/passwd", "made", "tmp/"] {
        assert!(names.contains(&wanted), "{wanted} not in {names:?}");
    }
    env.docker
        .run(&["run", "-d", "--name", "exp2", &image, "sleep", "1000"])
        .ok();
    let running = env.docker.run(&["export", "-o", &arg(&file), "exp2"]).ok();
    assert!(running.stderr.is_empty(), "{}", running.stderr);
    assert!(std::fs::metadata(&file).unwrap().len() > 100_000);
    env.docker.run(&["rm", "-f", "exp", "exp2"]).ok();
    assert_no_copy_mounts(&env);
}

#[test]
fn top_lists_the_container_processes() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox", "ps");
    let (env, image) = env_with_busybox();
    env.docker
        .run(&["run", "-d", "--name", "topper", &image, "sleep", "1000"])
        .ok();
    let pid = env
        .docker
        .run(&["inspect", "--format", "{{.State.Pid}}", "topper"])
        .ok()
        .out()
        .to_string();
    let top = env.docker.run(&["top", "topper"]).ok();
    let lines: Vec<&str> = top.stdout.lines().collect();
    let titles: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        titles,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    assert_eq!(lines.len(), 2, "{}", top.stdout);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[1], pid);
    assert!(lines[1].ends_with("sleep 1000"), "{}", lines[1]);

    let columns = env.docker.run(&["top", "topper", "-o", "pid,comm"]).ok();
    assert_eq!(
        columns
            .stdout
            .lines()
            .nth(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec![pid.as_str(), "sleep"])
    );
    let renamed = env.docker.run(&["top", "topper", "-o", "x=PID"]).code(1);
    assert!(
        renamed
            .stderr
            .contains(r#"specifying "x=PID" is not allowed"#),
        "{}",
        renamed.stderr
    );

    env.docker.run(&["stop", "-t", "0", "topper"]).ok();
    let id = env
        .docker
        .run(&["inspect", "--format", "{{.Id}}", "topper"])
        .ok()
        .out()
        .to_string();
    let stopped = env.docker.run(&["top", "topper"]).code(1);
    assert_eq!(
        stopped.stderr.trim_end(),
        format!("Error response from daemon: Container {id} is not running")
    );
    env.docker.run(&["rm", "topper"]).ok();
}

/// What `docker cp` of one file out of `name` gives, as text.
fn cp_out(env: &Env, name: &str, path: &str) -> String {
    let out = tempfile::tempdir().unwrap();
    env.docker
        .run(&["cp", &format!("{name}:{path}"), &arg(&out.path().join("f"))])
        .ok();
    std::fs::read_to_string(out.path().join("f")).unwrap()
}

/// Copies `file` into the directory `path` of `name`; the CLI's result.
fn cp_in(env: &Env, file: &Path, name: &str, path: &str) -> servin_testkit::Output {
    env.docker
        .run(&["cp", &arg(file), &format!("{name}:{path}")])
}

#[test]
fn cp_reads_and_writes_through_volumes_binds_and_tmpfs() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let (env, image) = env_with_busybox();
    let host = host_tree();
    let bind = tempfile::tempdir().unwrap();
    std::fs::write(bind.path().join("from-bind.txt"), "bound\n").unwrap();
    let ro = tempfile::tempdir().unwrap();
    std::fs::write(ro.path().join("keep.txt"), "kept\n").unwrap();
    let hello = host.path().join("hello.txt");
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "cpm",
            "-v",
            "cpvol:/data",
            "-v",
            &format!("{}:/bind", arg(bind.path())),
            "-v",
            &format!("{}:/ro:ro", arg(ro.path())),
            "--tmpfs",
            "/scratch",
            &image,
            "sh",
            "-c",
            "echo in-volume > /data/v.txt; echo in-tmpfs > /scratch/t.txt; touch /tmp/ready; sleep 1000",
        ])
        .ok();
    // Bounded wait for the container's writes.
    let mut tries = 0;
    while env
        .docker
        .run(&["exec", "cpm", "test", "-e", "/tmp/ready"])
        .code
        != 0
    {
        tries += 1;
        assert!(tries < 200, "the container never wrote its files");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let volume = std::path::PathBuf::from(
        env.docker
            .run(&["volume", "inspect", "-f", "{{.Mountpoint}}", "cpvol"])
            .ok()
            .out(),
    );

    // Running: every mount as the container sees it, tmpfs included.
    assert_eq!(cp_out(&env, "cpm", "/data/v.txt"), "in-volume\n");
    assert_eq!(cp_out(&env, "cpm", "/bind/from-bind.txt"), "bound\n");
    assert_eq!(cp_out(&env, "cpm", "/scratch/t.txt"), "in-tmpfs\n");
    cp_in(&env, &hello, "cpm", "/data/").ok();
    assert_eq!(
        std::fs::read_to_string(volume.join("hello.txt")).unwrap(),
        "hello from the host\n"
    );
    cp_in(&env, &hello, "cpm", "/bind/").ok();
    assert_eq!(
        std::fs::read_to_string(bind.path().join("hello.txt")).unwrap(),
        "hello from the host\n"
    );
    cp_in(&env, &hello, "cpm", "/scratch").ok();
    assert_eq!(
        env.docker
            .run(&["exec", "cpm", "cat", "/scratch/hello.txt"])
            .ok()
            .stdout,
        "hello from the host\n"
    );
    let refused = cp_in(&env, &hello, "cpm", "/ro/").code(1);
    assert_eq!(
        refused.stderr.trim_end(),
        "Error response from daemon: mounted volume is marked read-only"
    );
    let out = tempfile::tempdir().unwrap();
    env.docker
        .run(&["cp", "cpm:/data", &arg(&out.path().join("data"))])
        .ok();
    assert_eq!(
        std::fs::read_to_string(out.path().join("data/v.txt")).unwrap(),
        "in-volume\n"
    );

    // Stopped: volumes and binds still read and written at their sources;
    // the tmpfs is gone with the container's run, as in Docker.
    env.docker.run(&["stop", "-t", "0", "cpm"]).ok();
    std::fs::remove_file(volume.join("hello.txt")).unwrap();
    assert_eq!(cp_out(&env, "cpm", "/data/v.txt"), "in-volume\n");
    assert_eq!(cp_out(&env, "cpm", "/bind/from-bind.txt"), "bound\n");
    cp_in(&env, &hello, "cpm", "/data/").ok();
    assert_eq!(
        std::fs::read_to_string(volume.join("hello.txt")).unwrap(),
        "hello from the host\n"
    );
    let gone = env
        .docker
        .run(&["cp", "cpm:/scratch/t.txt", &arg(out.path())])
        .code(1);
    assert_eq!(
        gone.stderr.trim_end(),
        "Error response from daemon: Could not find the file /scratch/t.txt in container cpm"
    );
    let refused = cp_in(&env, &hello, "cpm", "/ro").code(1);
    assert_eq!(
        refused.stderr.trim_end(),
        "Error response from daemon: mounted volume is marked read-only"
    );
    // The whole filesystem, copied at once, carries the mounts' contents.
    let whole = out.path().join("whole");
    env.docker.run(&["cp", "cpm:/.", &arg(&whole)]).ok();
    assert_eq!(
        std::fs::read_to_string(whole.join("data/v.txt")).unwrap(),
        "in-volume\n"
    );
    assert_eq!(
        std::fs::read_to_string(whole.join("bind/from-bind.txt")).unwrap(),
        "bound\n"
    );
    assert!(whole.join("bin/busybox").is_file());
    let ro_files: Vec<_> = std::fs::read_dir(ro.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(ro_files, ["keep.txt"], "the read-only source is unchanged");

    // A read-only root filesystem still takes copies into its volumes.
    env.docker
        .run(&[
            "create",
            "--name",
            "cpro",
            "--read-only",
            "-v",
            "cpvol:/data",
            &image,
            "true",
        ])
        .ok();
    std::fs::remove_file(volume.join("hello.txt")).unwrap();
    cp_in(&env, &hello, "cpro", "/data").ok();
    assert!(volume.join("hello.txt").is_file());
    let refused = cp_in(&env, &hello, "cpro", "/tmp").code(1);
    assert_eq!(
        refused.stderr.trim_end(),
        "Error response from daemon: container rootfs is marked read-only"
    );
    env.docker.run(&["rm", "-f", "cpm", "cpro"]).ok();
    env.docker.run(&["volume", "rm", "cpvol"]).ok();
    assert_no_copy_mounts(&env);
}
