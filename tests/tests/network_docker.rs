//! Acceptance: container networking through the stock docker CLI — the
//! default bridge, user networks with DNS by name, published ports on the
//! host's loopback, `container:` mode, and a daemon crash.
//! Needs: docker (CLI), docker-registry, skopeo, busybox; root (netns,
//! bridges, veths, nftables). Each daemon has its own bridge prefix, veth
//! prefix, nft table and subnet (servin_testkit::TestNetwork); nothing is
//! sent anywhere but to loopback and the test's own containers.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{
    env_with_busybox, free_port, http_get, http_get_at, run_udp_echo, udp_ask_until_answered,
    udp_ask_until_answered_at, Env,
};
use servin_testkit::resolver::FakeResolver;
use servin_testkit::{require_tools, LeakCheck};

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Skips (or fails under SERVIN_REQUIRE_VM=1) without root or tools.
macro_rules! needs {
    ($name:expr) => {
        require_tools!(
            "docker",
            "docker-registry",
            "skopeo",
            "busybox",
            "ip",
            "nft"
        );
        if !is_root() && servin_testkit::skip($name, "needs root (netns, bridges, nftables)") {
            return;
        }
    };
}

/// A /24 under 10.208.0.0/13 that no host route covers yet.
fn free_subnet(k: u8) -> String {
    let routes = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["-4", "route", "show", "table", "all"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    let seed = std::process::id() as usize;
    for i in 0..256 {
        let b = (seed + i * 7 + usize::from(k) * 31) % 256;
        let prefix = format!("10.{}.{b}.", 208 + k % 8);
        if !routes.contains(&prefix) {
            return format!("{prefix}0/24");
        }
    }
    panic!("no free test subnet");
}

/// The daemon's veths still present, and netns pins under its dir.
fn network_leftovers(env: &Env) -> Vec<String> {
    let net = env.daemon.network().expect("test network names");
    let mut left: Vec<String> = net
        .links()
        .into_iter()
        .filter(|l| l.starts_with(&net.veth_prefix))
        .collect();
    let dir = env.daemon.dir().display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    left.extend(
        mounts
            .lines()
            .filter(|l| l.contains(&dir) && l.contains(" nsfs "))
            .map(str::to_string),
    );
    left
}

/// The daemon's answer to a JSON POST (what the docker CLI would check
/// before sending).
fn post_json(env: &Env, path: &str, body: &str) -> servin_testkit::http::Response {
    let req = servin_testkit::http::Request {
        method: "POST",
        path,
        headers: vec![("Content-Type", "application/json".into())],
        body: body.as_bytes(),
    };
    env.daemon.request(&req).unwrap()
}

/// `nft -a`'s handle of our table: a new one each time it is rewritten.
fn table_handle(table: &str) -> String {
    let out = std::process::Command::new("nft")
        .args(["-a", "list", "table", "ip", table])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    match first.split_once("# handle ") {
        Some((_, h)) => h.trim().to_string(),
        None => panic!("no handle in nft's listing of {table}: {text}"),
    }
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const HTTPD: &str = "mkdir -p /www && { echo -n 'hello from '; hostname; } > /www/index.html && exec busybox httpd -f -p 80 -h /www";

#[test]
fn default_bridge_gives_an_address_a_route_and_nat() {
    needs!("default_bridge_gives_an_address_a_route_and_nat");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let net = env.daemon.network().unwrap().clone();
    let prefix = net.subnet.trim_end_matches("0/24").to_string();

    let ls = env
        .docker
        .run(&[
            "network",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}}",
        ])
        .ok();
    let mut rows: Vec<&str> = ls.stdout.lines().collect();
    rows.sort();
    assert_eq!(
        rows,
        ["bridge bridge local", "host host local", "none null local"]
    );
    let bridge = env.docker.run(&["network", "inspect", "bridge"]).ok();
    let v: serde_json::Value = serde_json::from_str(&bridge.stdout).unwrap();
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], net.subnet);

    // A container without published ports leaves the host's rules as
    // they are: the table is not rewritten (a rewrite gives it a new
    // handle), which spares an nft process at start and at removal.
    let handle_before = table_handle(&net.table);
    let out = env
        .docker
        .run(&[
            "run", "--rm", "--hostname", "box1", &image, "sh", "-c",
            "busybox ip -4 addr show eth0; busybox ip route; cat /etc/hosts; cat /etc/resolv.conf; hostname",
        ])
        .ok();
    let text = out.stdout;
    assert!(text.contains(&format!("inet {prefix}2/24")), "{text}");
    assert!(
        text.contains(&format!("default via {prefix}1 dev eth0")),
        "{text}"
    );
    assert!(text.contains(&format!("{prefix}2\tbox1")), "{text}");
    assert!(text.trim_end().ends_with("box1"), "{text}");
    // The host's resolvers, less loopback ones (as Docker does).
    let host_servers: Vec<String> = std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .filter(|s| !s.trim().starts_with("127.") && s.trim() != "::1")
        .map(|s| format!("nameserver {}", s.trim()))
        .collect();
    for s in &host_servers {
        assert!(text.contains(s.as_str()), "{s} missing in {text}");
    }

    assert_eq!(table_handle(&net.table), handle_before);

    // --mac-address: the container's eth0 takes it; a multicast one is
    // refused with what is wrong.
    let mac = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--mac-address",
            "02:42:ac:11:00:99",
            &image,
            "cat",
            "/sys/class/net/eth0/address",
        ])
        .ok();
    assert_eq!(mac.out(), "02:42:ac:11:00:99");
    env.docker
        .run(&[
            "run",
            "--rm",
            "--mac-address",
            "01:00:5e:00:00:01",
            &image,
            "true",
        ])
        .fails_with("01:00:5e:00:00:01 is a multicast address");

    // Outbound NAT for the default bridge's subnet, in our own table.
    let table = String::from_utf8_lossy(
        &std::process::Command::new("nft")
            .args(["list", "table", "ip", &net.table])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(table.contains("masquerade"), "{table}");
    assert!(table.contains(&net.subnet), "{table}");

    // --dns, --add-host (and host-gateway), --network none.
    let out = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--dns",
            "10.9.9.9",
            "--add-host",
            "db.test:10.1.2.3",
            "--add-host",
            "gw.test:host-gateway",
            &image,
            "sh",
            "-c",
            "cat /etc/resolv.conf /etc/hosts",
        ])
        .ok();
    assert!(
        out.stdout.contains("nameserver 10.9.9.9\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("10.1.2.3\tdb.test\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("{prefix}1\tgw.test\n")),
        "{}",
        out.stdout
    );
    let none = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "none",
            &image,
            "busybox",
            "ip",
            "-o",
            "link",
        ])
        .ok();
    assert_eq!(none.stdout.lines().count(), 1, "{}", none.stdout);
    assert!(none.stdout.contains("lo:"), "{}", none.stdout);

    // Each container gets the next address; the address is given back.
    let a = env
        .docker
        .run(&["run", "-d", &image, "sleep", "600"])
        .ok()
        .out()
        .to_string();
    let ip = env
        .docker
        .run(&["inspect", "-f", "{{.NetworkSettings.IPAddress}} {{.NetworkSettings.Networks.bridge.IPAddress}} {{.HostConfig.NetworkMode}}", &a])
        .ok();
    assert_eq!(ip.out(), format!("{prefix}2 {prefix}2 bridge"));
    // Containers on the default bridge reach each other by address.
    let ping = env
        .docker
        .run(&[
            "run",
            "--rm",
            &image,
            "busybox",
            "ping",
            "-c1",
            "-W5",
            &format!("{prefix}2"),
        ])
        .ok();
    assert!(
        ping.stdout.contains("1 packets received"),
        "{}",
        ping.stdout
    );
    // --network host: the host's own network namespace.
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let seen = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "host",
            &image,
            "readlink",
            "/proc/self/ns/net",
        ])
        .ok();
    assert_eq!(seen.out(), host_ns.display().to_string());
    assert!(
        network_leftovers(&env).iter().any(|l| l.contains(" nsfs ")),
        "a running container has its netns pinned"
    );
    env.docker.run(&["rm", "-f", &a]).ok();
    assert_eq!(network_leftovers(&env), Vec::<String>::new());

    // Errors as Docker words them; nothing is made.
    let bad = env
        .docker
        .run(&["run", "--rm", "--network", "nosuchnet", &image, "true"])
        .fails();
    assert!(
        bad.stderr.contains("network nosuchnet not found"),
        "{}",
        bad.stderr
    );
    env.docker
        .run(&["run", "--rm", "--ip", "10.99.0.5", &image, "true"])
        .fails_with("user specified IP address is supported on user defined networks only");
    assert_eq!(env.docker.run(&["ps", "-aq"]).ok().out(), "");
    drop(env);
    leaks.assert_clean();
}

