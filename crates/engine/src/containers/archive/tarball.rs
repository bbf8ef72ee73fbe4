//! Tar as `docker cp` and `docker export` need it: a writer that walks a
//! tree from directory descriptors (never following a symlink), and a
//! pass-through reader that checks each incoming entry against the
//! destination before the unpacker sees it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::resolve::{redirected, Redirects};
use super::Dir;

const BLOCK: usize = 512;
/// Past this, an extended header holds the value (octal field limits).
const MAX_SIZE: u64 = 0o777_7777_7777;
const MAX_ID: u64 = 0o777_7777;
/// Extended-header data kept for inspection; longer ones are only skipped.
const MAX_EXTENSION: usize = 1 << 20;

/// One entry's header fields.
struct Header {
    name: Vec<u8>,
    link: Vec<u8>,
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    dev: (u64, u64),
}

impl Header {
    fn from_meta(meta: &Metadata, name: Vec<u8>, kind: u8) -> Header {
        let rdev = meta.rdev();
        Header {
            name,
            link: Vec::new(),
            kind,
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            size: 0,
            mtime: meta.mtime(),
            dev: (
                ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff),
                (rdev & 0xff) | ((rdev >> 12) & !0xff),
            ),
        }
    }

    /// The ustar block; values that do not fit go in a PAX header first.
    fn block(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        put(&mut b[0..100], &self.name);
        octal(&mut b[100..108], u64::from(self.mode));
        octal(&mut b[108..116], self.uid.min(MAX_ID));
        octal(&mut b[116..124], self.gid.min(MAX_ID));
        octal(
            &mut b[124..136],
            if self.size > MAX_SIZE { 0 } else { self.size },
        );
        octal(
            &mut b[136..148],
            self.mtime.clamp(0, MAX_SIZE as i64) as u64,
        );
        b[156] = self.kind;
        put(&mut b[157..257], &self.link);
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        if matches!(self.kind, b'3' | b'4') {
            octal(&mut b[329..337], self.dev.0.min(MAX_ID));
            octal(&mut b[337..345], self.dev.1.min(MAX_ID));
        }
        b[148..156].fill(b' ');
        let sum: u32 = b.iter().map(|x| u32::from(*x)).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        b
    }

    fn pax_records(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut add = |key: &str, value: &[u8]| {
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            out.extend_from_slice(format!("{len} {key}=").as_bytes());
            out.extend_from_slice(value);
            out.push(b'\n');
        };
        if self.name.len() > 100 {
            add("path", &self.name);
        }
        if self.link.len() > 100 {
            add("linkpath", &self.link);
        }
        if self.size > MAX_SIZE {
            add("size", self.size.to_string().as_bytes());
        }
        if self.uid > MAX_ID {
            add("uid", self.uid.to_string().as_bytes());
        }
        if self.gid > MAX_ID {
            add("gid", self.gid.to_string().as_bytes());
        }
        out
    }
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    put(field, text.as_bytes());
}

fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

/// Writes a tar of trees reached from directory descriptors.
/// Whether `dir` is on a filesystem the kernel makes up (a running
/// container's /proc, /sys, /dev/pts …): it is archived as the empty mount
/// point Docker's view of the container shows there.
fn is_kernel_fs(dir: &Dir) -> bool {
    const KERNEL_FS: [i64; 9] = [
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x1cd1,      // devpts
        0x1980_0202, // mqueue
        0x27e0eb,    // cgroup
        0x6367_7270, // cgroup2
        0x7363_6673, // securityfs
        0x6462_6720, // debugfs
        0x7472_6163, // tracefs
    ];
    let Ok(path) = std::ffi::CString::new(dir.path().into_os_string().into_vec()) else {
        return false;
    };
    // SAFETY: statfs is plain old data, all-zero is valid; the path is a
    // NUL-terminated string that outlives the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the kernel writes only into `st`.
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return false;
    }
    KERNEL_FS.contains(&(st.f_type as i64))
}

