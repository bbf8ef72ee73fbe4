//! The host/guest contract (`docs/vm-guest-contract.md`) as code: what the
//! host writes on the kernel command line, which vsock ports the guest
//! serves, what init's control port understands, and the console lines the
//! host may look for. Both sides use these items rather than literals.

use std::fmt;
use std::path::{Path, PathBuf};

/// The guest's vsock context ID.
pub const GUEST_CID: u32 = 3;
/// Default vsock port of the guest engine (Docker API).
pub const ENGINE_PORT: u32 = 2375;
/// Default vsock port of init's control service.
pub const CONTROL_PORT: u32 = 2376;
/// Vsock port of init's relay: a stream to a guest-side target whose
/// host-to-guest half is framed, so the host's half-close survives the
/// vsock device (see [`RelayTarget`]).
pub const RELAY_PORT: u32 = 2377;
/// Largest payload of one relay frame.
pub const RELAY_FRAME_MAX: usize = 64 * 1024;

/// File names inside a guest image directory.
pub const KERNEL_FILE: &str = "vmlinuz";
pub const INITRAMFS_FILE: &str = "initramfs.img";
pub const VERSION_FILE: &str = "VERSION";

/// The data disk as the guest sees it, its label and where it is mounted.
pub const DATA_DEVICE: &str = "/dev/vda";
pub const DATA_LABEL: &str = "servin-data";
pub const DATA_MOUNT: &str = "/var/lib/servin";
/// The guest engine's unix socket (for `vm shell` users inside the guest).
pub const GUEST_ENGINE_SOCKET: &str = "/run/servin/servin.sock";

/// User-mode networking addresses.
pub const GUEST_ADDR: [u8; 4] = [10, 0, 2, 15];
pub const GUEST_PREFIX_LEN: u8 = 24;
pub const GATEWAY_ADDR: [u8; 4] = [10, 0, 2, 2];
pub const DNS_ADDR: [u8; 4] = [10, 0, 2, 3];
/// The address that reaches the host's loopback (`--host-gateway`).
pub const HOST_GATEWAY: &str = "10.0.2.2";

/// Printed on the console once the guest engine answers `/_ping`.
pub const ENGINE_READY_LINE: &str = "servin-init: engine ready";
/// Prefix of every line init prints on the console.
pub const CONSOLE_PREFIX: &str = "servin-init: ";

/// The kernel command line every guest gets (before Servin's keys).
pub const BASE_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 quiet";
/// Added under TCG, or the kernel hangs calibrating its clock.
pub const TCG_CMDLINE: &str = "no_timer_check tsc_early_khz=2000000 tsc=reliable";

/// The console line init prints before powering off when the data disk
/// carries a filesystem that is not Servin's.
pub fn foreign_disk_message(found_label: &str) -> String {
    format!("servin-init: error: the data disk is not Servin's (found {found_label})")
}

/// The virtiofs tag of the `n`th shared folder.
pub fn share_tag(n: usize) -> String {
    format!("servin{n}")
}

/// One shared host folder: a virtiofs tag mounted at the same path in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub tag: String,
    pub path: PathBuf,
}

/// Servin's keys on the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootArgs {
    /// Host's Unix time at launch, in seconds.
    pub time: Option<u64>,
    pub shares: Vec<Share>,
    pub engine_port: u32,
    pub control_port: u32,
}

impl Default for BootArgs {
    fn default() -> Self {
        BootArgs {
            time: None,
            shares: Vec::new(),
            engine_port: ENGINE_PORT,
            control_port: CONTROL_PORT,
        }
    }
}

/// A Servin key on the kernel command line that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    #[error("Invalid kernel command line value {key}={value}")]
    InvalidValue { key: String, value: String },
    #[error("Invalid share path on the kernel command line: {0}")]
    InvalidSharePath(String),
    #[error("Share path must be absolute and UTF-8: {0}")]
    ShareNotAbsolute(String),
}

