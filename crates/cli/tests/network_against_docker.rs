//! Compares `servin network …` with the stock `docker` CLI against the same
//! Docker Engine (see `support`): output, errors and exit statuses of
//! create, ls, inspect, rm, connect, disconnect and prune.
//!
//! Needs root, dockerd and containerd (or `SERVIN_TEST_DOCKER_HOST`). The
//! peer runs with `--bridge=none --iptables=false`, which still manages
//! user-defined bridge networks (a `br-<id>` device each, no firewall
//! rules). Every network, container and image made here carries a name
//! starting with `snt<pid>` and is removed at the end; the test then checks
//! that no such network or bridge device is left.

mod support;

use std::process::Output;

use support::{assert_outputs, text, Daemon};

const IMAGE: &str = "servin-cli-test/netbusybox:1";

/// This run's prefix for every name, so runs never collide.
fn prefix() -> String {
    format!("snt{}", std::process::id())
}

/// Removes what the test made even when an assertion fails, while the
/// peer still runs (a stopped dockerd leaves its bridges behind).
struct Cleanup<'a>(&'a Daemon);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let d = self.0;
        let p = prefix();
        let ids = text(
            &d.docker(&["ps", "-aq", "--filter", &format!("name={p}")])
                .stdout,
        );
        let mut args = vec!["rm", "-f"];
        args.extend(ids.split_whitespace());
        if args.len() > 2 {
            let _ = d.docker(&args);
        }
        // Twice: a configuration-only network goes once its users are gone.
        for _ in 0..2 {
            for id in ours(d) {
                let _ = d.docker(&["network", "rm", &id]);
            }
        }
        let _ = d.docker(&["rmi", "-f", IMAGE]);
    }
}

