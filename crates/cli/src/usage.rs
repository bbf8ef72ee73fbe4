//! Usage errors and exit statuses worded as the docker CLI words them.

use std::fmt;

use clap::error::{ContextKind, ContextValue, ErrorKind};

pub const BIN: &str = "servin";

/// An error with a fixed exit status (docker's `cli.StatusError`).
#[derive(Debug)]
pub struct StatusError {
    pub code: i32,
    pub message: String,
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StatusError {}

impl StatusError {
    pub fn fail(code: i32, message: impl Into<String>) -> anyhow::Error {
        StatusError {
            code,
            message: message.into(),
        }
        .into()
    }
}

/// The user declined a prompt: exit 0 without a message.
#[derive(Debug)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// A command's path and usage line (`images [OPTIONS] [REPOSITORY[:TAG]]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub path: &'static str,
    pub line: &'static str,
    /// `servin LINE`, for clap's help.
    pub full: &'static str,
}

macro_rules! usages {
    ($($name:ident = $path:literal, $line:literal;)*) => {
        $(pub const $name: Usage = Usage { path: $path, line: $line, full: concat!("servin ", $line) };)*
        const ALL: &[Usage] = &[$($name),*];
    };
}

usages! {
    ROOT = "", "[OPTIONS] COMMAND";
    IMAGE = "image", "image";
    IMAGES = "images", "images [OPTIONS] [REPOSITORY[:TAG]]";
    IMAGE_LS = "image ls", "image ls [OPTIONS] [REPOSITORY[:TAG]]";
    PULL = "pull", "pull [OPTIONS] NAME[:TAG|@DIGEST]";
    IMAGE_PULL = "image pull", "image pull [OPTIONS] NAME[:TAG|@DIGEST]";
    PUSH = "push", "push [OPTIONS] NAME[:TAG]";
    IMAGE_PUSH = "image push", "image push [OPTIONS] NAME[:TAG]";
    TAG = "tag", "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]";
    IMAGE_TAG = "image tag", "image tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]";
    RMI = "rmi", "rmi [OPTIONS] IMAGE [IMAGE...]";
    IMAGE_RM = "image rm", "image rm [OPTIONS] IMAGE [IMAGE...]";
    LOAD = "load", "load [OPTIONS]";
    IMAGE_LOAD = "image load", "image load [OPTIONS]";
    SAVE = "save", "save [OPTIONS] IMAGE [IMAGE...]";
    IMAGE_SAVE = "image save", "image save [OPTIONS] IMAGE [IMAGE...]";
    IMPORT = "import", "import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]";
    IMAGE_IMPORT = "image import", "image import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]";
    INSPECT = "inspect", "inspect [OPTIONS] NAME|ID [NAME|ID...]";
    IMAGE_INSPECT = "image inspect", "image inspect [OPTIONS] IMAGE [IMAGE...]";
    IMAGE_PRUNE = "image prune", "image prune [OPTIONS]";
    INFO = "info", "info [OPTIONS]";
    VERSION = "version", "version [OPTIONS]";
    CONTAINER = "container", "container";
    RUN = "run", "run [OPTIONS] IMAGE [COMMAND] [ARG...]";
    CONTAINER_RUN = "container run", "container run [OPTIONS] IMAGE [COMMAND] [ARG...]";
    CREATE = "create", "create [OPTIONS] IMAGE [COMMAND] [ARG...]";
    CONTAINER_CREATE = "container create", "container create [OPTIONS] IMAGE [COMMAND] [ARG...]";
    START = "start", "start [OPTIONS] CONTAINER [CONTAINER...]";
    CONTAINER_START = "container start", "container start [OPTIONS] CONTAINER [CONTAINER...]";
    STOP = "stop", "stop [OPTIONS] CONTAINER [CONTAINER...]";
    CONTAINER_STOP = "container stop", "container stop [OPTIONS] CONTAINER [CONTAINER...]";
    KILL = "kill", "kill [OPTIONS] CONTAINER [CONTAINER...]";
    CONTAINER_KILL = "container kill", "container kill [OPTIONS] CONTAINER [CONTAINER...]";
    RESTART = "restart", "restart [OPTIONS] CONTAINER [CONTAINER...]";
    CONTAINER_RESTART = "container restart", "container restart [OPTIONS] CONTAINER [CONTAINER...]";
    PAUSE = "pause", "pause CONTAINER [CONTAINER...]";
    CONTAINER_PAUSE = "container pause", "container pause CONTAINER [CONTAINER...]";
    UNPAUSE = "unpause", "unpause CONTAINER [CONTAINER...]";
    CONTAINER_UNPAUSE = "container unpause", "container unpause CONTAINER [CONTAINER...]";
    RM = "rm", "rm [OPTIONS] CONTAINER [CONTAINER...]";
    CONTAINER_RM = "container rm", "container rm [OPTIONS] CONTAINER [CONTAINER...]";
    WAIT = "wait", "wait CONTAINER [CONTAINER...]";
    CONTAINER_WAIT = "container wait", "container wait CONTAINER [CONTAINER...]";
    LOGS = "logs", "logs [OPTIONS] CONTAINER";
    CONTAINER_LOGS = "container logs", "container logs [OPTIONS] CONTAINER";
    ATTACH = "attach", "attach [OPTIONS] CONTAINER";
    CONTAINER_ATTACH = "container attach", "container attach [OPTIONS] CONTAINER";
    EXEC = "exec", "exec [OPTIONS] CONTAINER COMMAND [ARG...]";
    CONTAINER_EXEC = "container exec", "container exec [OPTIONS] CONTAINER COMMAND [ARG...]";
    PS = "ps", "ps [OPTIONS]";
    CONTAINER_LS = "container ls", "container ls [OPTIONS]";
    CONTAINER_INSPECT = "container inspect", "container inspect [OPTIONS] CONTAINER [CONTAINER...]";
    TOP = "top", "top CONTAINER [ps OPTIONS]";
    CONTAINER_TOP = "container top", "container top CONTAINER [ps OPTIONS]";
    STATS = "stats", "stats [OPTIONS] [CONTAINER...]";
    CONTAINER_STATS = "container stats", "container stats [OPTIONS] [CONTAINER...]";
    EVENTS = "events", "events [OPTIONS]";
    CP = "cp", "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tservin cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH";
    CONTAINER_CP = "container cp", "container cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tservin cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH";
    PORT = "port", "port CONTAINER [PRIVATE_PORT[/PROTO]]";
    CONTAINER_PORT = "container port", "container port CONTAINER [PRIVATE_PORT[/PROTO]]";
    RENAME = "rename", "rename CONTAINER NEW_NAME";
    CONTAINER_RENAME = "container rename", "container rename CONTAINER NEW_NAME";
    CONTAINER_PRUNE = "container prune", "container prune [OPTIONS]";
    VOLUME = "volume", "volume COMMAND";
    VOLUME_CREATE = "volume create", "volume create [OPTIONS] [VOLUME]";
    VOLUME_LS = "volume ls", "volume ls [OPTIONS]";
    VOLUME_INSPECT = "volume inspect", "volume inspect [OPTIONS] VOLUME [VOLUME...]";
    VOLUME_RM = "volume rm", "volume rm [OPTIONS] VOLUME [VOLUME...]";
    VOLUME_PRUNE = "volume prune", "volume prune [OPTIONS]";
    NETWORK = "network", "network";
    NETWORK_CONNECT = "network connect", "network connect [OPTIONS] NETWORK CONTAINER";
    NETWORK_CREATE = "network create", "network create [OPTIONS] NETWORK";
    NETWORK_DISCONNECT = "network disconnect", "network disconnect [OPTIONS] NETWORK CONTAINER";
    NETWORK_INSPECT = "network inspect", "network inspect [OPTIONS] NETWORK [NETWORK...]";
    NETWORK_LS = "network ls", "network ls [OPTIONS]";
    NETWORK_PRUNE = "network prune", "network prune [OPTIONS]";
    NETWORK_RM = "network rm", "network rm NETWORK [NETWORK...]";
}