#[test]
fn published_ports_answer_on_the_hosts_loopback() {
    needs!("published_ports_answer_on_the_hosts_loopback");
    require_tools!("rustc");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let (p_any, p_loop, p_udp) = (free_port(), free_port(), free_port());

    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "web",
            "--hostname",
            "web",
            "-p",
            &format!("{p_any}:80"),
            "-p",
            &format!("127.0.0.1:{p_loop}:80"),
            "-p",
            "80",
            &image,
            "sh",
            "-c",
            HTTPD,
        ])
        .ok();
    let body = wait_for("httpd on the published port", || http_get(p_any));
    assert_eq!(body, "hello from web\n");
    assert_eq!(http_get(p_loop).as_deref(), Some("hello from web\n"));

    let ports = env.docker.run(&["port", "web"]).ok();
    let random: u16 = ports
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("80/tcp -> 0.0.0.0:"))
        .filter_map(|p| p.parse().ok())
        .find(|p| *p != p_any)
        .unwrap_or_else(|| panic!("no random port in {}", ports.stdout));
    assert!(
        ports
            .stdout
            .contains(&format!("80/tcp -> 127.0.0.1:{p_loop}")),
        "{}",
        ports.stdout
    );
    assert_eq!(http_get(random).as_deref(), Some("hello from web\n"));
    // A port on every address answers on IPv6 too, as Docker's does
    // (nothing listens on [::] for one bound to 127.0.0.1).
    assert!(
        ports.stdout.contains(&format!("80/tcp -> [::]:{p_any}")),
        "{}",
        ports.stdout
    );
    let v6 = std::net::Ipv6Addr::LOCALHOST.into();
    assert_eq!(http_get_at(v6, p_any).as_deref(), Some("hello from web\n"));
    assert_eq!(http_get_at(v6, p_loop), None);
    let ps = env.docker.run(&["ps", "--format", "{{.Ports}}"]).ok();
    assert!(
        ps.stdout.contains(&format!("0.0.0.0:{p_any}->80/tcp"))
            && ps.stdout.contains(&format!("[::]:{p_any}->80/tcp"))
            && !ps.stdout.contains(&format!("[::]:{p_loop}")),
        "{}",
        ps.stdout
    );

    // UDP: busybox has no UDP server, so a static echo server built here
    // for musl runs from a mounted folder.
    let echo_dir = tempfile::tempdir().unwrap();
    let publish = format!("{p_udp}:53/udp");
    run_udp_echo(&env.docker, echo_dir.path(), "udp", &image, &publish);
    let answer = udp_ask_until_answered(p_udp, b"over-udp", Duration::from_secs(60));
    assert_eq!(answer, "echo:over-udp");
    let ports = env.docker.run(&["port", "udp"]).ok();
    assert_eq!(
        ports.out(),
        format!("53/udp -> 0.0.0.0:{p_udp}\n53/udp -> [::]:{p_udp}")
    );
    let answer = udp_ask_until_answered_at(
        std::net::Ipv6Addr::LOCALHOST.into(),
        p_udp,
        b"over-udp6",
        Duration::from_secs(60),
    );
    assert_eq!(answer, "echo:over-udp6");

    // -P with an exposed port: a random host port.
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "all",
            "--hostname",
            "all",
            "--expose",
            "80",
            "-P",
            &image,
            "sh",
            "-c",
            HTTPD,
        ])
        .ok();
    let port = env.docker.run(&["port", "all", "80"]).ok();
    let p: u16 = port
        .out()
        .lines()
        .find_map(|l| l.strip_prefix("0.0.0.0:"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{}", port.stdout));
    let body = wait_for("httpd behind -P", || http_get(p));
    assert_eq!(body, "hello from all\n");

    // A taken host port: Docker's error, the container stays Created and
    // nothing of its network remains.
    let taken = env
        .docker
        .run(&[
            "run",
            "-d",
            "--name",
            "clash",
            "-p",
            &format!("{p_any}:80"),
            &image,
            "sleep",
            "600",
        ])
        .fails();
    assert!(
        taken.stderr.contains(&format!(
            "Bind for 0.0.0.0:{p_any} failed: port is already allocated"
        )),
        "{}",
        taken.stderr
    );
    let outside = TcpListener::bind("0.0.0.0:0").unwrap();
    let p_out = outside.local_addr().unwrap().port();
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "clash2",
            "-p",
            &format!("{p_out}:80"),
            &image,
            "sleep",
            "600",
        ])
        .fails_with("port is already allocated");
    let status = env
        .docker
        .run(&[
            "ps",
            "-a",
            "--filter",
            "name=clash",
            "--format",
            "{{.Names}} {{.Status}}",
        ])
        .ok();
    let mut rows: Vec<&str> = status.stdout.lines().collect();
    rows.sort();
    assert_eq!(rows, ["clash Created", "clash2 Created"]);
    let veths = network_leftovers(&env)
        .iter()
        .filter(|l| !l.contains(" nsfs "))
        .count();
    assert_eq!(veths, 3, "only web, udp and all have a veth");
    assert_eq!(http_get(p_any).as_deref(), Some("hello from web\n"));

    env.docker
        .run(&["rm", "-f", "web", "udp", "all", "clash", "clash2"])
        .ok();
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
    // The host ports are free again.
    TcpListener::bind(("0.0.0.0", p_any)).expect("host port released");
    drop(env);
    leaks.assert_clean();
}

