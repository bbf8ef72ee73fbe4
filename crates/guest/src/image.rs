//! The guest image builder (runs on the host): from Debian's kernel
//! package (extracted), `servin-init` and the guest's binaries, writes
//! `vmlinuz`, `initramfs.img` (a zstd-compressed cpio "newc" archive),
//! `system.img` (everything under `usr/`, an erofs filesystem written by
//! `mkfs.erofs`; see [`crate::system`]) and `VERSION`. Reproducible:
//! entries are sorted, owned by 0:0 with mtime 0 and numbered in order, the
//! erofs image gets timestamp 0, root ownership and a UUID from the
//! version, so the same inputs give the same bytes, and `VERSION` is a
//! hash of every input.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::contract::{INITRAMFS_FILE, KERNEL_FILE, VERSION_FILE};
use crate::modules::{module_name, ModulesDep, GUEST_MODULES};
use crate::system::{SYSTEM_FILE, SYSTEM_FS, SYSTEM_PREFIX};

/// Bumped when the layout of the image changes without any input changing.
const FORMAT: &str = "servin-guest-image 2";
/// Writes the system disk (Debian's erofs-utils).
const MKFS_EROFS: &str = "mkfs.erofs";
const ZSTD_LEVEL: i32 = 9;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("Cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("No kernel in {0} (expected boot/vmlinuz-* and lib/modules/*)")]
    NoKernel(PathBuf),
    #[error("Kernel module {path} is unreadable: {reason}")]
    BadModule { path: PathBuf, reason: String },
    #[error("The kernel package has no module {0}")]
    MissingModule(String),
    #[error("Invalid image path {0:?}: must be relative, without . or ..")]
    BadDest(String),
    #[error("Cannot run {MKFS_EROFS} (install Debian's erofs-utils)")]
    NoMkfs(#[source] std::io::Error),
    #[error("{MKFS_EROFS} failed: {0}")]
    Mkfs(String),
}

/// What goes into the image.
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    /// An extracted `linux-image-*-amd64` package (`boot/`, `lib/modules/`).
    pub kernel_root: PathBuf,
    /// `servin-init`, installed as `/init`.
    pub init: PathBuf,
    /// Other files: source on the host, path in the image (relative, no
    /// leading `/`), mode.
    pub files: Vec<(PathBuf, String, u32)>,
    /// Symlinks: path in the image, target.
    pub symlinks: Vec<(String, String)>,
    /// Modules to include (with their dependencies); `GUEST_MODULES` when empty.
    pub modules: Vec<String>,
}

/// The result of [`build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub version: String,
    /// False when the output already had this version and was left alone.
    pub written: bool,
    pub initramfs_size: u64,
    /// The system disk's size; 0 when nothing in the image is under `usr/`.
    pub system_size: u64,
}

enum Node {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(|source| ImageError::Read {
        path: path.into(),
        source,
    })
}

fn check_dest(dest: &str) -> Result<(), ImageError> {
    if dest.is_empty()
        || dest.starts_with('/')
        || dest
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(ImageError::BadDest(dest.to_string()));
    }
    Ok(())
}

/// The kernel's version directory and image in an extracted package.
fn find_kernel(root: &Path) -> Result<(PathBuf, PathBuf, String), ImageError> {
    let none = || ImageError::NoKernel(root.to_path_buf());
    let mut kernels: Vec<PathBuf> = std::fs::read_dir(root.join("boot"))
        .map_err(|_| none())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    kernels.sort();
    let kernel = kernels.pop().ok_or_else(none)?;
    let release = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .ok_or_else(none)?
        .to_string();
    let mut moddir = root.join("lib/modules").join(&release);
    if !moddir.is_dir() {
        moddir = root.join("usr/lib/modules").join(&release);
    }
    if !moddir.is_dir() {
        return Err(none());
    }
    Ok((kernel, moddir, release))
}

/// Every module file under `dir`, by module name → path relative to `dir`.
fn index_modules(dir: &Path) -> Result<BTreeMap<String, String>, ImageError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| ImageError::Read {
            path: d.clone(),
            source,
        })?;
        for e in entries {
            let e = e.map_err(|source| ImageError::Read {
                path: d.clone(),
                source,
            })?;
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(rel) = p
                .strip_prefix(dir)
                .ok()
                .and_then(|r| r.to_str())
                .filter(|r| r.contains(".ko"))
            {
                out.insert(module_name(rel), rel.to_string());
            }
        }
    }
    Ok(out)
}

/// The module's bytes, uncompressed (Debian may ship `.ko.xz` or `.ko.zst`).
fn module_bytes(path: &Path) -> Result<Vec<u8>, ImageError> {
    let raw = read(path)?;
    let name = path.to_string_lossy();
    let bad = |reason: String| ImageError::BadModule {
        path: path.into(),
        reason,
    };
    if name.ends_with(".ko.zst") {
        zstd::stream::decode_all(&raw[..]).map_err(|e| bad(e.to_string()))
    } else if name.ends_with(".ko.xz") {
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut &raw[..], &mut out).map_err(|e| bad(e.to_string()))?;
        Ok(out)
    } else if name.ends_with(".ko") {
        Ok(raw)
    } else {
        Err(bad("unknown compression".into()))
    }
}

/// The `depends=` names in a module's `.modinfo` section.
fn module_depends(path: &Path, elf: &[u8]) -> Result<Vec<String>, ImageError> {
    use object::{Object, ObjectSection};
    let bad = |reason: String| ImageError::BadModule {
        path: path.into(),
        reason,
    };
    let file = object::File::parse(elf).map_err(|e| bad(e.to_string()))?;
    let Some(section) = file.section_by_name(".modinfo") else {
        return Ok(Vec::new());
    };
    let data = section.data().map_err(|e| bad(e.to_string()))?;
    Ok(data
        .split(|b| *b == 0)
        .filter_map(|kv| kv.strip_prefix(b"depends="))
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.replace('-', "_"))
                .collect::<Vec<_>>()
        })
        .collect())
}

/// The `.ko` path in the image for a module path in the package.
fn uncompressed_rel(rel: &str) -> String {
    let cut = rel.find(".ko").map_or(rel.len(), |i| i + 3);
    rel[..cut].to_string()
}

/// Builds the image in `out_dir`, unless it already holds this version.
pub fn build(spec: &ImageSpec, out_dir: &Path) -> Result<Built, ImageError> {
    let (kernel_path, moddir, release) = find_kernel(&spec.kernel_root)?;
    let mut tree: BTreeMap<String, Node> = BTreeMap::new();
    let mut hash = Sha256::new();
    hash.update(FORMAT.as_bytes());

    let kernel = read(&kernel_path)?;
    hash.update(b"\0kernel\0");
    hash.update(&kernel);

    let mut add = |tree: &mut BTreeMap<String, Node>, dest: &str, node: Node| {
        hash.update(b"\0");
        hash.update(dest.as_bytes());
        match &node {
            Node::Dir => hash.update(b"\0dir"),
            Node::File { data, mode } => {
                hash.update(format!("\0file {mode:o} {}\0", data.len()).as_bytes());
                hash.update(data);
            }
            Node::Symlink(t) => hash.update(format!("\0symlink {t}").as_bytes()),
            Node::CharDev { major, minor } => {
                hash.update(format!("\0chr {major}:{minor}").as_bytes())
            }
        }
        tree.insert(dest.to_string(), node);
    };

    for d in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "etc",
        "var/lib/servin",
        "root",
    ] {
        add(&mut tree, d, Node::Dir);
    }
    // The kernel opens /dev/console for init before anything is mounted.
    add(
        &mut tree,
        "dev/console",
        Node::CharDev { major: 5, minor: 1 },
    );
    add(
        &mut tree,
        "init",
        Node::File {
            data: read(&spec.init)?,
            mode: 0o755,
        },
    );
    for (src, dest, mode) in &spec.files {
        check_dest(dest)?;
        add(
            &mut tree,
            dest,
            Node::File {
                data: read(src)?,
                mode: *mode,
            },
        );
    }
    for (dest, target) in &spec.symlinks {
        check_dest(dest)?;
        add(&mut tree, dest, Node::Symlink(target.clone()));
    }

    // Modules: the wanted ones and what they depend on, uncompressed.
    let index = index_modules(&moddir)?;
    let mut wanted: Vec<String> = if spec.modules.is_empty() {
        GUEST_MODULES.iter().map(|s| s.to_string()).collect()
    } else {
        spec.modules.clone()
    };
    let has_system = tree.keys().any(|k| k.starts_with(SYSTEM_PREFIX));
    if has_system && !wanted.iter().any(|m| m == SYSTEM_FS) {
        // Init loads it to mount the system disk.
        wanted.push(SYSTEM_FS.to_string());
    }
    let mut dep = ModulesDep::default();
    let mut todo: Vec<String> = wanted.iter().map(|m| m.replace('-', "_")).collect();
    let mut done = std::collections::HashSet::new();
    let mut deps_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mod_prefix = format!("lib/modules/{release}");
    while let Some(name) = todo.pop() {
        if !done.insert(name.clone()) {
            continue;
        }
        let rel = index
            .get(&name)
            .ok_or_else(|| ImageError::MissingModule(name.clone()))?;
        let path = moddir.join(rel);
        let bytes = module_bytes(&path)?;
        let direct = module_depends(&path, &bytes)?;
        todo.extend(direct.iter().cloned());
        deps_of.insert(name.clone(), direct);
        add(
            &mut tree,
            &format!("{mod_prefix}/{}", uncompressed_rel(rel)),
            Node::File {
                data: bytes,
                mode: 0o644,
            },
        );
    }
    // modules.dep lists every transitive dependency, as depmod does.
    for name in deps_of.keys() {
        let mut all = Vec::new();
        let mut stack = deps_of[name].clone();
        while let Some(d) = stack.pop() {
            if !all.contains(&d) {
                stack.extend(deps_of.get(&d).cloned().unwrap_or_default());
                all.push(d);
            }
        }
        all.sort();
        let rel = |n: &str| uncompressed_rel(&index[n]);
        dep.insert(rel(name), all.iter().map(|d| rel(d)).collect());
    }
    add(
        &mut tree,
        &format!("{mod_prefix}/modules.dep"),
        Node::File {
            data: dep.render().into_bytes(),
            mode: 0o644,
        },
    );

    // Parents of everything are directories.
    let parents: Vec<String> = tree
        .keys()
        .flat_map(|k| {
            let parts: Vec<&str> = k.split('/').collect();
            (1..parts.len())
                .map(|i| parts[..i].join("/"))
                .collect::<Vec<_>>()
        })
        .collect();
    for p in parents {
        tree.entry(p).or_insert(Node::Dir);
    }

    let version = hex::encode(hash.finalize());
    let initramfs_path = out_dir.join(INITRAMFS_FILE);
    let system_path = out_dir.join(SYSTEM_FILE);
    let kernel_out = out_dir.join(KERNEL_FILE);
    let version_path = out_dir.join(VERSION_FILE);
    if std::fs::read_to_string(&version_path).is_ok_and(|v| v.trim() == version)
        && kernel_out.is_file()
        && initramfs_path.is_file()
        && system_path.is_file() == has_system
    {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        return Ok(Built {
            version,
            written: false,
            initramfs_size: size(&initramfs_path),
            system_size: size(&system_path),
        });
    }

    // `usr/` goes to the system disk; `usr` itself stays, as the mount point.
    let (system, tree): (BTreeMap<String, Node>, BTreeMap<String, Node>) = tree
        .into_iter()
        .partition(|(k, _)| k.starts_with(SYSTEM_PREFIX));
    let system: BTreeMap<String, Node> = system
        .into_iter()
        .map(|(k, v)| (k[SYSTEM_PREFIX.len()..].to_string(), v))
        .collect();
    let archive = write_cpio(&tree).map_err(|source| ImageError::Write {
        path: initramfs_path.clone(),
        source,
    })?;
    let compressed =
        zstd::stream::encode_all(&archive[..], ZSTD_LEVEL).map_err(|source| ImageError::Write {
            path: initramfs_path.clone(),
            source,
        })?;
    std::fs::create_dir_all(out_dir).map_err(|source| ImageError::Write {
        path: out_dir.into(),
        source,
    })?;
    // VERSION goes last and is removed first, so a half-written image is
    // never taken for a finished one.
    let _ = std::fs::remove_file(&version_path);
    let system_size = if system.is_empty() {
        // An old system disk must not outlive the image it belonged to.
        match std::fs::remove_file(&system_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ImageError::Write {
                    path: system_path,
                    source: e,
                })
            }
            _ => 0,
        }
    } else {
        write_erofs(&system, &version, &system_path)?
    };
    write_atomic(&kernel_out, &kernel)?;
    write_atomic(&initramfs_path, &compressed)?;
    write_atomic(&version_path, format!("{version}\n").as_bytes())?;
    Ok(Built {
        version,
        written: true,
        initramfs_size: compressed.len() as u64,
        system_size,
    })
}

/// Writes `tree` as an erofs image at `out` (through a staging directory
/// next to it and `mkfs.erofs`): uncompressed, so the guest's page cache
/// maps the disk's blocks as they are; every file owned by root with
/// timestamp 0 and the UUID taken from `version`, so the bytes depend only
/// on the tree. Returns the image's size.
fn write_erofs(
    tree: &BTreeMap<String, Node>,
    version: &str,
    out: &Path,
) -> Result<u64, ImageError> {
    use std::os::unix::fs::PermissionsExt;
    // Per process: two builds into the same directory (tests running side
    // by side) must not share a staging tree; the last rename wins, with
    // the same bytes.
    let staging = out.with_extension(format!("staging.{}", std::process::id()));
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImageError::Write { path, source }
    };
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(werr(&staging))?;
    let result = (|| {
        for (name, node) in tree {
            let p = staging.join(name);
            match node {
                Node::Dir => std::fs::create_dir_all(&p).map_err(werr(&p))?,
                Node::File { data, mode } => {
                    if let Some(parent) = p.parent() {
                        std::fs::create_dir_all(parent).map_err(werr(parent))?;
                    }
                    std::fs::write(&p, data).map_err(werr(&p))?;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
                        .map_err(werr(&p))?;
                }
                Node::Symlink(t) => {
                    if let Some(parent) = p.parent() {
                        std::fs::create_dir_all(parent).map_err(werr(parent))?;
                    }
                    std::os::unix::fs::symlink(t, &p).map_err(werr(&p))?
                }
                Node::CharDev { .. } => {
                    return Err(ImageError::BadDest(format!(
                        "{SYSTEM_PREFIX}{name} (a device node on the system disk)"
                    )))
                }
            }
        }
        // Directories: 0755, like the initramfs's.
        for (name, node) in tree {
            if matches!(node, Node::Dir) {
                let p = staging.join(name);
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                    .map_err(werr(&p))?;
            }
        }
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755))
            .map_err(werr(&staging))?;
        let v = version.as_bytes();
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            String::from_utf8_lossy(&v[0..8]),
            String::from_utf8_lossy(&v[8..12]),
            String::from_utf8_lossy(&v[12..16]),
            String::from_utf8_lossy(&v[16..20]),
            String::from_utf8_lossy(&v[20..32])
        );
        let tmp = out.with_extension(format!("{}.tmp", std::process::id()));
        let output = std::process::Command::new(MKFS_EROFS)
            .args(["--quiet", "-T0", "--all-root", "-x-1"])
            .arg(format!("-U{uuid}"))
            .arg(&tmp)
            .arg(&staging)
            .output()
            .map_err(ImageError::NoMkfs)?;
        if !output.status.success() {
            let _ = std::fs::remove_file(&tmp);
            return Err(ImageError::Mkfs(
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            ));
        }
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(werr(&tmp))?;
        std::fs::rename(&tmp, out).map_err(werr(out))?;
        std::fs::metadata(out).map(|m| m.len()).map_err(werr(out))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ImageError> {
    // Per process, like the system disk's staging: builds run side by side.
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let err = |source| ImageError::Write {
        path: path.into(),
        source,
    };
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn write_cpio(tree: &BTreeMap<String, Node>) -> std::io::Result<Vec<u8>> {
    use cpio::newc::Builder;
    let mut out = Vec::new();
    for (ino, (name, node)) in tree.iter().enumerate() {
        let b = Builder::new(name)
            .ino(ino as u32 + 1)
            .uid(0)
            .gid(0)
            .mtime(0)
            .nlink(1);
        let (b, data): (Builder, &[u8]) = match node {
            Node::Dir => (b.mode(0o040755), &[]),
            Node::File { data, mode } => (b.mode(0o100000 | mode), data),
            Node::Symlink(t) => (b.mode(0o120777), t.as_bytes()),
            Node::CharDev { major, minor } => {
                (b.mode(0o020600).rdev_major(*major).rdev_minor(*minor), &[])
            }
        };
        let size = u32::try_from(data.len()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name} is too big"),
            )
        })?;
        let mut w = b.write(&mut out, size);
        w.write_all(data)?;
        w.finish()?;
    }
    cpio::newc::trailer(&mut out)?;
    Ok(out)
}

/// Lists the names in a (decompressed) newc archive, for tests.
pub fn list_cpio(mut archive: &[u8]) -> std::io::Result<Vec<(String, u32, Vec<u8>)>> {
    let mut out = Vec::new();
    loop {
        let mut r = cpio::NewcReader::new(archive)?;
        if r.entry().is_trailer() {
            break;
        }
        let name = r.entry().name().to_string();
        let mode = r.entry().mode();
        let mut data = Vec::new();
        r.read_to_end(&mut data)?;
        out.push((name, mode, data));
        archive = r.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny stand-in for an extracted kernel package: a fake kernel and
    /// two "modules" that are real ELF files (copies of the test binary
    /// are too big; a minimal ELF with a .modinfo section is built here).
    fn fake_kernel(root: &Path) {
        std::fs::create_dir_all(root.join("boot")).unwrap();
        std::fs::write(root.join("boot/vmlinuz-6.1.0-9-amd64"), b"kernel").unwrap();
        let m = root.join("lib/modules/6.1.0-9-amd64/kernel/drivers");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("a.ko"), elf_with_modinfo(b"name=a\0depends=b-x\0")).unwrap();
        std::fs::write(m.join("b-x.ko"), elf_with_modinfo(b"name=b_x\0depends=\0")).unwrap();
        let fs = root.join("lib/modules/6.1.0-9-amd64/kernel/fs/erofs");
        std::fs::create_dir_all(&fs).unwrap();
        std::fs::write(
            fs.join("erofs.ko"),
            elf_with_modinfo(b"name=erofs\0depends=\0"),
        )
        .unwrap();
    }

    /// `dump.erofs --path` of one file in an erofs image (erofs-utils).
    fn erofs_stat(image: &Path, path: &str) -> String {
        let out = std::process::Command::new("dump.erofs")
            .arg(format!("--path={path}"))
            .arg(image)
            .output()
            .expect("dump.erofs runs (apt-get install erofs-utils)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn elf_with_modinfo(modinfo: &[u8]) -> Vec<u8> {
        use object::write::Object;
        let mut obj = Object::new(
            object::BinaryFormat::Elf,
            object::Architecture::X86_64,
            object::Endianness::Little,
        );
        let id = obj.add_section(
            Vec::new(),
            b".modinfo".to_vec(),
            object::SectionKind::ReadOnlyData,
        );
        obj.append_section_data(id, modinfo, 1);
        obj.write().unwrap()
    }

    #[test]
    fn same_inputs_same_bytes_and_a_second_build_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fake_kernel(&dir.path().join("k"));
        std::fs::write(dir.path().join("init"), b"#!init").unwrap();
        std::fs::write(dir.path().join("servind"), b"engine").unwrap();
        let spec = ImageSpec {
            kernel_root: dir.path().join("k"),
            init: dir.path().join("init"),
            files: vec![(dir.path().join("servind"), "usr/bin/servind".into(), 0o755)],
            symlinks: vec![("bin/sh".into(), "busybox".into())],
            modules: vec!["a".into()],
        };
        let out1 = dir.path().join("out1");
        let out2 = dir.path().join("out2");
        let b1 = build(&spec, &out1).unwrap();
        let b2 = build(&spec, &out2).unwrap();
        assert!(b1.written && b2.written);
        assert_eq!(b1.version, b2.version);
        let img1 = std::fs::read(out1.join(INITRAMFS_FILE)).unwrap();
        assert_eq!(img1, std::fs::read(out2.join(INITRAMFS_FILE)).unwrap());
        assert_eq!(std::fs::read(out1.join(KERNEL_FILE)).unwrap(), b"kernel");
        let sys1 = std::fs::read(out1.join(SYSTEM_FILE)).unwrap();
        assert_eq!(sys1, std::fs::read(out2.join(SYSTEM_FILE)).unwrap());
        assert_eq!(b1.system_size, sys1.len() as u64);
        // The system disk holds usr/ (without the prefix), root's, 0755.
        let stat = erofs_stat(&out1.join(SYSTEM_FILE), "/bin/servind");
        assert!(stat.contains("Size: 6 "), "{stat}");
        assert!(stat.contains("Uid: 0   Gid: 0"), "{stat}");
        assert!(stat.contains("Access: 0755"), "{stat}");

        let again = build(&spec, &out1).unwrap();
        assert!(!again.written, "unchanged inputs rebuild nothing");

        let entries = list_cpio(&zstd::stream::decode_all(&img1[..]).unwrap()).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "entries are sorted");
        for want in [
            "init",
            "dev/console",
            "usr",
            "bin/sh",
            "lib/modules/6.1.0-9-amd64/kernel/drivers/a.ko",
            "lib/modules/6.1.0-9-amd64/kernel/drivers/b-x.ko",
            // Init mounts the system disk with it.
            "lib/modules/6.1.0-9-amd64/kernel/fs/erofs/erofs.ko",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.starts_with("usr/")),
            "usr/ is on the system disk, not in the initramfs: {names:?}"
        );
        let dep = entries
            .iter()
            .find(|e| e.0.ends_with("modules.dep"))
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&dep.2),
            "kernel/drivers/a.ko: kernel/drivers/b-x.ko\nkernel/drivers/b-x.ko:\nkernel/fs/erofs/erofs.ko:\n"
        );

        // A changed input is a new version.
        std::fs::write(dir.path().join("servind"), b"engine 2").unwrap();
        let b3 = build(&spec, &out1).unwrap();
        assert!(b3.written);
        assert_ne!(b3.version, b1.version);

        // An image with nothing under usr/ has no system disk, and a
        // rebuild removes the old one.
        let bare = ImageSpec {
            files: Vec::new(),
            ..spec.clone()
        };
        let b4 = build(&bare, &out1).unwrap();
        assert!(b4.written);
        assert_eq!(b4.system_size, 0);
        assert!(!out1.join(SYSTEM_FILE).exists());
    }

    #[test]
    fn a_missing_module_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fake_kernel(&dir.path().join("k"));
        std::fs::write(dir.path().join("init"), b"#!init").unwrap();
        let spec = ImageSpec {
            kernel_root: dir.path().join("k"),
            init: dir.path().join("init"),
            modules: vec!["nope".into()],
            ..Default::default()
        };
        let e = build(&spec, &dir.path().join("out")).unwrap_err();
        assert_eq!(e.to_string(), "The kernel package has no module nope");
    }
}