/// Command groups whose second word names the command.
const GROUPS: &[&str] = &["image", "container", "volume", "network"];

impl Usage {
    fn command(&self) -> String {
        if self.path.is_empty() {
            BIN.to_string()
        } else {
            format!("{BIN} {}", self.path)
        }
    }

    fn fail(&self, what: &str, see: &str) -> anyhow::Error {
        StatusError::fail(
            1,
            format!(
                "{BIN}: '{cmd}' {what}\n\nUsage:  {BIN} {line}\n\n{see} '{cmd} --help' for more information",
                cmd = self.command(),
                line = self.line
            ),
        )
    }

    pub fn exact_args(&self, args: &[String], n: usize) -> anyhow::Result<()> {
        if args.len() == n {
            return Ok(());
        }
        Err(self.fail(&format!("requires {n} {}", plural(n)), "Run"))
    }

    pub fn min_args(&self, args: &[String], n: usize) -> anyhow::Result<()> {
        if args.len() >= n {
            return Ok(());
        }
        Err(self.fail(&format!("requires at least {n} {}", plural(n)), "See"))
    }

    pub fn max_args(&self, args: &[String], n: usize) -> anyhow::Result<()> {
        if args.len() <= n {
            return Ok(());
        }
        Err(self.fail(&format!("requires at most {n} {}", plural(n)), "Run"))
    }