impl BootArgs {
    /// Servin's keys, space separated, for the host to append to
    /// [`BASE_CMDLINE`] (and [`TCG_CMDLINE`]).
    pub fn to_cmdline(&self) -> Result<String, CmdlineError> {
        let mut parts = Vec::new();
        if let Some(t) = self.time {
            parts.push(format!("servin.time={t}"));
        }
        for s in &self.shares {
            let path = s
                .path
                .to_str()
                .filter(|p| p.starts_with('/'))
                .ok_or_else(|| CmdlineError::ShareNotAbsolute(s.path.display().to_string()))?;
            if s.tag.is_empty() || s.tag.contains([':', ' ']) {
                return Err(CmdlineError::InvalidValue {
                    key: "servin.share".into(),
                    value: s.tag.clone(),
                });
            }
            parts.push(format!("servin.share={}:{}", s.tag, hex::encode(path)));
        }
        parts.push(format!("servin.engine_port={}", self.engine_port));
        parts.push(format!("servin.control_port={}", self.control_port));
        Ok(parts.join(" "))
    }

    /// Reads Servin's keys from a whole kernel command line
    /// (`/proc/cmdline`); other words are ignored, absent keys keep their
    /// defaults.
    pub fn parse(cmdline: &str) -> Result<BootArgs, CmdlineError> {
        let mut args = BootArgs::default();
        for word in cmdline.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let invalid = || CmdlineError::InvalidValue {
                key: key.to_string(),
                value: value.to_string(),
            };
            match key {
                "servin.time" => args.time = Some(value.parse().map_err(|_| invalid())?),
                "servin.engine_port" => args.engine_port = value.parse().map_err(|_| invalid())?,
                "servin.control_port" => {
                    args.control_port = value.parse().map_err(|_| invalid())?
                }
                "servin.share" => {
                    let (tag, hexpath) = value.split_once(':').ok_or_else(invalid)?;
                    if tag.is_empty() {
                        return Err(invalid());
                    }
                    let bytes = hex::decode(hexpath)
                        .map_err(|_| CmdlineError::InvalidSharePath(value.to_string()))?;
                    let path = String::from_utf8(bytes)
                        .map_err(|_| CmdlineError::InvalidSharePath(value.to_string()))?;
                    if !Path::new(&path).is_absolute() {
                        return Err(CmdlineError::ShareNotAbsolute(path));
                    }
                    args.shares.push(Share {
                        tag: tag.to_string(),
                        path: PathBuf::from(path),
                    });
                }
                _ => {}
            }
        }
        Ok(args)
    }
}

/// The full kernel command line the host passes with `-append`.
pub fn kernel_cmdline(args: &BootArgs, tcg: bool) -> Result<String, CmdlineError> {
    let mut s = String::from(BASE_CMDLINE);
    if tcg {
        s.push(' ');
        s.push_str(TCG_CMDLINE);
    }
    s.push(' ');
    s.push_str(&args.to_cmdline()?);
    Ok(s)
}

/// One request on the control port (one line per connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRequest {
    Ping,
    Shell {
        rows: u16,
        cols: u16,
    },
    /// The exit status of the shell with this pid (the number after `OK`
    /// in the reply to `SHELL`), once it has ended.
    ShellExit {
        pid: i32,
    },
    Poweroff,
    Stats,
}

impl ControlRequest {
    /// Parses a request line (with or without its `\n`). The error is the
    /// message init sends back after `ERR `.
    pub fn parse(line: &str) -> Result<ControlRequest, String> {
        let line = line.trim_end_matches(['\n', '\r']);
        let mut words = line.split(' ');
        let verb = words.next().unwrap_or("");
        let rest: Vec<&str> = words.collect();
        let no_args = |r: ControlRequest| {
            if rest.is_empty() {
                Ok(r)
            } else {
                Err(format!("{verb} takes no arguments"))
            }
        };
        match verb {
            "PING" => no_args(ControlRequest::Ping),
            "POWEROFF" => no_args(ControlRequest::Poweroff),
            "STATS" => no_args(ControlRequest::Stats),
            "SHELLEXIT" => match rest.as_slice() {
                [pid] => pid
                    .parse()
                    .map(|pid| ControlRequest::ShellExit { pid })
                    .map_err(|_| format!("invalid pid: {pid}")),
                _ => Err("usage: SHELLEXIT <pid>".to_string()),
            },
            "SHELL" => match rest.as_slice() {
                [rows, cols] => match (rows.parse(), cols.parse()) {
                    (Ok(rows), Ok(cols)) => Ok(ControlRequest::Shell { rows, cols }),
                    _ => Err(format!("invalid terminal size: {rows} {cols}")),
                },
                _ => Err("usage: SHELL <rows> <cols>".to_string()),
            },
            "" => Err("empty request".to_string()),
            other => Err(format!("unknown request: {other}")),
        }
    }
}

