//! `servin-shim run STATE_DIR`: the per-container shim (see `servin_runtime::shim`).

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.as_slice() {
        [_, cmd, dir] if cmd == "run" => {
            let code = servin_runtime::shim::run(Path::new(dir));
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        _ => {
            eprintln!("usage: servin-shim run STATE_DIR");
            ExitCode::from(2)
        }
    }
}