    pub fn range_args(&self, args: &[String], min: usize, max: usize) -> anyhow::Result<()> {
        if (min..=max).contains(&args.len()) {
            return Ok(());
        }
        Err(self.fail(
            &format!("requires at least {min} and at most {max} {}", plural(max)),
            "Run",
        ))
    }

    /// Docker's `withHelp`: `servin: ERR` and a pointer to `COMMAND --help`,
    /// exit 125 (how `run` and `create` report their errors).
    pub fn with_help(&self, message: &str) -> anyhow::Error {
        let verb = self.path.rsplit(' ').next().unwrap_or(self.path);
        StatusError::fail(
            125,
            format!("{BIN}: {message}\n\nRun '{BIN} {verb} --help' for more information"),
        )
    }

    /// Positionals that take dashes (`run IMAGE -c x`, `cp - c:/x`) let
    /// clap pass an unknown flag through as one; report it as pflag would.
    pub fn reject_flag(&self, arg: Option<&String>) -> anyhow::Result<()> {
        let Some(flag) = arg.filter(|a| a.starts_with('-') && a.len() > 1) else {
            return Ok(());
        };
        let message = match flag.strip_prefix("--") {
            Some(long) => format!("unknown flag: --{}", long.split('=').next().unwrap_or(long)),
            None => {
                let c = flag.chars().nth(1).unwrap_or('?');
                format!("unknown shorthand flag: '{c}' in {flag}")
            }
        };
        Err(self.flag_error(&message))
    }

    pub fn no_args(&self, args: &[String]) -> anyhow::Result<()> {
        if args.is_empty() {
            return Ok(());
        }
        Err(self.fail("accepts no arguments", "Run"))
    }

    /// A bad flag or flag value: exit 125, with the usage line.
    pub fn flag_error(&self, message: &str) -> anyhow::Error {
        StatusError::fail(
            125,
            format!(
                "{message}\n\nUsage:  {BIN} {}\n\nRun '{} --help' for more information",
                self.line,
                self.command()
            ),
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "argument"
    } else {
        "arguments"
    }
}

/// The command an argument vector names (`image ls`), skipping global flags.
pub fn usage_for(argv: &[String]) -> Usage {
    let mut words: Vec<&str> = Vec::new();
    let mut i = 1;
    while i < argv.len() && words.len() < 2 {
        let a = argv[i].as_str();
        i += 1;
        if words.is_empty() && (a == "-H" || a == "--host") {
            i += 1;
        } else if !a.starts_with('-') || a == "-" {
            words.push(a);
            if !GROUPS.contains(&words[0]) {
                break;
            }
        }
    }
    let path = match words.as_slice() {
        ["image", sub] => match *sub {
            "list" => "image ls".to_string(),
            "remove" | "rmi" => "image rm".to_string(),
            s => format!("image {s}"),
        },
        ["container", sub] => match *sub {
            "list" | "ps" => "container ls".to_string(),
            "remove" => "container rm".to_string(),
            s => format!("container {s}"),
        },
        ["volume", sub] => match *sub {
            "list" => "volume ls".to_string(),
            "remove" => "volume rm".to_string(),
            s => format!("volume {s}"),
        },
        ["network", sub] => match *sub {
            "list" => "network ls".to_string(),
            "remove" => "network rm".to_string(),
            s => format!("network {s}"),
        },
        [w, ..] => w.to_string(),
        [] => String::new(),
    };
    ALL.iter()
        .copied()
        .find(|u| u.path == path)
        .or_else(|| {
            ALL.iter()
                .copied()
                .find(|u| Some(u.path) == words.first().copied())
        })
        .unwrap_or(ROOT)
}

/// How a clap parse error ends the process.
pub enum ClapOutcome {
    /// Help or version text for stdout, exit 0.
    Print(String),
    /// An error for stderr with this exit status.
    Fail(i32, String),
}

/// Rewords clap's errors as pflag/cobra would print them.
pub fn from_clap(err: &clap::Error, argv: &[String]) -> ClapOutcome {
    let usage = usage_for(argv);
    let context = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.first().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            ClapOutcome::Print(err.render().to_string())
        }
        ErrorKind::InvalidSubcommand => {
            let sub = context(ContextKind::InvalidSubcommand);
            let message = if usage.path.is_empty() {
                format!("{BIN}: unknown command: {BIN} {sub}\n\nRun '{BIN} --help' for more information")
            } else {
                format!(
                    "{BIN}: unknown command: {cmd} {sub}\n\nUsage:  {BIN} {line}\n\nRun '{cmd} --help' for more information",
                    cmd = usage.command(),
                    line = usage.line
                )
            };
            ClapOutcome::Fail(1, message)
        }
        ErrorKind::UnknownArgument => {
            let arg = context(ContextKind::InvalidArg);
            let message = match arg.strip_prefix("--") {
                Some(long) => format!("unknown flag: --{}", long.split('=').next().unwrap_or(long)),
                None => {
                    let c = arg.trim_start_matches('-').chars().next().unwrap_or('?');
                    format!("unknown shorthand flag: '{c}' in -{c}")
                }
            };
            ClapOutcome::Fail(125, flag_message(&usage, &message))
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals
            if context(ContextKind::InvalidValue).is_empty() =>
        {
            let arg = context(ContextKind::InvalidArg);
            ClapOutcome::Fail(125, flag_message(&usage, &needs_argument(&arg, argv)))
        }
        _ => {
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            let message = first.strip_prefix("error: ").unwrap_or(first).to_string();
            ClapOutcome::Fail(125, flag_message(&usage, &message))
        }
    }
}

