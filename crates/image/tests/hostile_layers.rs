//! Hostile and ordinary layers through `unpack_layer`. Every refusal must name
//! the layer and the offending path, and nothing may ever land outside the
//! destination: each case unpacks into `dest` inside a temp dir whose sibling
//! `outside/canary` must come through untouched.
//!
//! The overlay-whiteout test needs root (it makes character devices and sets
//! `trusted.` xattrs); without root it says so on stderr and returns.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use servin_image::unpack::{unpack_layer, UnpackError, UnpackStats, WhiteoutMode};
use tar::{EntryType, Header};
use tempfile::TempDir;

const LAYER: &str = "sha256:0badc0de";
const CANARY: &str = "untouched";

/// A destination with a canary directory beside it.
struct Sandbox {
    tmp: TempDir,
    dest: PathBuf,
    outside: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        let outside = tmp.path().join("outside");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("canary"), CANARY).unwrap();
        Self { tmp, dest, outside }
    }

    /// The canary dir as an absolute path, as a hostile archive would spell it.
    fn outside_abs(&self) -> String {
        self.outside.display().to_string()
    }

    fn unpack(&self, layer: &[u8]) -> Result<UnpackStats, UnpackError> {
        unpack_layer(layer, &self.dest, WhiteoutMode::Overlay, LAYER)
    }

    /// Unpacks a hostile layer, checks the refusal names the layer and `path`,
    /// and that nothing outside `dest` changed.
    fn refuse(&self, layer: &[u8], path: &str) -> String {
        let message = self
            .unpack(layer)
            .expect_err("hostile layer was unpacked")
            .to_string();
        assert!(message.contains(LAYER), "{message}");
        assert!(message.contains(path), "{message}");
        assert!(message.starts_with(char::is_uppercase), "{message}");
        self.assert_outside_untouched();
        message
    }

    fn assert_outside_untouched(&self) {
        let names = |dir: &Path| {
            let mut names: Vec<String> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(self.tmp.path()), ["dest", "outside"]);
        assert_eq!(names(&self.outside), ["canary"]);
        let canary = self.outside.join("canary");
        assert_eq!(fs::read_to_string(&canary).unwrap(), CANARY);
        assert_eq!(fs::symlink_metadata(&canary).unwrap().nlink(), 1);
    }
}