#[test]
fn user_networks_resolve_names_and_aliases() {
    needs!("user_networks_resolve_names_and_aliases");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let (front, back) = (free_subnet(0), free_subnet(1));
    let front_prefix = front.trim_end_matches("0/24").to_string();
    let id = env
        .docker
        .run(&[
            "network", "create", "--subnet", &front, "--label", "team=a", "front",
        ])
        .ok()
        .out()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    env.docker
        // Internal: a name it does not know is answered there, not
        // forwarded to the host's resolvers (no test query leaves the host).
        .run(&["network", "create", "--internal", "--subnet", &back, "back"])
        .ok();
    env.docker
        .run(&["network", "create", "front"])
        .fails_with("network with name front already exists");
    let ls = env
        .docker
        .run(&[
            "network",
            "ls",
            "--filter",
            "label=team=a",
            "--format",
            "{{.Name}}",
        ])
        .ok();
    assert_eq!(ls.out(), "front");

    let db_ip = format!("{front_prefix}50");
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "db",
            "--hostname",
            "db",
            "--network",
            "front",
            "--network-alias",
            "database",
            "--ip",
            &db_ip,
            &image,
            "sh",
            "-c",
            HTTPD,
        ])
        .ok();
    let inspect = env
        .docker
        .run(&["inspect", "-f", "{{.NetworkSettings.Networks.front.IPAddress}} {{.NetworkSettings.Networks.front.Aliases}}", "db"])
        .ok();
    assert_eq!(inspect.out(), format!("{db_ip} [database]"));

    let out = env
        .docker
        .run(&[
            "run", "--rm", "--network", "front", &image, "sh", "-c",
            "cat /etc/resolv.conf; busybox nslookup db; busybox nslookup database; busybox ping -c1 -W5 database >/dev/null && echo PING-OK; busybox wget -q -O- http://db/",
        ])
        .ok();
    let text = out.stdout;
    assert!(text.starts_with("nameserver 127.0.0.11\n"), "{text}");
    assert_eq!(
        text.matches(&format!("Address: {db_ip}")).count(),
        2,
        "{text}"
    );
    assert!(text.contains("PING-OK"), "{text}");
    assert!(text.contains("hello from db"), "{text}");

    // network inspect lists the container; a network in use stays.
    let ni = env.docker.run(&["network", "inspect", "front"]).ok();
    let v: serde_json::Value = serde_json::from_str(&ni.stdout).unwrap();
    let members: Vec<&str> = v[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|c| c["Name"].as_str())
        .collect();
    assert_eq!(members, ["db"]);
    env.docker
        .run(&["network", "rm", "front"])
        .fails_with("has active endpoints");

    // connect / disconnect a running container.
    env.docker
        .run(&["network", "connect", "--alias", "store", "back", "db"])
        .ok();
    let addrs = env
        .docker
        .run(&["exec", "db", "busybox", "ip", "-o", "-4", "addr"])
        .ok();
    assert!(addrs.stdout.contains("eth1"), "{}", addrs.stdout);
    let seen = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "back",
            &image,
            "busybox",
            "nslookup",
            "store",
        ])
        .ok();
    assert!(
        seen.stdout
            .contains(&back.trim_end_matches("0/24").to_string()),
        "{}",
        seen.stdout
    );
    env.docker
        .run(&["network", "disconnect", "back", "db"])
        .ok();
    // The default bridge has no names, so no aliases either.
    env.docker
        .run(&["network", "connect", "--alias", "x", "bridge", "db"])
        .fails_with(
            "network-scoped alias is supported only for containers in user defined networks",
        );
    // A created container keeps what connect gave it for its start.
    env.docker
        .run(&[
            "create",
            "--name",
            "later",
            "--network",
            "front",
            &image,
            "sleep",
            "600",
        ])
        .ok();
    env.docker
        .run(&["network", "connect", "back", "later"])
        .ok();
    env.docker.run(&["start", "later"]).ok();
    let nets = env
        .docker
        .run(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}",
            "later",
        ])
        .ok();
    let back_prefix = back.trim_end_matches("0/24").to_string();
    assert!(
        nets.stdout.contains(&format!("front={front_prefix}")),
        "{}",
        nets.stdout
    );
    assert!(
        nets.stdout.contains(&format!("back={back_prefix}")),
        "{}",
        nets.stdout
    );
    env.docker.run(&["rm", "-f", "later"]).ok();
    let addrs = env
        .docker
        .run(&["exec", "db", "busybox", "ip", "-o", "-4", "addr"])
        .ok();
    assert!(!addrs.stdout.contains("eth1"), "{}", addrs.stdout);
    let gone = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "back",
            &image,
            "busybox",
            "nslookup",
            "store",
        ])
        .fails();
    assert!(!gone.stdout.contains("Address: 10."), "{}", gone.stdout);

    // container: mode shares db's network namespace; runc joins it too.
    let shared = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "container:db",
            &image,
            "busybox",
            "wget",
            "-q",
            "-O-",
            "http://127.0.0.1/",
        ])
        .ok();
    assert_eq!(shared.stdout, "hello from db\n");
    if servin_testkit::which("runc").is_some() {
        let runc = env
            .docker
            .run(&[
                "run",
                "--rm",
                "--runtime",
                "runc",
                "--network",
                "front",
                &image,
                "busybox",
                "wget",
                "-q",
                "-O-",
                "http://database/",
            ])
            .ok();
        assert_eq!(runc.stdout, "hello from db\n");
    }

    env.docker.run(&["rm", "-f", "db"]).ok();
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
    env.docker.run(&["network", "rm", "back"]).ok();
    let pruned = env.docker.run(&["network", "prune", "-f"]).ok();
    assert!(pruned.stdout.contains("front"), "{}", pruned.stdout);
    let ls = env
        .docker
        .run(&["network", "ls", "--format", "{{.Name}}"])
        .ok();
    let mut names: Vec<&str> = ls.stdout.lines().collect();
    names.sort();
    assert_eq!(names, ["bridge", "host", "none"]);
    let net = env.daemon.network().unwrap().clone();
    let bridges: Vec<String> = net.links();
    assert_eq!(bridges, [format!("{}0", net.bridge_prefix)]);
    drop(env);
    leaks.assert_clean();
}

