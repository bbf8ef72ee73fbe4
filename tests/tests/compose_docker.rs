//! Acceptance: Docker Compose against servind, unmodified. Debian's
//! `docker-compose` (1.29, on docker-py) brings up a two-service app on
//! its own network: one service reaches the other by its service name, one
//! port is published on the host's loopback, and `down` takes everything
//! away. Needs: docker-compose, docker (CLI), docker-registry, skopeo,
//! busybox; root (bridges, veths, nftables).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, http_get, Env};
use servin_testkit::{require_tools, Fixture, LeakCheck};

/// The app: `api` serves a page; `web` fetches it from `http://api:8080/`
/// (the embedded DNS) and serves what it got on its published port.
fn compose_file(image: &str, port: u16) -> String {
    format!(
        r#"version: "3.8"
services:
  api:
    image: {image}
    command: ["sh", "-c", "mkdir -p /www && echo from-api > /www/index.html && exec busybox httpd -f -p 8080 -h /www"]
  web:
    image: {image}
    command: ["sh", "-c", "mkdir -p /www && until wget -qO /www/index.html http://api:8080/; do sleep 0.2; done; exec busybox httpd -f -p 80 -h /www"]
    ports:
      - "127.0.0.1:{port}:80"
    depends_on: [api]
"#
    )
}

fn compose(host: &str, file: &std::path::Path, args: &[&str]) -> std::process::Output {
    // `timeout`: a hang guard, not a speed check.
    let out = Command::new("timeout")
        .arg("300")
        .arg("docker-compose")
        .args(["-p", "servintest", "-f"])
        .arg(file)
        .args(args)
        .env("DOCKER_HOST", host)
        .output()
        .expect("docker-compose runs");
    assert!(
        out.status.success(),
        "docker-compose {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_two_service_app_finds_its_services_by_name_and_publishes_a_port() {
    require_tools!(
        "docker-compose",
        "docker",
        "docker-registry",
        "skopeo",
        "busybox",
        "nft"
    );
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root && servin_testkit::skip(module_path!(), "needs root (bridges, nftables)") {
        return;
    }
    let env = Env::start();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let image = env.publish(&Fixture::busybox().unwrap(), "busybox:latest");
    env.docker.run(&["pull", "-q", &image]).ok();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    let port = free_port();
    std::fs::write(&file, compose_file(&image, port)).unwrap();
    let host = env.daemon.host();

    compose(&host, &file, &["up", "-d"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let page = loop {
        match http_get(port) {
            Some(p) if !p.is_empty() => break p,
            _ if Instant::now() > deadline => panic!("web never answered on {port}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    assert_eq!(page, "from-api\n", "web's copy of api's page");

    let names = env
        .docker
        .run(&[
            "ps",
            "--filter",
            "label=com.docker.compose.project=servintest",
            "--format",
            "{{.Names}} {{.Ports}}",
        ])
        .ok();
    let mut rows: Vec<String> = names
        .out()
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            "servintest_api_1".to_string(),
            format!("servintest_web_1 127.0.0.1:{port}->80/tcp")
        ],
        "{names}"
    );
    let ps = compose(&host, &file, &["ps"]);
    assert!(
        String::from_utf8_lossy(&ps.stdout).contains("Up"),
        "{}",
        String::from_utf8_lossy(&ps.stdout)
    );

    compose(&host, &file, &["down", "-t", "1"]);
    let left = env.docker.run(&["ps", "-aq"]).ok();
    assert_eq!(left.out(), "", "containers left after down");
    let nets = env
        .docker
        .run(&["network", "ls", "--format", "{{.Name}}"])
        .ok();
    assert!(
        !nets.out().lines().any(|n| n == "servintest_default"),
        "{nets}"
    );
    assert!(http_get(port).is_none(), "port {port} still answers");
    drop(env);
    leaks.assert_clean();
}