/// Builds a layer entry by entry. Names go into the header bytes as they
/// are, so archives the `tar` crate would refuse to write (`..`, absolute
/// paths) can be made too.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn raw(mut self, kind: EntryType, name: &str, link: &str, mode: u32, data: &[u8]) -> Self {
        let mut header = Header::new_ustar();
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    fn dir(self, name: &str) -> Self {
        self.raw(EntryType::Directory, name, "", 0o755, b"")
    }

    fn file(self, name: &str, data: &str) -> Self {
        self.raw(EntryType::Regular, name, "", 0o644, data.as_bytes())
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.raw(EntryType::Symlink, name, target, 0o777, b"")
    }

    fn hardlink(self, name: &str, target: &str) -> Self {
        self.raw(EntryType::Link, name, target, 0o644, b"")
    }

    /// Appends an entry through the builder's own header handling (long
    /// names, PAX records for the xattrs).
    fn full(
        mut self,
        header: &mut Header,
        name: &str,
        xattrs: &[(&str, &[u8])],
        data: &[u8],
    ) -> Self {
        if !xattrs.is_empty() {
            let records: Vec<(String, &[u8])> = xattrs
                .iter()
                .map(|(key, value)| (format!("SCHILY.xattr.{key}"), *value))
                .collect();
            self.0
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
                .unwrap();
        }
        header.set_size(data.len() as u64);
        self.0.append_data(header, name, data).unwrap();
        self
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let path = CString::new(path.as_os_str().as_bytes()).unwrap();
    let name = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and `buf` is writable for `buf.len()` bytes.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn dotdot_escape_is_refused() {
    let sandbox = Sandbox::new();
    let layer = Layer::new().file("../outside/pwned", "x").finish();
    let message = sandbox.refuse(&layer, "../outside/pwned");
    assert!(message.contains("escapes the root"), "{message}");
}

#[test]
fn nested_dotdot_escape_is_refused() {
    let sandbox = Sandbox::new();
    let layer = Layer::new()
        .dir("a/")
        .file("a/../../outside/pwned", "x")
        .finish();
    let message = sandbox.refuse(&layer, "a/../../outside/pwned");
    assert!(message.contains("escapes the root"), "{message}");
}

#[test]
fn absolute_path_is_refused() {
    let sandbox = Sandbox::new();
    let name = format!("{}/pwned", sandbox.outside_abs());
    let layer = Layer::new().file(&name, "x").finish();
    let message = sandbox.refuse(&layer, &name);
    assert!(message.contains("absolute path"), "{message}");
}

#[test]
fn symlink_pointing_out_is_refused_before_a_write_through_it() {
    let sandbox = Sandbox::new();
    let layer = Layer::new()
        .symlink("evil", "../outside")
        .file("evil/pwned", "x")
        .finish();
    let message = sandbox.refuse(&layer, "evil");
    assert!(message.contains("../outside"), "{message}");
    assert!(!sandbox.dest.join("evil").exists());
}

#[test]
fn write_through_an_absolute_symlink_is_refused() {
    let sandbox = Sandbox::new();
    // Absolute targets are normal in images; only writing through one is not.
    let layer = Layer::new()
        .symlink("evil", &sandbox.outside_abs())
        .file("evil/pwned", "x")
        .finish();
    let message = sandbox.refuse(&layer, "evil/pwned");
    assert!(message.contains("symlink"), "{message}");
}

#[test]
fn hardlink_pointing_out_is_refused() {
    let sandbox = Sandbox::new();
    let layer = Layer::new().hardlink("link", "../outside/canary").finish();
    let message = sandbox.refuse(&layer, "link");
    assert!(message.contains("../outside/canary"), "{message}");

    let sandbox = Sandbox::new();
    let target = format!("{}/canary", sandbox.outside_abs());
    let layer = Layer::new().hardlink("link", &target).finish();
    sandbox.refuse(&layer, "link");
}

#[test]
fn hardlink_through_a_symlink_is_refused() {
    let sandbox = Sandbox::new();
    let layer = Layer::new()
        .symlink("s", &sandbox.outside_abs())
        .hardlink("link", "s/canary")
        .finish();
    let message = sandbox.refuse(&layer, "link");
    assert!(message.contains("resolves through a symlink"), "{message}");
}

#[test]
fn parent_swapped_for_a_symlink_mid_archive_is_refused() {
    let sandbox = Sandbox::new();
    let layer = Layer::new()
        .dir("d/")
        .file("d/fine", "x")
        .symlink("d", &sandbox.outside_abs())
        .file("d/pwned", "x")
        .finish();
    let message = sandbox.refuse(&layer, "d/pwned");
    assert!(message.contains("(d is a symlink)"), "{message}");
}

#[test]
fn replacing_a_dir_does_not_follow_symlinks_inside_it() {
    let sandbox = Sandbox::new();
    let layer = Layer::new()
        .dir("d/")
        .symlink("d/link", &sandbox.outside_abs())
        .symlink("d/canary", &format!("{}/canary", sandbox.outside_abs()))
        .file("d", "now a file")
        .finish();
    sandbox.unpack(&layer).unwrap();
    assert_eq!(
        fs::read_to_string(sandbox.dest.join("d")).unwrap(),
        "now a file"
    );
    sandbox.assert_outside_untouched();
}

#[test]
fn apply_mode_whiteout_under_a_lower_symlink_is_refused() {
    let sandbox = Sandbox::new();
    symlink(&sandbox.outside, sandbox.dest.join("l")).unwrap();
    let layer = Layer::new().file("l/.wh.canary", "").finish();
    let err = unpack_layer(&layer[..], &sandbox.dest, WhiteoutMode::Apply, LAYER).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(LAYER) && message.contains("l/.wh.canary"),
        "{message}"
    );
    sandbox.assert_outside_untouched();

    // Whiting out the link itself removes the link, not what it points to.
    let layer = Layer::new().file(".wh.l", "").finish();
    unpack_layer(&layer[..], &sandbox.dest, WhiteoutMode::Apply, LAYER).unwrap();
    assert!(fs::symlink_metadata(sandbox.dest.join("l")).is_err());
    sandbox.assert_outside_untouched();
}

