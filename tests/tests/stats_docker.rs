//! Acceptance: `docker stats` and `GET /containers/{id}/stats` for a
//! container with a known number of processes and a memory limit.
//! Needs: docker (CLI), docker-registry, skopeo, busybox-static; root
//! (namespaces, cgroups, overlayfs).

mod common;

use common::Env;
use serde_json::Value;
use servin_testkit::http::Request;
use servin_testkit::{require_tools, Fixture};

/// A shell and two sleeps: three processes, under a 64 MiB limit.
fn three_processes(env: &Env, name: &str) {
    let fixture = Fixture::busybox().unwrap();
    let image = env.publish(&fixture, "busybox:latest");
    env.docker.run(&["pull", "-q", &image]).ok();
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            name,
            "--memory",
            "64m",
            &image,
            "sh",
            "-c",
            "sleep 1000 & sleep 1000 & touch /tmp/ready; wait",
        ])
        .ok();
    // Bounded wait until the shell has started both sleeps.
    let mut tries = 0;
    while env
        .docker
        .run(&["exec", name, "test", "-e", "/tmp/ready"])
        .code
        != 0
    {
        tries += 1;
        assert!(tries < 200, "the container never started its sleeps");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn docker_stats_shows_pids_and_the_memory_limit() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let env = Env::start();
    three_processes(&env, "st");
    let out = env
        .docker
        .run(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.MemUsage}} {{.PIDs}}",
            "st",
        ])
        .ok();
    let line = out.out();
    let fields: Vec<&str> = line.split_whitespace().collect();
    // "st 1.2MiB / 64MiB 3"
    assert_eq!(fields.len(), 5, "{line}");
    assert_eq!(
        (fields[0], fields[2], fields[3], fields[4]),
        ("st", "/", "64MiB", "3"),
        "{line}"
    );
    assert!(
        fields[1].ends_with("iB") && fields[1] != "0B",
        "memory in use: {line}"
    );
    env.docker.run(&["rm", "-f", "st"]).ok();
}

#[test]
fn the_stats_api_has_dockers_fields() {
    require_tools!("docker", "docker-registry", "skopeo", "busybox");
    let env = Env::start();
    three_processes(&env, "sta");
    let get = |path: &str| -> Value {
        let resp = env.daemon.request(&Request::get(path)).unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json().unwrap()
    };
    let first = get("/containers/sta/stats?stream=false");
    let second = get("/containers/sta/stats?stream=false");
    for v in [&first, &second] {
        assert_eq!(v["name"], "/sta");
        assert_eq!(v["id"].as_str().map(str::len), Some(64), "{v}");
        assert_eq!(v["memory_stats"]["limit"], 64 * 1024 * 1024, "{v}");
        assert!(v["memory_stats"]["usage"].as_u64().unwrap() > 0, "{v}");
        assert!(v["memory_stats"]["stats"].is_object(), "{v}");
        assert_eq!(v["pids_stats"]["current"], 3, "{v}");
        assert!(v["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap() > 0);
        assert!(v["cpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0);
        assert!(v["cpu_stats"]["online_cpus"].as_u64().unwrap() > 0);
        assert!(
            v["precpu_stats"]["cpu_usage"]["total_usage"].is_u64(),
            "{v}"
        );
        let read = v["read"].as_str().unwrap();
        assert!(
            read.len() >= 20 && read.as_bytes()[4] == b'-' && read.contains('T'),
            "an RFC 3339 time: {read}"
        );
        assert!(!read.starts_with("0001"), "a sample was taken: {read}");
        assert!(v["preread"].is_string(), "{v}");
    }
    // The second sample carries the first one's CPU figures.
    assert_eq!(second["precpu_stats"], first["cpu_stats"]);
    assert_eq!(second["preread"], first["read"]);
    env.docker.run(&["rm", "-f", "sta"]).ok();
}