pub(super) struct TarWriter<W: Write> {
    out: W,
    /// First name of each multiply-linked file, for hard links.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Mounts a walk enters in their sources (a stopped container's), and
    /// where below the container's root the walk is.
    redirects: Redirects,
    rel: PathBuf,
}

impl<W: Write> TarWriter<W> {
    pub(super) fn new(out: W) -> Self {
        Self {
            out,
            links: HashMap::new(),
            redirects: Redirects::default(),
            rel: PathBuf::new(),
        }
    }

    /// A writer whose walks take `redirects` for the mounts below `rel`,
    /// the container path of what is added first.
    pub(super) fn with_mounts(out: W, redirects: Redirects, rel: PathBuf) -> Self {
        Self {
            redirects,
            rel,
            ..Self::new(out)
        }
    }

    fn header(&mut self, h: &Header) -> io::Result<()> {
        let pax = h.pax_records();
        if !pax.is_empty() {
            let x = Header {
                name: b"././@PaxHeader".to_vec(),
                link: Vec::new(),
                kind: b'x',
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: pax.len() as u64,
                mtime: h.mtime,
                dev: (0, 0),
            };
            self.out.write_all(&x.block())?;
            self.out.write_all(&pax)?;
            self.out.write_all(&[0u8; BLOCK][..padding(x.size)])?;
        }
        self.out.write_all(&h.block())
    }

    /// Adds `name` in `dir` (or `dir` itself) as `tar_name`, and everything
    /// below it. Sockets are left out, as Docker does.
    pub(super) fn add(
        &mut self,
        dir: &Dir,
        name: Option<&OsStr>,
        tar_name: &[u8],
    ) -> io::Result<()> {
        // A mount below the top of the walk: its source stands in for it.
        let mounted = match name {
            Some(_) if !self.redirects.is_empty() => {
                self.redirects.source(&self.rel).map(Path::to_path_buf)
            }
            _ => None,
        };
        if let Some(source) = mounted {
            let t = redirected(&source, self.rel.clone())?;
            return self.add_plain(&t.dir, t.name.as_deref(), tar_name);
        }
        self.add_plain(dir, name, tar_name)
    }

    fn add_plain(&mut self, dir: &Dir, name: Option<&OsStr>, tar_name: &[u8]) -> io::Result<()> {
        let meta = match name {
            Some(n) => dir.lstat(n)?,
            None => dir.stat()?,
        };
        let ft = meta.file_type();
        let mut tar_name = tar_name.to_vec();
        if ft.is_dir() {
            let inner = tar_name.clone();
            tar_name.push(b'/');
            self.header(&Header::from_meta(&meta, tar_name, b'5'))?;
            let sub = match name {
                Some(n) => dir.dir(n)?,
                None => dir.try_clone()?,
            };
            if is_kernel_fs(&sub) {
                return Ok(());
            }
            return self.add_children(&sub, Some(&inner));
        }
        let Some(name) = name else {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        };
        use std::os::unix::fs::FileTypeExt;
        let kind = match () {
            _ if ft.is_symlink() => b'2',
            _ if ft.is_file() => b'0',
            _ if ft.is_char_device() => b'3',
            _ if ft.is_block_device() => b'4',
            _ if ft.is_fifo() => b'6',
            _ => return Ok(()),
        };
        let mut h = Header::from_meta(&meta, tar_name.clone(), kind);
        if kind == b'2' {
            h.link = std::fs::read_link(dir.child(name))?
                .into_os_string()
                .into_vec();
            return self.header(&h);
        }
        if kind != b'0' {
            return self.header(&h);
        }
        if meta.nlink() > 1 {
            if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                h.kind = b'1';
                h.link = first.clone();
                return self.header(&h);
            }
            self.links.insert((meta.dev(), meta.ino()), tar_name);
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(dir.child(name))?;
        h.size = meta.len();
        self.header(&h)?;
        // A file that changes meanwhile still fills exactly the size announced.
        let copied = io::copy(&mut file.take(h.size), &mut self.out)?;
        io::copy(&mut io::repeat(0).take(h.size - copied), &mut self.out)?;
        self.out.write_all(&[0u8; BLOCK][..padding(h.size)])
    }