/// A layer with one of everything, its metadata fixed so unpacks compare.
fn varied_layer() -> Vec<u8> {
    let header = |kind: EntryType, mode: u32, uid: u64| {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(1_500_000_000);
        h.set_size(0);
        h
    };
    let long_name = format!("usr/share/{}/file", "n".repeat(120));
    let mut layer = Layer::new()
        .full(
            &mut header(EntryType::Directory, 0o750, 1000),
            "./etc/",
            &[],
            b"",
        )
        .full(
            &mut header(EntryType::Regular, 0o644, 0),
            "etc/hosts",
            &[("user.servin", b"yes")],
            b"127.0.0.1 localhost\n",
        )
        .full(
            &mut header(EntryType::Regular, 0o4755, 0),
            "bin/su",
            &[],
            b"\x7fELF setuid",
        )
        .full(
            &mut header(EntryType::Regular, 0o600, 1000),
            &long_name,
            &[],
            b"deep",
        )
        .full(&mut header(EntryType::Fifo, 0o640, 0), "run/fifo", &[], b"");
    let mut link = header(EntryType::Symlink, 0o777, 0);
    layer
        .0
        .append_link(&mut link, "bin/sh", "/bin/busybox")
        .unwrap();
    let mut hard = header(EntryType::Link, 0o4755, 0);
    layer.0.append_link(&mut hard, "bin/su2", "bin/su").unwrap();
    let mut dev = header(EntryType::Char, 0o666, 0);
    dev.set_device_major(1).unwrap();
    dev.set_device_minor(3).unwrap();
    layer = layer.full(&mut dev, "dev/null", &[], b"");
    layer.finish()
}

/// Everything about a tree that unpacking decides, one line a node.
fn describe(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let detail = if meta.file_type().is_symlink() {
                fs::read_link(&path).unwrap().display().to_string()
            } else if meta.is_file() {
                String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned()
            } else {
                format!("rdev {}", meta.rdev())
            };
            out.push(format!(
                "{rel} mode {:o} owner {}:{} links {} mtime {} {detail}",
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.nlink(),
                meta.mtime()
            ));
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn gzip_and_zstd_layers_unpack_like_plain_tar() {
    let tar = varied_layer();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&tar).unwrap();
    let gzip = gzip.finish().unwrap();
    let zstd = zstd::encode_all(&tar[..], 3).unwrap();

    let mut trees = Vec::new();
    for blob in [&tar, &gzip, &zstd] {
        let sandbox = Sandbox::new();
        let stats = sandbox.unpack(blob).unwrap();
        assert_eq!(stats.entries, 8);
        assert_eq!(stats.size, (20 + 11 + 4) as u64);
        trees.push((describe(&sandbox.dest), sandbox));
    }
    assert_eq!(trees[0].0, trees[1].0);
    assert_eq!(trees[0].0, trees[2].0);

    let dest = &trees[0].1.dest;
    let meta = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap();
    assert_eq!(meta("bin/su").permissions().mode() & 0o7777, 0o4755);
    assert_eq!(meta("bin/su").ino(), meta("bin/su2").ino());
    assert_eq!(
        fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert!(meta("run/fifo").file_type().is_fifo());
    // Implied parents are 0755; a directory's own mtime survives the files written into it.
    assert_eq!(meta("bin").permissions().mode() & 0o7777, 0o755);
    assert_eq!(meta("etc").permissions().mode() & 0o7777, 0o750);
    assert_eq!(meta("etc").mtime(), 1_500_000_000);
    assert_eq!(meta("etc/hosts").mtime(), 1_500_000_000);
    if user_xattrs_supported(dest) {
        assert_eq!(
            get_xattr(&dest.join("etc/hosts"), "user.servin").as_deref(),
            Some(&b"yes"[..])
        );
    }
    if is_root() {
        assert_eq!((meta("etc").uid(), meta("etc").gid()), (1000, 1000));
        assert!(meta("dev/null").file_type().is_char_device());
        assert_eq!(meta("dev/null").rdev(), nix::sys::stat::makedev(1, 3));
    } else {
        eprintln!("not root: ownership and device nodes were not checked");
    }
    for (_, sandbox) in &trees {
        sandbox.assert_outside_untouched();
    }
}

fn user_xattrs_supported(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    fs::write(&probe, "").unwrap();
    let path = CString::new(probe.as_os_str().as_bytes()).unwrap();
    // SAFETY: both strings are NUL-terminated and the value is valid for its length.
    let ok = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            c"user.probe".as_ptr(),
            b"1".as_ptr().cast(),
            1,
            0,
        )
    } == 0;
    fs::remove_file(&probe).unwrap();
    ok
}

