//! Test harness for Servin's integration tests and benchmarks.
//!
//! Everything here is synchronous and talks to real, independent tools so a
//! test checks our code against something that is not our code:
//!
//! - [`Registry`]: Debian's `docker-registry` on a free loopback port.
//! - [`Fixture`] / [`ImageBuilder`]: OCI image layouts built from the static
//!   busybox (`/bin/busybox`), pushed with `skopeo` ([`push`], [`push_with`])
//!   or byte for byte over the registry API ([`push_raw`]).
//! - [`Daemon`]: our own `servind` with its own data root and socket.
//! - [`DockerPeer`]: Docker Engine 20.10 the same way, as the reference.
//! - [`docker`] / [`servin`]: the stock docker CLI and our CLI.
//! - [`LeakCheck`]: no process, mount or fd of a test left behind.
//!
//! A dev-only crate, so errors are `anyhow` with context rather than typed
//! library errors: a test only ever prints them.
//!
//! Tests that need external tools call [`require_tools!`], which skips the
//! test (with a message on stderr) when a tool is missing, or panics instead
//! when `SERVIN_REQUIRE_VM=1` says the machine must have everything.

mod cli;
mod daemon;
mod fixture;
pub mod http;
mod layer;
mod leak;
mod peer;
mod process;
mod push;
mod registry;
pub mod resolver;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

pub use cli::{docker, servin, Cli, Output};
pub use daemon::{
    refused_start, Daemon, DaemonOpts, TestNetwork, TEST_BRIDGE_PREFIX, TEST_NFT_PREFIX,
    TEST_VETH_PREFIX,
};
pub use fixture::{Fixture, FixtureImage, ImageBuilder, Platform, BUSYBOX_APPLETS, DEFAULT_PATH};
pub use layer::{Compression, Fill, LayerBlob, LayerSpec};
pub use leak::LeakCheck;
pub use peer::DockerPeer;
pub use push::{push, push_raw, push_with, Format};
pub use registry::Registry;

/// Environment variable that turns every skip into a failure.
pub const REQUIRE_ENV: &str = "SERVIN_REQUIRE_VM";

/// Environment variable naming the directory holding `servind` and `servin`.
pub const BIN_DIR_ENV: &str = "SERVIN_BIN_DIR";

/// Path of one of our own binaries (`servind`, `servin`).
///
/// A library cannot use `env!("CARGO_BIN_EXE_…")`, so the binary is looked
/// up in `$SERVIN_BIN_DIR` if set, else in each ancestor directory of the
/// running test executable (`target/debug/deps/foo-HASH` → `target/debug`).
/// Build it first, e.g. `cargo build -p servin-daemon -p servin-cli`.
pub fn bin_path(name: &str) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        let path = Path::new(&dir).join(name);
        if path.is_file() {
            return Ok(path);
        }
        bail!("{name} is not in {BIN_DIR_ENV}={}", path.display());
    }
    let exe = std::env::current_exe()?;
    for dir in exe.ancestors().skip(1) {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!(
        "Cannot find {name} in any directory above {}; build it (cargo build --workspace) or set {BIN_DIR_ENV}",
        exe.display()
    )
}

/// Finds an executable on `PATH` (or takes an absolute path as is).
pub fn which(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        let path = PathBuf::from(tool);
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Tools from `tools` that are not installed. `servind` and `servin` are
/// looked up with [`bin_path`], everything else on `PATH`.
pub fn missing_tools(tools: &[&str]) -> Vec<String> {
    tools
        .iter()
        .filter(|tool| match **tool {
            "servind" | "servin" => bin_path(tool).is_err(),
            _ => which(tool).is_none(),
        })
        .map(|tool| tool.to_string())
        .collect()
}

/// Decides whether `test` must be skipped for lack of `tools`: prints why on
/// stderr and returns true, or panics when `SERVIN_REQUIRE_VM=1`.
pub fn skip_unless_tools(test: &str, tools: &[&str]) -> bool {
    let missing = missing_tools(tools);
    if missing.is_empty() {
        return false;
    }
    skip(test, &format!("missing {}", missing.join(", ")))
}

/// Skips `test` for `reason`: prints it on stderr and returns true, or panics
/// when `SERVIN_REQUIRE_VM=1`.
pub fn skip(test: &str, reason: &str) -> bool {
    skip_or_panic(
        std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1"),
        test,
        reason,
    )
}

fn skip_or_panic(required: bool, test: &str, reason: &str) -> bool {
    if required {
        panic!("{test}: cannot run ({reason}) and {REQUIRE_ENV}=1 forbids skipping");
    }
    eprintln!("SKIP {test}: {reason}");
    true
}

/// Returns from the calling test (skipping it) unless every tool is present.
///
/// ```ignore
/// #[test]
/// fn pulls() {
///     servin_testkit::require_tools!("docker-registry", "skopeo", "servind");
///     // …
/// }
/// ```
#[macro_export]
macro_rules! require_tools {
    ($($tool:expr),+ $(,)?) => {
        if $crate::skip_unless_tools(module_path!(), &[$($tool),+]) {
            return;
        }
    };
}

/// How long helpers wait for a daemon or a command: `SERVIN_TEST_TIMEOUT`
/// seconds, default `default_secs`.
pub(crate) fn timeout(default_secs: u64) -> std::time::Duration {
    let secs = std::env::var("SERVIN_TEST_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_secs);
    std::time::Duration::from_secs(secs)
}

/// Creates a temp dir whose name says it is ours, under `/tmp` so socket
/// paths inside stay well below the 108-byte limit.
pub(crate) fn temp_dir(what: &str) -> Result<tempfile::TempDir> {
    use anyhow::Context;
    tempfile::Builder::new()
        .prefix(&format!("servin-{what}-"))
        .tempdir_in("/tmp")
        .with_context(|| format!("Cannot create a temp dir for {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_unless_required() {
        assert!(skip_or_panic(false, "t", "no tool"));
        let panicked = std::panic::catch_unwind(|| skip_or_panic(true, "t", "no tool"));
        assert!(panicked.is_err());
    }

    #[test]
    fn finds_tools() {
        assert!(which("sh").is_some());
        assert!(which("/bin/sh").is_some());
        assert_eq!(
            missing_tools(&["sh", "no-such-tool-xyz"]),
            ["no-such-tool-xyz"]
        );
    }
}