impl fmt::Display for ControlRequest {
    /// The request line, with its `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlRequest::Ping => writeln!(f, "PING"),
            ControlRequest::Shell { rows, cols } => writeln!(f, "SHELL {rows} {cols}"),
            ControlRequest::ShellExit { pid } => writeln!(f, "SHELLEXIT {pid}"),
            ControlRequest::Poweroff => writeln!(f, "POWEROFF"),
            ControlRequest::Stats => writeln!(f, "STATS"),
        }
    }
}

/// The reply line of the control port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlResponse {
    /// `OK` with what follows it (may be empty).
    Ok(String),
    Err(String),
}

impl ControlResponse {
    pub fn parse(line: &str) -> Result<ControlResponse, String> {
        let line = line.trim_end_matches(['\n', '\r']);
        if line == "OK" {
            Ok(ControlResponse::Ok(String::new()))
        } else if let Some(rest) = line.strip_prefix("OK ") {
            Ok(ControlResponse::Ok(rest.to_string()))
        } else if let Some(rest) = line.strip_prefix("ERR ") {
            Ok(ControlResponse::Err(rest.to_string()))
        } else {
            Err(format!("unexpected control reply: {line:?}"))
        }
    }
}

impl fmt::Display for ControlResponse {
    /// The reply line, with its `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlResponse::Ok(s) if s.is_empty() => writeln!(f, "OK"),
            ControlResponse::Ok(s) => writeln!(f, "OK {s}"),
            ControlResponse::Err(s) => writeln!(f, "ERR {s}"),
        }
    }
}

/// Where a relay connection goes, the first line the host sends on
/// [`RELAY_PORT`]: `ENGINE` (the guest engine's API socket) or
/// `TCP <ip>:<port>` (a container's published port) or `UDP <ip>:<port>`
/// (a published UDP port: then both directions are frames, one datagram
/// each, and the host ends the stream when the flow goes idle). Init
/// answers with a
/// [`ControlResponse`] line once it has connected (or failed to). After
/// that the guest's bytes come back as they are, and the host's go in
/// frames: a 4-byte big-endian length then that many bytes, with the
/// length 0 meaning "the host has no more to send" (init shuts down the
/// writing half of its connection to the target). The guest closes the
/// whole stream when the target has no more to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayTarget {
    Engine,
    Tcp(std::net::SocketAddr),
    Udp(std::net::SocketAddr),
}

impl RelayTarget {
    pub fn parse(line: &str) -> Result<RelayTarget, String> {
        let line = line.trim_end_matches(['\n', '\r']);
        match line.split_once(' ') {
            None if line == "ENGINE" => Ok(RelayTarget::Engine),
            Some(("TCP", addr)) => addr
                .parse()
                .map(RelayTarget::Tcp)
                .map_err(|_| format!("invalid address: {addr}")),
            Some(("UDP", addr)) => addr
                .parse()
                .map(RelayTarget::Udp)
                .map_err(|_| format!("invalid address: {addr}")),
            _ => Err(format!("unknown relay target: {line}")),
        }
    }
}

impl fmt::Display for RelayTarget {
    /// The request line, with its `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayTarget::Engine => writeln!(f, "ENGINE"),
            RelayTarget::Tcp(a) => writeln!(f, "TCP {a}"),
            RelayTarget::Udp(a) => writeln!(f, "UDP {a}"),
        }
    }
}

/// The header of a relay frame carrying `len` bytes (0: end of stream).
pub fn relay_frame_header(len: usize) -> [u8; 4] {
    (len as u32).to_be_bytes()
}

/// The JSON after `OK ` in the reply to `STATS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GuestStats {
    pub disk_size: u64,
    pub disk_used: u64,
    pub mem_total: u64,
    pub mem_available: u64,
}

/// The line a host writes to `vhost-device-vsock`'s unix socket to reach a
/// guest port; the device answers `OK <n>\n`.
pub fn vsock_connect_line(port: u32) -> String {
    format!("CONNECT {port}\n")
}