    /// Adds everything in `dir`, named `PREFIX/NAME` (or `NAME`), sorted.
    pub(super) fn add_children(&mut self, dir: &Dir, prefix: Option<&[u8]>) -> io::Result<()> {
        let mut names: Vec<_> = std::fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for n in names {
            let mut tar_name = match prefix {
                Some(p) => [p, b"/"].concat(),
                None => Vec::new(),
            };
            tar_name.extend_from_slice(n.as_bytes());
            self.rel.push(&n);
            let res = self.add(dir, Some(&n), &tar_name);
            self.rel.pop();
            res?;
        }
        Ok(())
    }

    /// Ends the archive.
    pub(super) fn finish(&mut self) -> io::Result<()> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()
    }
}

/// Where a tar stream is between headers.
enum State {
    Header(Vec<u8>),
    /// `left` bytes (padding included) before the next header; the first
    /// `keep` of them are collected when `kind` is an extension.
    Data {
        left: u64,
        keep: usize,
        kind: u8,
        data: Vec<u8>,
    },
}

/// Passes a tar stream through unchanged, checking each entry against the
/// destination first: with Docker's `noOverwriteDirNonDir`, an entry may
/// not replace a directory with a non-directory, nor the reverse. A
/// compressed stream is passed through unchecked.
pub(super) struct OverwriteCheck<'a, R> {
    inner: R,
    dest: &'a Dir,
    dest_shown: String,
    enabled: bool,
    state: State,
    first: bool,
    long_name: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_size: Option<u64>,
    refusal: Rc<RefCell<Option<String>>>,
}

impl<'a, R: Read> OverwriteCheck<'a, R> {
    /// `refusal` receives the message of the entry that was refused.
    pub(super) fn new(
        inner: R,
        dest: &'a Dir,
        dest_shown: String,
        enabled: bool,
        refusal: Rc<RefCell<Option<String>>>,
    ) -> Self {
        Self {
            inner,
            dest,
            dest_shown,
            enabled,
            state: State::Header(Vec::with_capacity(BLOCK)),
            first: true,
            long_name: None,
            pax_path: None,
            pax_size: None,
            refusal,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while self.enabled && !bytes.is_empty() {
            match &mut self.state {
                State::Header(block) => {
                    let take = (BLOCK - block.len()).min(bytes.len());
                    block.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if block.len() == BLOCK {
                        let block = std::mem::replace(block, Vec::with_capacity(BLOCK));
                        self.header(&block)?;
                    }
                }
                State::Data {
                    left,
                    keep,
                    kind,
                    data,
                } => {
                    let take = (*left).min(bytes.len() as u64) as usize;
                    let room = keep.saturating_sub(data.len()).min(take);
                    data.extend_from_slice(&bytes[..room]);
                    *left -= take as u64;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        let (kind, data) = (*kind, std::mem::take(data));
                        self.extension(kind, data);
                        self.state = State::Header(Vec::with_capacity(BLOCK));
                    }
                }
            }
        }
        Ok(())
    }