#[test]
fn a_daemon_crash_keeps_running_containers_networks() {
    needs!("a_daemon_crash_keeps_running_containers_networks");
    let (mut env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let subnet = free_subnet(2);
    env.docker
        .run(&["network", "create", "--subnet", &subnet, "app"])
        .ok();
    let port = free_port();
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "web",
            "--hostname",
            "web",
            "--network",
            "app",
            "-p",
            &format!("{port}:80"),
            &image,
            "sh",
            "-c",
            HTTPD,
        ])
        .ok();
    wait_for("httpd", || http_get(port));
    let gate = tempfile::tempdir().unwrap();
    let short = env
        .docker
        .run(&[
            "run",
            "-d",
            "--name",
            "short",
            "--network",
            "app",
            "-v",
            &format!("{}:/gate", gate.path().display()),
            &image,
            "sh",
            "-c",
            "while [ ! -e /gate/go ]; do sleep 0.1; done",
        ])
        .ok()
        .out()
        .to_string();
    let ip_of = |env: &Env, name: &str| {
        env.docker
            .run(&[
                "inspect",
                "-f",
                "{{.NetworkSettings.Networks.app.IPAddress}}",
                name,
            ])
            .ok()
            .out()
            .to_string()
    };
    let web_ip = ip_of(&env, "web");
    let pid: u32 = env
        .docker
        .run(&["inspect", "-f", "{{.State.Pid}}", &short])
        .ok()
        .out()
        .parse()
        .unwrap();
    let veths_before = network_leftovers(&env)
        .iter()
        .filter(|l| !l.contains(" nsfs "))
        .count();
    assert_eq!(veths_before, 2);

    env.daemon.kill9();
    std::fs::write(gate.path().join("go"), "").unwrap();
    wait_for("the short container to exit", || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    // The port keeps answering while the daemon is down.
    assert_eq!(http_get(port).as_deref(), Some("hello from web\n"));
    env.daemon.restart().unwrap();

    assert_eq!(ip_of(&env, "web"), web_ip);
    assert_eq!(http_get(port).as_deref(), Some("hello from web\n"));
    let ports = env.docker.run(&["port", "web", "80"]).ok();
    assert_eq!(ports.out(), format!("0.0.0.0:{port}\n[::]:{port}"));
    // The IPv6 side is served again by the new daemon.
    assert_eq!(
        http_get_at(std::net::Ipv6Addr::LOCALHOST.into(), port).as_deref(),
        Some("hello from web\n")
    );
    let st = env
        .docker
        .run(&["inspect", "-f", "{{.State.Status}}", "short"])
        .ok();
    assert_eq!(st.out(), "exited");
    let veths = network_leftovers(&env)
        .iter()
        .filter(|l| !l.contains(" nsfs "))
        .count();
    assert_eq!(veths, 1, "the exited container's veth is gone");
    let looked = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "app",
            &image,
            "sh",
            "-c",
            "busybox nslookup web; busybox wget -q -O- http://web/",
        ])
        .ok();
    assert!(
        looked.stdout.contains(&format!("Address: {web_ip}")),
        "{}",
        looked.stdout
    );
    assert!(
        looked.stdout.contains("hello from web"),
        "{}",
        looked.stdout
    );
    let ni = env
        .docker
        .run(&["network", "inspect", "-f", "{{len .Containers}}", "app"])
        .ok();
    assert_eq!(ni.out(), "1");

    env.docker.run(&["rm", "-f", "web", "short"]).ok();
    env.docker.run(&["network", "rm", "app"]).ok();
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
    drop(env);
    leaks.assert_clean();
}

