//! `servin-guest-image`: writes a guest image directory (used by
//! `scripts/build-guest`).
//!
//! ```text
//! servin-guest-image --kernel-root DIR --init PATH --out DIR
//!     [--file SRC=DEST[:MODE]]... [--symlink DEST=TARGET]...
//! ```

use std::path::PathBuf;

use servin_guest::image::{build, ImageSpec};

fn usage() -> ! {
    eprintln!(
        "usage: servin-guest-image --kernel-root DIR --init PATH --out DIR \
         [--file SRC=DEST[:MODE]]... [--symlink DEST=TARGET]..."
    );
    std::process::exit(2)
}

fn main() {
    let mut spec = ImageSpec::default();
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--kernel-root" => spec.kernel_root = PathBuf::from(value()),
            "--init" => spec.init = PathBuf::from(value()),
            "--out" => out = Some(PathBuf::from(value())),
            "--file" => {
                let v = value();
                let (src, rest) = v.split_once('=').unwrap_or_else(|| usage());
                let (dest, mode) = match rest.rsplit_once(':') {
                    Some((d, m)) => (d, u32::from_str_radix(m, 8).unwrap_or_else(|_| usage())),
                    None => (rest, 0o755),
                };
                spec.files.push((
                    PathBuf::from(src),
                    dest.trim_start_matches('/').into(),
                    mode,
                ));
            }
            "--symlink" => {
                let v = value();
                let (dest, target) = v.split_once('=').unwrap_or_else(|| usage());
                spec.symlinks
                    .push((dest.trim_start_matches('/').into(), target.into()));
            }
            _ => usage(),
        }
    }
    let Some(out) = out else { usage() };
    if spec.kernel_root.as_os_str().is_empty() || spec.init.as_os_str().is_empty() {
        usage();
    }
    match build(&spec, &out) {
        Ok(b) => {
            let what = if b.written { "wrote" } else { "up to date:" };
            println!(
                "{what} {} (version {}, initramfs {} bytes, system disk {} bytes)",
                out.display(),
                b.version,
                b.initramfs_size,
                b.system_size
            );
        }
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            eprintln!("servin-guest-image: {msg}");
            std::process::exit(1);
        }
    }
}