/// IDs of the networks this run made.
fn ours(d: &Daemon) -> Vec<String> {
    let out = d.docker(&[
        "network",
        "ls",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("name={}", prefix()),
    ]);
    text(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// `/bin/busybox` with `sh` and `sleep`, as a tar for `docker import`.
fn busybox_rootfs() -> Option<Vec<u8>> {
    let busybox = std::fs::read("/bin/busybox").ok()?;
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        b.append_data(&mut h, path, data).unwrap();
    };
    add("bin", tar::EntryType::Directory, 0o755, b"", None);
    add(
        "bin/busybox",
        tar::EntryType::Regular,
        0o755,
        &busybox,
        None,
    );
    for applet in ["sh", "sleep"] {
        add(
            &format!("bin/{applet}"),
            tar::EntryType::Symlink,
            0o777,
            b"",
            Some("busybox"),
        );
    }
    Some(b.into_inner().unwrap())
}

/// Runs `args` with docker, then with servin, each with its own values:
/// `{}` becomes `{base}-d` for docker and `{base}-s` for servin, and each
/// `(docker's, servin's)` pair in `per_tool` is swapped the same way.
/// Outputs must match once servin's values are put back into docker's.
fn assert_same_each(
    d: &Daemon,
    base: &str,
    args: &[&str],
    per_tool: &[(&str, &str)],
) -> (Output, Output) {
    let run = |docker: bool| {
        let name = format!("{base}-{}", if docker { "d" } else { "s" });
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                let mut a = a.replace("{}", &name);
                if !docker {
                    for (from, to) in per_tool {
                        a = a.replace(from, to);
                    }
                }
                a
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if docker {
            d.docker(&args)
        } else {
            d.servin(&args)
        }
    };
    let (dout, sout) = (run(true), run(false));
    let mut swaps = vec![(format!("{base}-d"), format!("{base}-s"))];
    swaps.extend(per_tool.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    let swaps: Vec<(&str, &str)> = swaps
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    if dout.status.success() && is_id_line(&text(&dout.stdout)) {
        // Each create prints its own new ID: compare the shape only.
        assert!(
            is_id_line(&text(&sout.stdout)),
            "servin {args:?} printed {:?} (stderr {:?})",
            text(&sout.stdout),
            text(&sout.stderr)
        );
        assert_eq!(sout.status.code(), Some(0), "exit status of {args:?}");
        assert_eq!(text(&sout.stderr), "", "stderr of {args:?}");
    } else {
        assert_outputs(args, &dout, &sout, &swaps);
    }
    (dout, sout)
}

fn is_id_line(s: &str) -> bool {
    s.len() == 65 && s.ends_with('\n') && s[..64].bytes().all(|b| b.is_ascii_hexdigit())
}

/// What `network inspect` shows of a network's settings, minus its name,
/// ID and creation time.
const SETTINGS: &str = "{{.Driver}} {{.Scope}} {{.EnableIPv6}} {{.Internal}} {{.Attachable}} {{.Ingress}} {{.ConfigOnly}} {{json .ConfigFrom}} {{json .IPAM}} {{json .Options}} {{json .Labels}}";

#[test]
fn network_commands_match_docker() {
    let Some(d) = Daemon::from_env("network_commands_match_docker") else {
        return;
    };
    let Some(rootfs) = busybox_rootfs() else {
        servin_testkit::skip("network_commands_match_docker", "no /bin/busybox");
        return;
    };
    let cleanup = Cleanup(&d);
    let out = d.run(
        "docker",
        &["import", "-c", "CMD [\"sh\"]", "-", IMAGE],
        Some(&rootfs),
    );
    assert!(out.status.success(), "docker import: {}", text(&out.stderr));

    create_checks(&d);
    list_checks(&d);
    inspect_checks(&d);
    connect_checks(&d);
    remove_checks(&d);
    prune_checks(&d);

    // Nothing of this run is left: no network, and no bridge device.
    let ids = ours(&d);
    let bridges: Vec<String> = ids.iter().map(|id| format!("br-{}", &id[..12])).collect();
    drop(cleanup);
    assert_eq!(ours(&d), Vec::<String>::new(), "networks left behind");
    for b in bridges {
        assert!(
            !std::path::Path::new("/sys/class/net").join(&b).exists(),
            "{b} left behind"
        );
    }
    let left = d.docker_ok(&["ps", "-aq", "--filter", &format!("name={}", prefix())]);
    assert_eq!(left, "", "containers left behind");
}

/// create: same flags, same settings on the daemon; same errors.
fn create_checks(d: &Daemon) {
    let p = prefix();
    let settings = |name: &str| d.docker_ok(&["network", "inspect", "-f", SETTINGS, name]);
    // Default IPAM picks a different free subnet for each: compare the rest.
    let base = format!("{p}-plain");
    assert_same_each(d, &base, &["network", "create", "{}"], &[]);
    let drop_ipam = |s: String| s.split(" {\"Driver\"").next().unwrap().to_string();
    assert_eq!(
        drop_ipam(settings(&format!("{base}-s"))),
        drop_ipam(settings(&format!("{base}-d")))
    );
    // Every flag the peer accepts for a local bridge.
    let base = format!("{p}-full");
    assert_same_each(
        d,
        &base,
        &[
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            "10.231.1.0/24",
            "--ip-range",
            "10.231.1.128/25",
            "--gateway",
            "10.231.1.254",
            "--aux-address",
            "reserved=10.231.1.200",
            "--internal",
            "--attachable",
            "--label",
            "com.example.team=net",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
            "--ipam-opt",
            "x=y",
            "{}",
        ],
        &[("10.231.1.", "10.231.2.")],
    );
    assert_eq!(
        settings(&format!("{base}-s")),
        settings(&format!("{base}-d")).replace("10.231.1.", "10.231.2.")
    );
    // IPv4 and IPv6 subnets, in `=` and CSV forms.
    let base = format!("{p}-two");
    assert_same_each(
        d,
        &base,
        &[
            "network",
            "create",
            "--ipv6",
            "--subnet=10.231.3.0/24,fd00:231:3::/64",
            "--gateway=10.231.3.1",
            "{}",
        ],
        &[("10.231.3.", "10.231.5."), ("fd00:231:3::", "fd00:231:5::")],
    );
    assert_eq!(
        settings(&format!("{base}-s")),
        settings(&format!("{base}-d"))
            .replace("10.231.3.", "10.231.5.")
            .replace("fd00:231:3::", "fd00:231:5::")
    );

    // A network built from a configuration-only one (one each: two
    // networks from one configuration would share its subnet).
    let base = format!("{p}-from");
    for (tool, net) in [("d", "10.231.11.0/24"), ("s", "10.231.12.0/24")] {
        d.docker_ok(&[
            "network",
            "create",
            "--config-only",
            "--subnet",
            net,
            &format!("{base}-{tool}-cfg"),
        ]);
    }
    assert_same_each(
        d,
        &base,
        &["network", "create", "--config-from", "{}-cfg", "{}"],
        &[],
    );
    assert_eq!(
        settings(&format!("{base}-s")),
        settings(&format!("{base}-d"))
            .replace("10.231.11.", "10.231.12.")
            .replace(&format!("{base}-d-cfg"), &format!("{base}-s-cfg"))
    );

    // Refused, before or by the daemon, in docker's words. (Not an unknown
    // driver: the daemon spends 15 s looking for a plugin, twice.)
    let taken = format!("{p}-full-d");
    for args in [
        &["network", "create"][..],
        &["network", "create", "a", "b"],
        &["network", "create", "--gateway", "10.0.0.1", "x"],
        &[
            "network",
            "create",
            "--subnet",
            "10.0.0.0/8",
            "--ip-range",
            "11.0.0.0/24",
            "x",
        ],
        &[
            "network",
            "create",
            "--subnet",
            "10.0.0.0/8",
            "--gateway",
            "11.0.0.1",
            "x",
        ],
        &[
            "network",
            "create",
            "--subnet",
            "10.0.0.0/8,10.1.0.0/16",
            "x",
        ],
        &[
            "network",
            "create",
            "--subnet",
            "bogus",
            "--gateway",
            "10.0.0.1",
            "x",
        ],
        &[
            "network",
            "create",
            "--subnet",
            "10.0.0.0/8",
            "--ip-range",
            "bogus",
            "x",
        ],
        &["network", "create", "--label", " =v", "x"],
        &["network", "create", "--internal=maybe", "x"],
        &["network", "create", "--bogus", "x"],
        &["network", "create", "--subnet", "bogus", "x"],
        &[
            "network",
            "create",
            "--config-from",
            "x",
            "--label",
            "a=b",
            "y",
        ],
        &[
            "network",
            "create",
            "--subnet",
            "10.231.7.0/24,10.231.8.0/24",
            "x",
        ],
        &["network", "create", "host"],
        &["network", "create", &taken],
    ] {
        d.assert_same(args);
    }
}

/// ls: the table, its formats and filters, on a fixed set of networks.
fn list_checks(d: &Daemon) {
    let p = prefix();
    let full = format!("{p}-full-d");
    let id = d.docker_ok(&["network", "inspect", "-f", "{{.Id}}", &full]);
    let short = &id[..5];
    // Docker joins several labels in Go's random map order: one each here.
    let labelled = format!("{p}-lab");
    d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        "10.231.10.0/24",
        "--label",
        "only",
        &labelled,
    ]);
    for args in [
        &["network", "ls"][..],
        &["network", "list"],
        &["network", "ls", "-q"],
        &["network", "ls", "--no-trunc"],
        &["network", "ls", "-q", "--no-trunc"],
        &["network", "ls", "--format", "json"],
        &["network", "ls", "--format", "raw"],
        &["network", "ls", "-q", "--format", "raw"],
        &["network", "ls", "-q", "--format", "table"],
        &[
            "network",
            "ls",
            "--format",
            "table {{.Name}}\t{{.IPv4}}\t{{.IPv6}}\t{{.Internal}}\t{{.CreatedAt}}",
        ],
        &["network", "ls", "--format", "{{.Name}}: {{.Labels}}"],
        &["network", "ls", "--format", "{{.Nope}}"],
        &["network", "ls", "--format", "{{"],
        &["network", "ls", "--filter", "label=com.example.team=net"],
        &["network", "ls", "--filter", "label=only"],
        &[
            "network",
            "ls",
            "-f",
            "driver=bridge",
            "-f",
            &format!("name={p}"),
        ],
        &["network", "ls", "-f", "driver=host"],
        &[
            "network",
            "ls",
            "-f",
            "type=custom",
            "-f",
            &format!("name={p}"),
        ],
        &["network", "ls", "-f", "type=builtin"],
        &[
            "network",
            "ls",
            "-f",
            "scope=local",
            "-f",
            &format!("name={p}-two"),
        ],
        &[
            "network",
            "ls",
            "-f",
            "dangling=true",
            "-f",
            &format!("name={p}"),
        ],
        &["network", "ls", "-f", &format!("id={short}")],
        &["network", "ls", "-f", "type=bogus"],
        &["network", "ls", "-f", "nosuch=filter"],
        &["network", "ls", "-f", "bogus"],
        &["network", "ls", "extra"],
        &["network", "ls", "--bogus"],
    ] {
        d.assert_same(args);
    }
}