/// `--link`, as Docker 20.10 has it (checked there): on the default bridge
/// an `/etc/hosts` line and the `ALIAS_…` variables, and a linked container
/// that must run; on a user network a name only the linking container
/// resolves.
#[test]
fn links_give_hosts_variables_and_private_names() {
    needs!("links_give_hosts_variables_and_private_names");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "db",
            "--hostname",
            "dbhost",
            "-e",
            "SECRET=s3",
            "--expose",
            "5432",
            "--expose",
            "7000-7001/udp",
            &image,
            "sleep",
            "300",
        ])
        .ok();
    let db_ip = env
        .docker
        .run(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "db"])
        .ok()
        .out()
        .to_string();
    assert!(!db_ip.is_empty());

    let out = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--name",
            "web",
            "-e",
            "DATABASE_ENV_SECRET=mine",
            "--link",
            "db:database",
            &image,
            "sh",
            "-c",
            "cat /etc/hosts; env",
        ])
        .ok();
    let text = out.stdout;
    assert!(
        text.contains(&format!("{db_ip}\tdatabase dbhost db\n")),
        "{text}"
    );
    for v in [
        format!("DATABASE_PORT=tcp://{db_ip}:5432"),
        format!("DATABASE_PORT_5432_TCP=tcp://{db_ip}:5432"),
        format!("DATABASE_PORT_5432_TCP_ADDR={db_ip}"),
        "DATABASE_PORT_5432_TCP_PORT=5432".to_string(),
        "DATABASE_PORT_5432_TCP_PROTO=tcp".to_string(),
        format!("DATABASE_PORT_7000_UDP_START=udp://{db_ip}:7000"),
        "DATABASE_PORT_7000_UDP_PORT_END=7001".to_string(),
        format!("DATABASE_PORT_7001_UDP=udp://{db_ip}:7001"),
        "DATABASE_NAME=/web/database".to_string(),
        // The container's own variable wins over the link's.
        "DATABASE_ENV_SECRET=mine".to_string(),
    ] {
        assert!(text.lines().any(|l| l == v), "{v} not in {text}");
    }
    assert!(!text.contains("DATABASE_ENV_PATH"), "{text}");
    assert!(!text.contains("DATABASE_ENV_SECRET=s3"), "{text}");
    // Without an alias the name is the alias: no repeated name.
    let plain = env
        .docker
        .run(&["run", "--rm", "--link", "db", &image, "cat", "/etc/hosts"])
        .ok();
    assert!(
        plain.stdout.contains(&format!("{db_ip}\tdb dbhost\n")),
        "{}",
        plain.stdout
    );

    env.docker
        .run(&[
            "create",
            "--name",
            "later",
            "--link",
            "db:database",
            &image,
            "true",
        ])
        .ok();
    let links = env
        .docker
        .run(&["inspect", "-f", "{{json .HostConfig.Links}}", "later"])
        .ok();
    assert_eq!(links.out(), r#"["/db:/later/database"]"#);

    // Bad links: nothing is made or started.
    env.docker
        .run(&["run", "--rm", "--link", "nosuch:x", &image, "true"])
        .fails_with("could not get container for nosuch: No such container: nosuch");
    env.docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "host",
            "--link",
            "db",
            &image,
            "true",
        ])
        .fails_with("conflicting options: host type networking can't be used with links");
    env.docker
        .run(&["create", "--name", "idle", &image, "true"])
        .ok();
    let idle = env
        .docker
        .run(&["run", "--name", "w4", "--link", "idle:i", &image, "true"])
        .fails();
    assert_eq!(idle.code, 125);
    assert!(
        idle.stderr
            .contains("Cannot link to a non running container: /idle AS /w4/i"),
        "{}",
        idle.stderr
    );
    let state = env
        .docker
        .run(&["inspect", "-f", "{{.State.Status}}", "w4"])
        .ok();
    assert_eq!(state.out(), "created");

    // A user network: the alias resolves for the linking container only.
    // (Internal, so that the other container's miss is not forwarded.)
    let subnet = free_subnet(3);
    env.docker
        .run(&[
            "network",
            "create",
            "--internal",
            "--subnet",
            &subnet,
            "lnk",
        ])
        .ok();
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "ndb",
            "--network",
            "lnk",
            &image,
            "sleep",
            "300",
        ])
        .ok();
    let ndb_ip = env
        .docker
        .run(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.lnk.IPAddress}}",
            "ndb",
        ])
        .ok()
        .out()
        .to_string();
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "nweb",
            "--network",
            "lnk",
            "--link",
            "ndb:dbx",
            &image,
            "sleep",
            "300",
        ])
        .ok();
    let looked = env
        .docker
        .run(&[
            "exec",
            "nweb",
            "sh",
            "-c",
            &format!("busybox nslookup dbx; env; cat /etc/hosts; busybox nslookup {ndb_ip}"),
        ])
        .ok();
    // A container's address has its reverse name, NAME.NETWORK, as Docker's.
    assert!(looked.stdout.contains("ndb.lnk"), "{}", looked.stdout);
    assert!(
        looked.stdout.contains(&format!("Address: {ndb_ip}")),
        "{}",
        looked.stdout
    );
    assert!(!looked.stdout.contains("DBX_"), "{}", looked.stdout);
    assert!(
        !looked.stdout.contains(&format!("{ndb_ip}\tdbx")),
        "{}",
        looked.stdout
    );
    let inspect = env
        .docker
        .run(&[
            "inspect",
            "-f",
            "{{json .HostConfig.Links}} {{json .NetworkSettings.Networks.lnk.Links}}",
            "nweb",
        ])
        .ok();
    assert_eq!(inspect.out(), r#"null ["ndb:dbx"]"#);
    // On a user network the CLI gives --mac-address to the endpoint.
    let mac = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "lnk",
            "--mac-address",
            "02:00:00:00:00:42",
            &image,
            "cat",
            "/sys/class/net/eth0/address",
        ])
        .ok();
    assert_eq!(mac.out(), "02:00:00:00:00:42");
    let other = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "lnk",
            &image,
            "busybox",
            "nslookup",
            "dbx",
        ])
        .fails();
    assert!(!other.stdout.contains(&ndb_ip), "{}", other.stdout);

    env.docker
        .run(&["rm", "-f", "db", "later", "idle", "w4", "ndb", "nweb"])
        .ok();
    env.docker.run(&["network", "rm", "lnk"]).ok();
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
    drop(env);
    leaks.assert_clean();
}