/// Whether a reply from `vhost-device-vsock` to [`vsock_connect_line`]
/// means the stream is now connected.
pub fn vsock_connect_ok(reply: &str) -> bool {
    reply
        .strip_prefix("OK ")
        .is_some_and(|n| n.trim_end().parse::<u32>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_targets_round_trip_and_junk_is_refused() {
        for t in [
            RelayTarget::Engine,
            RelayTarget::Tcp("172.17.0.2:80".parse().unwrap()),
            RelayTarget::Udp("172.17.0.2:53".parse().unwrap()),
        ] {
            assert_eq!(RelayTarget::parse(&t.to_string()), Ok(t));
        }
        assert!(RelayTarget::parse("TCP banana").is_err());
        assert!(RelayTarget::parse("UNIX /etc/shadow").is_err());
        assert_eq!(relay_frame_header(0), [0, 0, 0, 0]);
        assert_eq!(relay_frame_header(258), [0, 0, 1, 2]);
    }

    #[test]
    fn boot_args_round_trip_through_the_command_line() {
        let args = BootArgs {
            time: Some(1_700_000_000),
            shares: vec![
                Share {
                    tag: share_tag(0),
                    path: "/home/me/my project, v2".into(),
                },
                Share {
                    tag: share_tag(1),
                    path: "/tmp/é".into(),
                },
            ],
            engine_port: 5000,
            control_port: 5001,
        };
        let line = kernel_cmdline(&args, true).unwrap();
        assert!(line.starts_with("console=ttyS0 reboot=k panic=-1 quiet no_timer_check"));
        assert!(
            !line.contains("my project"),
            "paths are hex encoded: {line}"
        );
        assert_eq!(BootArgs::parse(&line).unwrap(), args);
    }

    #[test]
    fn defaults_when_keys_are_absent() {
        let args = BootArgs::parse("console=ttyS0 quiet").unwrap();
        assert_eq!(args, BootArgs::default());
        assert_eq!(args.engine_port, 2375);
        assert_eq!(args.control_port, 2376);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(BootArgs::parse("servin.time=soon").is_err());
        assert!(BootArgs::parse("servin.share=servin0:zz").is_err());
        assert!(BootArgs::parse("servin.share=servin0").is_err());
        let relative = hex::encode("relative/dir");
        assert!(BootArgs::parse(&format!("servin.share=servin0:{relative}")).is_err());
    }

    #[test]
    fn control_requests_parse_and_print() {
        for r in [
            ControlRequest::Ping,
            ControlRequest::Poweroff,
            ControlRequest::Stats,
            ControlRequest::Shell { rows: 24, cols: 80 },
            ControlRequest::ShellExit { pid: 190 },
        ] {
            assert_eq!(ControlRequest::parse(&r.to_string()), Ok(r));
        }
        assert_eq!(
            ControlRequest::parse("REBOOT\n"),
            Err("unknown request: REBOOT".to_string())
        );
        assert!(ControlRequest::parse("SHELL 24").is_err());
        assert!(ControlRequest::parse("SHELLEXIT me").is_err());
        assert!(ControlRequest::parse("PING now").is_err());
    }

    #[test]
    fn control_responses_parse_and_print() {
        let ok = ControlResponse::Ok("0.1.0".into());
        assert_eq!(ok.to_string(), "OK 0.1.0\n");
        assert_eq!(ControlResponse::parse("OK 0.1.0\n"), Ok(ok));
        assert_eq!(
            ControlResponse::parse("OK\n"),
            Ok(ControlResponse::Ok(String::new()))
        );
        assert_eq!(
            ControlResponse::parse("ERR no\n"),
            Ok(ControlResponse::Err("no".into()))
        );
        assert!(ControlResponse::parse("HELLO").is_err());
    }

    #[test]
    fn vsock_connect_protocol() {
        assert_eq!(vsock_connect_line(2375), "CONNECT 2375\n");
        assert!(vsock_connect_ok("OK 1073741824\n"));
        assert!(!vsock_connect_ok("ERR\n"));
    }

    #[test]
    fn foreign_disk_message_is_the_contracts() {
        assert_eq!(
            foreign_disk_message("backup"),
            "servin-init: error: the data disk is not Servin's (found backup)"
        );
    }
}