/// inspect: the daemon's JSON, templates, several names and errors.
fn inspect_checks(d: &Daemon) {
    let p = prefix();
    let full = format!("{p}-full-d");
    let two = format!("{p}-two-s");
    for args in [
        &["network", "inspect", &full][..],
        &["network", "inspect", &full, &two, "host"],
        &["network", "inspect", "--format", "json", &full],
        &[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{json .IPAM.Config}} {{.Driver}}",
            &full,
            &two,
        ],
        &["network", "inspect", "-f", "{{json .Labels}}", &full],
        &["network", "inspect", "-f", "{{.Nope}}", &full],
        // Templates see docker's typed struct first, then the raw JSON.
        &[
            "network",
            "inspect",
            "-f",
            "{{.IPAM.Config}} {{.IPAM}}",
            &full,
            &two,
        ],
        &["network", "inspect", "-f", "{{.Created}} {{.ID}}", &full],
        &["network", "inspect", "-f", "{{.Id}}", &full],
        &["network", "inspect", "-f", "{{.ID}} {{.Id}}", &full],
        &["network", "inspect", "-f", "{{json .}}", &full, &two],
        &[
            "network",
            "inspect",
            "-f",
            "{{.ConfigFrom}} {{.Peers}} {{.Labels.nope}}",
            &full,
        ],
        &["network", "inspect", "-f", "{{.}}", &full],
        &["network", "inspect", "-v", &full],
        &["network", "inspect", "nosuchnet"],
        &["network", "inspect", &full, "nosuchnet", &two],
        &["network", "inspect", " "],
        &["network", "inspect"],
    ] {
        d.assert_same(args);
    }
}