/// On a user network, names the network does not know go to the
/// container's own `--dns` servers, as Docker's embedded DNS sends them
/// (before, ours went to the host's resolvers whatever `--dns` said).
#[test]
fn a_containers_own_dns_servers_answer_what_its_network_does_not_know() {
    needs!("a_containers_own_dns_servers_answer_what_its_network_does_not_know");
    let answer = std::net::Ipv4Addr::new(198, 51, 100, 9);
    // A loopback address of its own, port 53: what `--dns` can name.
    let ip = std::net::Ipv4Addr::new(127, 0, 0, 100 + (std::process::id() % 100) as u8);
    let resolver = match FakeResolver::start((ip, 53).into(), answer) {
        Ok(r) => r,
        Err(e) => {
            let _ = servin_testkit::skip(
                "a_containers_own_dns_servers_answer_what_its_network_does_not_know",
                &format!("cannot run a resolver on a loopback address's port 53: {e}"),
            );
            return;
        }
    };
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let subnet = free_subnet(4);
    env.docker
        .run(&["network", "create", "--subnet", &subnet, "own"])
        .ok();
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "peer",
            "--network",
            "own",
            &image,
            "sleep",
            "300",
        ])
        .ok();
    let dns = resolver.addr.ip().to_string();
    let out = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "own",
            "--dns",
            &dns,
            &image,
            "sh",
            "-c",
            "cat /etc/resolv.conf; busybox nslookup outside.test; busybox nslookup peer",
        ])
        .ok();
    let text = out.stdout;
    assert!(text.starts_with("nameserver 127.0.0.11\n"), "{text}");
    assert!(!text.contains(&format!("nameserver {dns}")), "{text}");
    assert!(text.contains(&format!("Address: {answer}")), "{text}");
    let peer_ip = env
        .docker
        .run(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.own.IPAddress}}",
            "peer",
        ])
        .ok()
        .out()
        .to_string();
    assert!(text.contains(&format!("Address: {peer_ip}")), "{text}");

    env.docker.run(&["rm", "-f", "peer"]).ok();
    env.docker.run(&["network", "rm", "own"]).ok();
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
    drop(env);
    drop(resolver);
    leaks.assert_clean();
}