fn flag_message(usage: &Usage, message: &str) -> String {
    match usage.flag_error(message).downcast::<StatusError>() {
        Ok(e) => e.message,
        Err(e) => e.to_string(),
    }
}

/// pflag's "flag needs an argument" for clap's `--format <FORMAT>`: short
/// when the value-less flag was typed as one (the last argument).
fn needs_argument(arg: &str, argv: &[String]) -> String {
    let long = arg
        .split([',', ' '])
        .find_map(|w| w.strip_prefix("--"))
        .unwrap_or_default();
    match argv.last() {
        Some(last) if last.starts_with('-') && !last.starts_with("--") && last.len() > 1 => {
            let c = last.chars().last().unwrap_or('?');
            format!("flag needs an argument: '{c}' in -{c}")
        }
        _ => format!("flag needs an argument: --{long}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn finds_the_command() {
        assert_eq!(usage_for(&argv("servin images -a")), IMAGES);
        assert_eq!(
            usage_for(&argv("servin -H unix:///x image list -q")),
            IMAGE_LS
        );
        assert_eq!(usage_for(&argv("servin image remove x")), IMAGE_RM);
        assert_eq!(usage_for(&argv("servin image")), IMAGE);
        assert_eq!(usage_for(&argv("servin image bogus")), IMAGE);
        assert_eq!(usage_for(&argv("servin")), ROOT);
    }

    #[test]
    fn argument_count_messages() {
        let e = IMAGES.max_args(&argv("a b"), 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "servin: 'servin images' requires at most 1 argument\n\nUsage:  servin images [OPTIONS] [REPOSITORY[:TAG]]\n\nRun 'servin images --help' for more information"
        );
        let e = RMI.min_args(&[], 1).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("servin: 'servin rmi' requires at least 1 argument\n"));
        assert!(e
            .to_string()
            .ends_with("See 'servin rmi --help' for more information"));
        let e = TAG.exact_args(&argv("a"), 2).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("servin: 'servin tag' requires 2 arguments\n"));
        assert_eq!(e.downcast_ref::<StatusError>().unwrap().code, 1);
    }

    #[test]
    fn flags_taken_for_positionals() {
        assert!(RUN.reject_flag(Some(&"busybox".to_string())).is_ok());
        assert!(RUN.reject_flag(Some(&"-".to_string())).is_ok());
        let e = RUN.reject_flag(Some(&"--bogus=1".to_string())).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("unknown flag: --bogus\n\nUsage:  servin run [OPTIONS] IMAGE"));
        let e = EXEC.reject_flag(Some(&"-Z".to_string())).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("unknown shorthand flag: 'Z' in -Z\n"));
        assert_eq!(e.downcast_ref::<StatusError>().unwrap().code, 125);
    }

    #[test]
    fn group_commands() {
        assert_eq!(usage_for(&argv("servin container list -q")), CONTAINER_LS);
        assert_eq!(usage_for(&argv("servin container remove x")), CONTAINER_RM);
        assert_eq!(usage_for(&argv("servin volume list")), VOLUME_LS);
        assert_eq!(usage_for(&argv("servin container")), CONTAINER);
        let e = PORT.range_args(&[], 1, 2).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("servin: 'servin port' requires at least 1 and at most 2 arguments\n"));
        let e = RUN.with_help("boom");
        assert_eq!(
            e.to_string(),
            "servin: boom\n\nRun 'servin run --help' for more information"
        );
    }

    #[test]
    fn flag_needs_argument() {
        assert_eq!(
            needs_argument("--format <FORMAT>", &argv("servin images --format")),
            "flag needs an argument: --format"
        );
        assert_eq!(
            needs_argument("--filter <FILTER>", &argv("servin images -qf")),
            "flag needs an argument: 'f' in -f"
        );
    }
}