/// connect and disconnect: the endpoint each tool asks for, and errors.
fn connect_checks(d: &Daemon) {
    let p = prefix();
    let first = format!("{p}-full-d");
    let second = format!("{p}-two-d");
    for tool in ["d", "s"] {
        d.docker_ok(&[
            "create",
            "--name",
            &format!("{p}-c-{tool}"),
            "--network",
            &first,
            IMAGE,
            "sleep",
            "1000",
        ]);
    }
    let base = format!("{p}-c");
    assert_same_each(
        d,
        &base,
        &[
            "network",
            "connect",
            "--alias",
            "web,www",
            "--alias",
            "api",
            "--ip",
            "10.231.3.10",
            "--link",
            "other:o",
            "--driver-opt",
            "k=v",
            &second,
            "{}",
        ],
        &[("10.231.3.10", "10.231.3.11")],
    );
    // The daemon adds the container's short ID to its aliases.
    let endpoint = |c: &str| {
        let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", c]);
        d.docker_ok(&[
            "inspect",
            "-f",
            &format!("{{{{with index .NetworkSettings.Networks \"{second}\"}}}}{{{{json .IPAMConfig}}}} {{{{json .Aliases}}}} {{{{json .Links}}}} {{{{json .DriverOpts}}}}{{{{end}}}}"),
            c,
        ])
        .replace(&id[..12], "ID")
    };
    let docker_side = endpoint(&format!("{base}-d"));
    assert!(docker_side.contains("10.231.3.10"), "{docker_side}");
    assert_eq!(
        endpoint(&format!("{base}-s")),
        docker_side.replace("10.231.3.10", "10.231.3.11")
    );
    // Errors name the container by its full ID.
    let ids: Vec<String> = ["d", "s"]
        .iter()
        .map(|t| {
            d.docker_ok(&["inspect", "-f", "{{.Id}}", &format!("{base}-{t}")])
                .trim()
                .to_string()
        })
        .collect();
    for args in [
        &["network", "connect", &second, "{}"][..],
        &["network", "connect", "nosuchnet", "{}"],
        &["network", "connect", &second, "nosuchcontainer"],
        &["network", "connect", "--link", "a:b:c", &second, "{}"],
        &["network", "connect", "--gw-priority", "high", &second, "{}"],
        &[
            "network",
            "connect",
            "--driver-opt",
            "novalue",
            &second,
            "{}",
        ],
        &["network", "connect", &second],
        &["network", "connect", " ", "{}"],
        &["network", "disconnect", &second, "{}"],
        &["network", "disconnect", &second, "{}"],
        &["network", "disconnect", "-f", &second, "{}"],
        &["network", "disconnect", "nosuchnet", "{}"],
        &["network", "disconnect", &first],
    ] {
        assert_same_each(d, &base, args, &[(&ids[0], &ids[1])]);
    }
}