/// `--sysctl` sets the container's own namespaces' values (both runtimes);
/// what would reach the host's is refused before anything is made.
#[test]
fn sysctls_set_the_containers_own_namespaces() {
    needs!("sysctls_set_the_containers_own_namespaces");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let host_somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap();
    let runc = servin_testkit::missing_tools(&["runc"]).is_empty();
    let mut runtimes = vec!["builtin"];
    if runc {
        runtimes.push("runc");
    } else {
        eprintln!("sysctls_set_the_containers_own_namespaces: no runc, builtin runtime only");
    }
    for runtime in runtimes {
        let mut args = vec!["run", "--rm"];
        if runtime == "runc" {
            args.extend(["--runtime", "runc"]);
        }
        args.extend([
            "--sysctl",
            "net.core.somaxconn=1234",
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=1024",
            "--sysctl",
            "kernel.shmmax=1000000",
            &image,
            "cat",
            "/proc/sys/net/core/somaxconn",
            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
            "/proc/sys/kernel/shmmax",
        ]);
        let out = env.docker.run(&args).ok();
        assert_eq!(out.stdout, "1234\n1024\n1000000\n", "{runtime}");
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap(),
        host_somaxconn,
        "the host's value stays"
    );

    env.docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "host",
            "--sysctl",
            "net.core.somaxconn=1",
            &image,
            "true",
        ])
        .fails_with("sysctl \"net.core.somaxconn\" not allowed in host network namespace");
    // Docker's CLI refuses what is not namespaced; the API does too.
    env.docker
        .run(&["run", "--rm", "--sysctl", "vm.swappiness=1", &image, "true"])
        .fails_with("sysctl 'vm.swappiness=1' is not allowed");
    let body = format!(
        r#"{{"Image":"{image}","Cmd":["true"],"HostConfig":{{"Sysctls":{{"vm.swappiness":"1"}}}}}}"#
    );
    let resp = post_json(&env, "/containers/create", &body);
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(
        resp.text()
            .contains("\\\"vm.swappiness\\\" is not in a separate kernel namespace"),
        "{}",
        resp.text()
    );
    let ps = env.docker.run(&["ps", "-aq"]).ok();
    assert_eq!(ps.out(), "", "nothing was made");
    drop(env);
    leaks.assert_clean();
}

/// `network create --ip-range --aux-address`: containers get addresses
/// from the range, never a reserved one; `--ip` may be anywhere in the
/// subnet; inspect shows both; a range outside the subnet is refused.
#[test]
fn ip_ranges_and_aux_addresses_shape_what_containers_get() {
    needs!("ip_ranges_and_aux_addresses_shape_what_containers_get");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let subnet = free_subnet(5);
    let prefix = subnet.trim_end_matches("0/24").to_string();
    let range = format!("{prefix}128/25");
    let reserved = format!("{prefix}129");
    env.docker
        .run(&[
            "network",
            "create",
            "--internal",
            "--subnet",
            &subnet,
            "--ip-range",
            &range,
            "--aux-address",
            &format!("router={reserved}"),
            "ranged",
        ])
        .ok();
    let ipam = env
        .docker
        .run(&[
            "network",
            "inspect",
            "-f",
            "{{json .IPAM.Config}}",
            "ranged",
        ])
        .ok();
    let v: serde_json::Value = serde_json::from_str(ipam.out()).unwrap();
    assert_eq!(v[0]["IPRange"], range);
    assert_eq!(v[0]["AuxiliaryAddresses"]["router"], reserved);

    let ip = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--network", "ranged"];
        all.extend_from_slice(args);
        all.extend([
            &image[..],
            "busybox",
            "ip",
            "-4",
            "-o",
            "addr",
            "show",
            "eth0",
        ]);
        env.docker.run(&all).ok().stdout
    };
    assert!(
        ip(&[]).contains(&format!("inet {prefix}130/24")),
        "{}",
        ip(&[])
    );
    let low = format!("{prefix}5");
    assert!(ip(&["--ip", &low]).contains(&format!("inet {low}/24")));
    env.docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "ranged",
            "--ip",
            &reserved,
            &image,
            "true",
        ])
        .fails_with("Address already in use");

    env.docker.run(&["network", "rm", "ranged"]).ok();
    // Docker's CLI checks the range itself; the API refuses it too.
    let body = format!(
        r#"{{"Name":"bad","IPAM":{{"Config":[{{"Subnet":"{subnet}","IPRange":"10.254.0.0/25"}}]}}}}"#
    );
    let resp = post_json(&env, "/networks/create", &body);
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(
        resp.text().contains(&format!(
            "invalid ip range 10.254.0.0/25: it is not inside the subnet {subnet}"
        )),
        "{}",
        resp.text()
    );
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
    drop(env);
    leaks.assert_clean();
}