    fn header(&mut self, b: &[u8]) -> Result<(), String> {
        if std::mem::take(&mut self.first)
            && (b.starts_with(&[0x1f, 0x8b]) || b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]))
        {
            self.enabled = false;
            return Ok(());
        }
        if b.iter().all(|x| *x == 0) {
            return Ok(());
        }
        let kind = b[156];
        let mut size = parse_number(&b[124..136]);
        let extension = matches!(kind, b'x' | b'g' | b'L' | b'K');
        if !extension {
            let mut name = field(&b[0..100]).to_vec();
            if &b[257..263] == b"ustar\0" && b[345] != 0 {
                name = [field(&b[345..500]), b"/", &name].concat();
            }
            let name = self
                .pax_path
                .take()
                .or_else(|| self.long_name.take())
                .unwrap_or(name);
            size = self.pax_size.take().unwrap_or(size);
            let is_dir = kind == b'5' || (matches!(kind, b'0' | 0) && name.ends_with(b"/"));
            self.check(&name, is_dir)?;
        }
        let keep = match kind {
            b'x' | b'L' => (size as usize).min(MAX_EXTENSION),
            _ => 0,
        };
        self.state = State::Data {
            left: size + padding(size) as u64,
            keep,
            kind,
            data: Vec::new(),
        };
        if size == 0 {
            self.extension(kind, Vec::new());
            self.state = State::Header(Vec::with_capacity(BLOCK));
        }
        Ok(())
    }

    fn extension(&mut self, kind: u8, data: Vec<u8>) {
        match kind {
            b'L' => self.long_name = Some(field(&data).to_vec()),
            b'x' => {
                let mut rest = &data[..];
                while let Some(space) = rest.iter().position(|c| *c == b' ') {
                    let len: usize = std::str::from_utf8(&rest[..space])
                        .ok()
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(0);
                    if len <= space || len > rest.len() {
                        break;
                    }
                    let record = &rest[space + 1..len - 1];
                    if let Some(eq) = record.iter().position(|c| *c == b'=') {
                        let value = &record[eq + 1..];
                        match &record[..eq] {
                            b"path" => self.pax_path = Some(value.to_vec()),
                            b"size" => {
                                self.pax_size =
                                    std::str::from_utf8(value).ok().and_then(|v| v.parse().ok())
                            }
                            _ => {}
                        }
                    }
                    rest = &rest[len..];
                }
            }
            _ => {}
        }
    }

    /// Refuses replacing a directory by a non-directory or the reverse.
    /// Entries the unpacker will refuse anyway (`..`, through a symlink)
    /// are left to it.
    fn check(&self, name: &[u8], is_dir: bool) -> Result<(), String> {
        let parts: Vec<&[u8]> = name
            .split(|c| *c == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        let Some((last, parents)) = parts.split_last() else {
            return Ok(());
        };
        if parts.contains(&&b".."[..]) || last.starts_with(b".wh.") {
            return Ok(());
        }
        let mut dir = match self.dest.try_clone() {
            Ok(d) => d,
            Err(_) => return Ok(()),
        };
        for p in parents {
            match dir.dir(OsStr::from_bytes(p)) {
                Ok(d) => dir = d,
                Err(_) => return Ok(()),
            }
        }
        let Ok(meta) = dir.lstat(OsStr::from_bytes(last)) else {
            return Ok(());
        };
        let base = self.dest_shown.trim_end_matches('/');
        let shown = format!("{base}/{}", String::from_utf8_lossy(&parts.join(&b"/"[..])));
        match (meta.is_dir(), is_dir) {
            (true, false) => Err(format!(
                "cannot overwrite directory {shown:?} with non-directory {:?}",
                self.dest_shown
            )),
            (false, true) => Err(format!(
                "cannot overwrite non-directory {shown:?} with directory {:?}",
                self.dest_shown
            )),
            _ => Ok(()),
        }
    }
}

impl<R: Read> Read for OverwriteCheck<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(message) = self.feed(&buf[..n]) {
            *self.refusal.borrow_mut() = Some(message.clone());
            return Err(io::Error::other(message));
        }
        Ok(n)
    }
}

/// A NUL-terminated header field.
fn field(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    &b[..end]
}