/// rm: several names, unknown ones with and without -f, and a network in
/// use by a running container.
fn remove_checks(d: &Daemon) {
    let p = prefix();
    let base = format!("{p}-rm");
    for suffix in ["a", "b"] {
        assert_same_each(
            d,
            &base,
            &["network", "create", &format!("{{}}{suffix}")],
            &[],
        );
    }
    assert_same_each(d, &base, &["network", "rm", "{}a", "nosuchnet", "{}b"], &[]);
    let base = format!("{p}-rmf");
    assert_same_each(d, &base, &["network", "create", "{}"], &[]);
    assert_same_each(
        d,
        &base,
        &["network", "remove", "-f", "nosuchnet", "{}"],
        &[],
    );
    for args in [
        &["network", "rm"][..],
        &["network", "rm", " "],
        &["network", "rm", "host"],
    ] {
        d.assert_same(args);
    }
    // In use: the same error from both, and the network stays.
    let busy = format!("{p}-busy");
    d.docker_ok(&["network", "create", "--subnet", "10.231.9.0/24", &busy]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        &format!("{p}-runner"),
        "--network",
        &busy,
        IMAGE,
        "sleep",
        "1000",
    ]);
    d.assert_same(&["network", "rm", &busy]);
    d.assert_same(&["network", "inspect", "-f", "{{.Containers}}", &busy]);
    d.assert_same(&["network", "inspect", "-f", "{{json .Containers}}", &busy]);
    d.docker_ok(&["rm", "-f", &format!("{p}-runner")]);
    let out = d.servin(&["network", "rm", &busy]);
    assert_eq!(
        text(&out.stdout),
        format!("{busy}\n"),
        "{}",
        text(&out.stderr)
    );
}

/// prune: the prompt, declining, label filters and the report.
fn prune_checks(d: &Daemon) {
    let p = prefix();
    let base = format!("{p}-pr");
    assert_same_each(d, &base, &["network", "create", "--label", "{}", "{}"], &[]);
    // Declining (or no answer) removes nothing.
    d.assert_same_in(&["network", "prune"], Some(b"n\n"));
    d.assert_same_in(&["network", "prune"], None);
    assert_same_each(
        d,
        &base,
        &[
            "network",
            "ls",
            "--format",
            "{{.Name}}",
            "--filter",
            "label={}",
        ],
        &[],
    );
    // Only what the filter names goes; the report lists it by name.
    let (dout, _) = assert_same_each(
        d,
        &base,
        &["network", "prune", "-f", "--filter", "label={}"],
        &[],
    );
    assert_eq!(
        text(&dout.stdout),
        format!("Deleted Networks:\n{base}-d\n\n")
    );
    d.assert_same_in(
        &[
            "network",
            "prune",
            "--filter",
            &format!("label={p}-nothing"),
        ],
        Some(b"y\n"),
    );
    for args in [
        &["network", "prune", "-f", "--filter", "bogus"][..],
        &["network", "prune", "-f", "extra"],
    ] {
        d.assert_same(args);
    }
}