/// What cannot go with `--network host` or `container:NAME` is refused at
/// create with Docker's messages, and nothing is made.
#[test]
fn options_that_conflict_with_the_network_mode_are_refused() {
    needs!("options_that_conflict_with_the_network_mode_are_refused");
    let (env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    env.docker
        .run(&["run", "-d", "--name", "owner", &image, "sleep", "300"])
        .ok();
    let joined = "container:owner";
    for (mode, extra, message) in [
        (
            joined,
            &["--hostname", "h"][..],
            "hostname and the network mode",
        ),
        (joined, &["--dns", "10.9.9.9"], "dns and the network mode"),
        (
            joined,
            &["--add-host", "a:10.1.1.1"],
            "custom host-to-IP mapping and the network mode",
        ),
        (
            joined,
            &["-p", "8080:80"],
            "port publishing and the container type network mode",
        ),
        (
            joined,
            &["--expose", "80"],
            "port exposing and the container type network mode",
        ),
        (
            joined,
            &["--link", "owner"],
            "container type network can't be used with links",
        ),
        (
            "host",
            &["--mac-address", "02:00:00:00:00:01"],
            "mac-address and the network mode",
        ),
    ] {
        let mut args = vec!["create", "--network", mode];
        args.extend_from_slice(extra);
        args.extend([&image[..], "true"]);
        let out = env.docker.run(&args).fails();
        assert!(
            out.stderr
                .contains(&format!("conflicting options: {message}")),
            "{args:?}: {}",
            out.stderr
        );
    }
    let all = env.docker.run(&["ps", "-aq"]).ok();
    assert_eq!(
        all.stdout.lines().count(),
        1,
        "only the owner: {}",
        all.stdout
    );
    // What does go with them still does.
    let shared = env
        .docker
        .run(&["run", "--rm", "--network", joined, &image, "hostname"])
        .ok();
    let owner_host = env
        .docker
        .run(&["inspect", "-f", "{{.Config.Hostname}}", "owner"])
        .ok();
    assert_eq!(shared.out(), owner_host.out());
    env.docker.run(&["rm", "-f", "owner"]).ok();
    drop(env);
    leaks.assert_clean();
}

/// The bridge driver's options (`network create -o`): the MTU of the
/// containers' interfaces, no traffic between containers without ICC (the
/// gateway still answers), no outbound NAT without masquerading, and the
/// default host address of published ports. A bad value is refused.
#[test]
fn bridge_driver_options_are_honoured() {
    needs!("bridge_driver_options_are_honoured");
    let (mut env, image) = env_with_busybox();
    let leaks = LeakCheck::new(env.daemon.dir()).without_fds();
    let net = env.daemon.network().unwrap().clone();
    let subnet = free_subnet(6);
    let prefix = subnet.trim_end_matches("0/24").to_string();
    env.docker
        .run(&[
            "network",
            "create",
            "--subnet",
            &subnet,
            "-o",
            "com.docker.network.driver.mtu=1400",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
            "-o",
            "com.docker.network.bridge.enable_ip_masquerade=false",
            "-o",
            "com.docker.network.bridge.host_binding_ipv4=127.0.0.1",
            "opts",
        ])
        .ok();
    let port = free_port();
    env.docker
        .run(&[
            "run",
            "-d",
            "--name",
            "first",
            "--network",
            "opts",
            "-p",
            &format!("{port}:80"),
            &image,
            "sleep",
            "300",
        ])
        .ok();
    let first_ip = env
        .docker
        .run(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.opts.IPAddress}}",
            "first",
        ])
        .ok()
        .out()
        .to_string();
    let out = env
        .docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "opts",
            &image,
            "sh",
            "-c",
            &format!(
                "cat /sys/class/net/eth0/mtu; \
                 busybox ping -c1 -W2 {prefix}1 >/dev/null && echo GATEWAY-OK; \
                 busybox ping -c1 -W2 {first_ip} >/dev/null && echo PEER-OK; true"
            ),
        ])
        .ok();
    assert!(out.stdout.starts_with("1400\n"), "{}", out.stdout);
    assert!(out.stdout.contains("GATEWAY-OK"), "{}", out.stdout);
    assert!(!out.stdout.contains("PEER-OK"), "{}", out.stdout);
    let ports = env.docker.run(&["port", "first", "80"]).ok();
    assert_eq!(ports.out(), format!("127.0.0.1:{port}"));
    let table = String::from_utf8_lossy(
        &std::process::Command::new("nft")
            .args(["list", "table", "ip", &net.table])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(table.contains(&net.subnet), "{table}");
    assert!(!table.contains(&subnet), "no NAT for {subnet}: {table}");

    let bad = env
        .docker
        .run(&[
            "network",
            "create",
            "-o",
            "com.docker.network.driver.mtu=big",
            "badopt",
        ])
        .fails();
    assert!(
        bad.stderr
            .contains("invalid value \"big\" for option com.docker.network.driver.mtu"),
        "{}",
        bad.stderr
    );
    env.docker.run(&["rm", "-f", "first"]).ok();
    env.docker.run(&["network", "rm", "opts"]).ok();

    // The daemon's --mtu and --icc set the default bridge's, as dockerd's.
    env.daemon
        .restart_with(&["--mtu", "1400", "--icc=false"])
        .unwrap();
    let options = env
        .docker
        .run(&["network", "inspect", "-f", "{{json .Options}}", "bridge"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(options.out()).unwrap();
    assert_eq!(v["com.docker.network.driver.mtu"], "1400");
    assert_eq!(v["com.docker.network.bridge.enable_icc"], "false");
    env.docker
        .run(&["run", "-d", "--name", "second", &image, "sleep", "300"])
        .ok();
    let second_ip = env
        .docker
        .run(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "second"])
        .ok()
        .out()
        .to_string();
    let out = env
        .docker
        .run(&[
            "run",
            "--rm",
            &image,
            "sh",
            "-c",
            &format!(
                "cat /sys/class/net/eth0/mtu; \
                 busybox ping -c1 -W2 {second_ip} >/dev/null && echo PEER-OK; true"
            ),
        ])
        .ok();
    assert_eq!(out.stdout, "1400\n", "{}", out.stdout);
    env.docker.run(&["rm", "-f", "second"]).ok();

    // A bad value stops the daemon at its start, with what is wrong
    // (rather than serving loopback-only containers).
    let stderr = servin_testkit::refused_start(
        &env.daemon.dir().join("bad-mtu-root"),
        &env.daemon.dir().join("bad.sock"),
        &["--mtu", "10"],
    );
    assert!(
        stderr.contains("invalid value \"10\" for option com.docker.network.driver.mtu"),
        "{stderr}"
    );
    assert_eq!(network_leftovers(&env), Vec::<String>::new());
    drop(env);
    leaks.assert_clean();
}