/// An octal header number, or GNU's base-256 form.
fn parse_number(b: &[u8]) -> u64 {
    if b[0] & 0x80 != 0 {
        return b[1..]
            .iter()
            .fold(u64::from(b[0] & 0x7f), |n, x| (n << 8) | u64::from(*x));
    }
    let text = String::from_utf8_lossy(field(b));
    u64::from_str_radix(text.trim_matches(|c: char| c == ' ' || c == '\0'), 8).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use servin_image::unpack::{unpack_layer, WhiteoutMode};
    use std::path::Path;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let long = "d".repeat(120);
        std::fs::create_dir_all(d.path().join("top/sub").join(&long)).unwrap();
        std::fs::write(d.path().join("top/a.txt"), "hello\n").unwrap();
        std::fs::write(
            d.path().join("top/sub").join(&long).join("f"),
            vec![7u8; 1000],
        )
        .unwrap();
        std::fs::hard_link(d.path().join("top/a.txt"), d.path().join("top/b.txt")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("top/link")).unwrap();
        d
    }

    #[test]
    fn a_written_tree_unpacks_the_same() {
        let src = tree();
        let root = Dir::open(src.path()).unwrap();
        let mut out = Vec::new();
        let mut w = TarWriter::new(&mut out);
        w.add(&root, Some(OsStr::new("top")), b"renamed").unwrap();
        w.finish().unwrap();
        assert_eq!(out.len() % BLOCK, 0);
        let dest = tempfile::tempdir().unwrap();
        unpack_layer(&out[..], dest.path(), WhiteoutMode::Apply, "t").unwrap();
        let got = dest.path().join("renamed");
        assert_eq!(
            std::fs::read_to_string(got.join("a.txt")).unwrap(),
            "hello\n"
        );
        assert_eq!(
            std::fs::read_to_string(got.join("b.txt")).unwrap(),
            "hello\n"
        );
        assert_eq!(
            std::fs::metadata(got.join("a.txt")).unwrap().ino(),
            std::fs::metadata(got.join("b.txt")).unwrap().ino()
        );
        assert_eq!(
            std::fs::read_link(got.join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        let long = got.join("sub").join("d".repeat(120)).join("f");
        assert_eq!(std::fs::read(long).unwrap(), vec![7u8; 1000]);
    }

    #[test]
    fn replacing_a_directory_by_a_file_is_refused_before_unpacking() {
        let src = tree();
        let root = Dir::open(src.path()).unwrap();
        let mut tar = Vec::new();
        let mut w = TarWriter::new(&mut tar);
        // `top/a.txt` becomes `sub` in the archive: a file over a directory.
        w.add(
            &root.dir(OsStr::new("top")).unwrap(),
            Some(OsStr::new("a.txt")),
            b"sub",
        )
        .unwrap();
        w.finish().unwrap();
        let dest = root.dir(OsStr::new("top")).unwrap();
        let refusal = Rc::new(RefCell::new(None));
        let check = OverwriteCheck::new(&tar[..], &dest, "/top".into(), true, refusal.clone());
        assert!(unpack_layer(check, &dest.path(), WhiteoutMode::Apply, "t").is_err());
        assert_eq!(
            refusal.take().unwrap(),
            r#"cannot overwrite directory "/top/sub" with non-directory "/top""#
        );
        assert!(src.path().join("top/sub").is_dir());
        let refusal = Rc::new(RefCell::new(None));
        let check = OverwriteCheck::new(&tar[..], &dest, "/top".into(), false, refusal.clone());
        unpack_layer(check, &dest.path(), WhiteoutMode::Apply, "t").unwrap();
        assert!(src.path().join("top/sub").is_file());
    }

    #[test]
    fn numbers_and_records() {
        assert_eq!(parse_number(b"00000001750\0"), 1000);
        assert_eq!(
            parse_number(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
            1 << 32
        );
        let h = Header {
            name: vec![b'n'; 200],
            link: Vec::new(),
            kind: b'0',
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            dev: (0, 0),
        };
        let pax = h.pax_records();
        assert!(
            pax.starts_with(b"210 path=nnn"),
            "{}",
            String::from_utf8_lossy(&pax)
        );
        assert_eq!(pax.len(), 210);
    }
}