#[test]
fn overlay_whiteouts_become_devices_and_opaque_xattrs() {
    if !is_root() {
        eprintln!("skipped: overlay whiteouts need root (character devices, trusted. xattrs)");
        return;
    }
    let sandbox = Sandbox::new();
    let mut smuggled = Header::new_ustar();
    smuggled.set_entry_type(EntryType::Directory);
    smuggled.set_mode(0o755);
    let layer = Layer::new()
        .dir("a/")
        .file("a/.wh.gone", "")
        .file("a/kept", "x")
        .dir("b/")
        .file("b/.wh..wh..opq", "")
        .file(".wh.top", "")
        .file("c/.wh..wh.plnk", "")
        .full(
            &mut smuggled,
            "d/",
            &[("trusted.overlay.redirect", b"/etc")],
            b"",
        )
        .finish();
    let stats = sandbox.unpack(&layer).unwrap();
    assert_eq!(stats.entries, 8);
    let dest = &sandbox.dest;
    for whiteout in ["a/gone", "top"] {
        let meta = fs::symlink_metadata(dest.join(whiteout)).unwrap();
        assert!(meta.file_type().is_char_device(), "{whiteout}");
        assert_eq!(meta.rdev(), 0, "{whiteout}");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{whiteout}");
    }
    assert!(dest.join("a/kept").is_file());
    assert!(!dest.join("a/.wh.gone").exists());
    assert_eq!(
        get_xattr(&dest.join("b"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!dest.join("b/.wh..wh..opq").exists());
    assert!(!dest.join("c/.wh..wh.plnk").exists());
    // overlayfs metadata may come only from our own whiteout handling.
    assert_eq!(get_xattr(&dest.join("d"), "trusted.overlay.redirect"), None);
    sandbox.assert_outside_untouched();
}

#[test]
fn apply_mode_whiteouts_delete() {
    let sandbox = Sandbox::new();
    let apply =
        |layer: &[u8]| unpack_layer(layer, &sandbox.dest, WhiteoutMode::Apply, LAYER).unwrap();
    apply(
        &Layer::new()
            .dir("a/")
            .file("a/old", "1")
            .file("a/keep", "1")
            .dir("b/")
            .file("b/x/deep", "1")
            .dir("c/")
            .file("c/old", "1")
            .symlink("c/link", &sandbox.outside_abs())
            .finish(),
    );
    apply(
        &Layer::new()
            .file("a/.wh.old", "")
            .file(".wh.b", "")
            .file("c/.wh..wh..opq", "")
            .file("c/new", "2")
            .file(".wh.never-existed", "")
            .finish(),
    );
    let dest = &sandbox.dest;
    assert!(!dest.join("a/old").exists());
    assert!(dest.join("a/keep").is_file());
    assert!(fs::symlink_metadata(dest.join("b")).is_err());
    let mut c: Vec<String> = fs::read_dir(dest.join("c"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    c.sort();
    assert_eq!(c, ["new"]);
    // No whiteout files are left behind in a flattened tree.
    assert!(!dest.join("a/.wh.old").exists());
    assert!(!dest.join(".wh.b").exists());
    sandbox.assert_outside_untouched();
}
