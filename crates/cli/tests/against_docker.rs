//! Compares `servin`'s image commands with the stock `docker` CLI against
//! the same daemon (see `support` for which daemon); it imports a one-file
//! image tagged `servin-cli-test/cmp:*` there and removes it afterwards.

mod support;

use support::Daemon;

const REPO: &str = "servin-cli-test/cmp";

/// Removes the test's tags even when an assertion fails.
struct Cleanup<'a>(&'a Daemon, Vec<String>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let mut args = vec!["rmi", "-f"];
        args.extend(self.1.iter().map(String::as_str));
        let _ = self.0.docker(&args);
    }
}

/// A tar with one small file: enough for `docker import`.
fn tiny_rootfs() -> Vec<u8> {
    let mut header = [0u8; 512];
    let data = b"hello\n";
    header[..5].copy_from_slice(b"hello");
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    let mut block = [0u8; 512];
    block[..data.len()].copy_from_slice(data);
    tar.extend_from_slice(&block);
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

#[test]
fn image_commands_match_docker() {
    let Some(daemon) = Daemon::from_env("image_commands_match_docker") else {
        return;
    };
    let tag1 = format!("{REPO}:1");
    let tag2 = format!("{REPO}:2");
    let _cleanup = Cleanup(&daemon, vec![tag1.clone(), tag2.clone()]);
    let out = daemon.run(
        "docker",
        &["import", "-m", "servin test", "-", &tag1],
        Some(&tiny_rootfs()),
    );
    assert!(
        out.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(daemon.docker(&["tag", &tag1, &tag2]).status.success());

    let checks: &[&[&str]] = &[
        &["images", REPO],
        &["images", "-q", REPO],
        &["images", "--digests", REPO],
        &[
            "images",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
            REPO,
        ],
        &[
            "images",
            "--format",
            "table {{.Repository}}\t{{.Tag}}\t{{.Size}}",
            REPO,
        ],
        &[
            "images",
            "--format",
            "{{json .Containers}} {{.Size}} {{.VirtualSize}}",
            REPO,
        ],
        &["images", "--format", "{{.Nope}}", REPO],
        &["images", "--format", "{{.ID", REPO],
        &["images", "--bogus"],
        &["images", "-f", "bogus"],
        &["images", "a", "b"],
        &["image", "inspect", &tag1],
        &["image", "inspect", "--format", "json", &tag1],
        &[
            "image",
            "inspect",
            "-f",
            "{{.Comment}} {{.RepoTags}} {{json .Config.Env}} {{.Size}}",
            &tag1,
        ],
        &["image", "inspect", "-f", "{{.Nope}}", &tag1],
        &["image", "inspect", &tag1, "servin-cli-test/nosuch"],
        &["inspect", "servin-cli-test/nosuch"],
        &["rmi", "servin-cli-test/nosuch"],
        &["rmi", "-f", "servin-cli-test/nosuch"],
        &["tag", "servin-cli-test/nosuch", "x"],
        &["tag", &tag1, "Bad:x"],
        &["pull"],
        &["save"],
        &["load", "extra"],
        &[
            "info",
            "--format",
            "{{.ServerVersion}} {{json .Plugins.Volume}}",
        ],
        &["version", "--format", "{{.Server.Version}}"],
    ];
    for args in checks {
        if args[0] == "images" {
            // CREATED says how long ago, to the second.
            daemon.assert_same_read_only(args);
        } else {
            daemon.assert_same(args);
        }
    }

    let saved_d = daemon.docker(&["save", &tag1]);
    let saved_s = daemon.servin(&["save", &tag1]);
    assert!(saved_s.status.success());
    assert_eq!(
        saved_s.stdout.len(),
        saved_d.stdout.len(),
        "save output size"
    );

    let removed = daemon.servin(&["rmi", &tag2]);
    assert_eq!(
        String::from_utf8_lossy(&removed.stdout),
        format!("Untagged: {tag2}\n")
    );
    let removed = daemon.servin(&["rmi", &tag1]);
    assert!(removed.status.success());
    let text = String::from_utf8_lossy(&removed.stdout);
    assert!(
        text.starts_with(&format!("Untagged: {tag1}\nDeleted: sha256:")),
        "{text}"
    );
}
