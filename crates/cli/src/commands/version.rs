//! `servin version`.

use anyhow::Result;
use chrono::DateTime;

use super::Ctx;
use crate::format::json::{StructValue, Value};
use crate::format::table::VERSION;
use crate::template::{print_value, Options, Template};
use crate::usage::{StatusError, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(hide = true)]
    args: Vec<String>,
}

/// Go's name for this machine's architecture (`amd64`, `arm64`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

pub async fn run(ctx: &Ctx, usage: &Usage, args: Args) -> Result<()> {
    usage.no_args(&args.args)?;
    let format = args.format.unwrap_or_default();
    let tmpl = match format.as_str() {
        "" => None,
        "json" => Some("{{json .}}"),
        f => Some(f),
    }
    .map(|f| Template::parse("version", f))
    .transpose()
    .map_err(|e| StatusError::fail(64, format!("template parsing error: {e}")))?;

    let (api_version, server) = match ctx.client().await {
        Ok(client) => {
            let server = client.get_raw("/version", &[]).await;
            (
                client.api_version(),
                server.and_then(|raw| Ok(Value::from_json(&raw)?)),
            )
        }
        Err(e) => (bollard::API_DEFAULT_VERSION.to_string(), Err(e)),
    };
    let (server, err) = match server {
        Ok(v) => (Some(with_engine_component(v)), None),
        Err(e) => (None, Some(e)),
    };
    let client = client_version(&api_version);
    let text = match tmpl {
        None => default_text(&client, server.as_ref()),
        Some(t) => {
            let data = Value::Struct(Box::new(StructValue {
                type_name: "system.versionInfo",
                fields: vec![
                    ("Client".into(), client),
                    ("Server".into(), server.unwrap_or(Value::Null)),
                ],
                sorted_json: false,
                json: None,
            }));
            match t.execute(&data, Options::default()) {
                Ok(text) => text,
                Err(e) => {
                    println!();
                    return Err(anyhow::Error::msg(e));
                }
            }
        }
    };
    print!("{}", VERSION.render(&(text + "\n")));
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn client_version(api_version: &str) -> Value {
    Value::Object(vec![
        ("Version".into(), Value::str(env!("CARGO_PKG_VERSION"))),
        ("ApiVersion".into(), Value::str(api_version)),
        (
            "DefaultAPIVersion".into(),
            Value::String(bollard::API_DEFAULT_VERSION.to_string()),
        ),
        ("Os".into(), Value::str(std::env::consts::OS)),
        ("Arch".into(), Value::str(go_arch())),
        ("Context".into(), Value::str("default")),
    ])
}

/// Docker reformats the engine's build time and, for daemons that list no
/// components, makes an "Engine" one from the top-level fields.
fn with_engine_component(mut server: Value) -> Value {
    let mut components = match server.get("Components") {
        Some(Value::Array(c)) => c.clone(),
        _ => Vec::new(),
    };
    let mut found = false;
    for c in components
        .iter_mut()
        .filter(|c| c.get_str("Name") == "Engine")
    {
        found = true;
        if let Some(details) = c.get("Details").cloned() {
            let mut details = details;
            let built = details.get_str("BuildTime").to_string();
            if !built.is_empty() {
                details.set("BuildTime", Value::String(reformat_date(&built)));
            }
            c.set("Details", details);
        }
    }
    if !found {
        let field = |k: &str| Value::str(server.get_str(k));
        let experimental = matches!(server.get("Experimental"), Some(Value::Bool(true)));
        components.push(Value::Object(vec![
            ("Name".into(), Value::str("Engine")),
            ("Version".into(), field("Version")),
            (
                "Details".into(),
                Value::Object(vec![
                    ("ApiVersion".into(), field("ApiVersion")),
                    ("MinAPIVersion".into(), field("MinAPIVersion")),
                    ("GitCommit".into(), field("GitCommit")),
                    ("GoVersion".into(), field("GoVersion")),
                    ("Os".into(), field("Os")),
                    ("Arch".into(), field("Arch")),
                    (
                        "BuildTime".into(),
                        Value::String(reformat_date(server.get_str("BuildTime"))),
                    ),
                    (
                        "Experimental".into(),
                        Value::String(experimental.to_string()),
                    ),
                ]),
            ),
        ]));
    }
    server.set("Components", Value::Array(components));
    server
}

/// RFC 3339 → Go's `time.ANSIC` ("Thu May  7 21:09:36 2026"); other text as is.
fn reformat_date(s: &str) -> String {
    DateTime::parse_from_rfc3339(s).map_or_else(
        |_| s.to_string(),
        |t| t.format("%a %b %e %H:%M:%S %Y").to_string(),
    )
}

/// Docker's default version template, as tab-separated text.
fn default_text(client: &Value, server: Option<&Value>) -> String {
    let mut t = String::from("Client:\n");
    let api = client.get_str("ApiVersion");
    let default_api = client.get_str("DefaultAPIVersion");
    t.push_str(&format!(" Version:\t{}\n", client.get_str("Version")));
    t.push_str(&format!(" API version:\t{api}"));
    if api != default_api {
        t.push_str(&format!(" (downgraded from {default_api})"));
    }
    t.push_str(&format!(
        "\n OS/Arch:\t{}/{}\n Context:\t{}",
        client.get_str("Os"),
        client.get_str("Arch"),
        client.get_str("Context")
    ));
    let Some(server) = server else {
        return t;
    };
    let platform = server
        .get("Platform")
        .map(|p| p.get_str("Name"))
        .unwrap_or_default();
    t.push_str("\n\nServer:");
    if !platform.is_empty() {
        t.push_str(&format!(" {platform}"));
    }
    let components = match server.get("Components") {
        Some(Value::Array(c)) => c.as_slice(),
        _ => &[],
    };
    for c in components {
        let name = c.get_str("Name");
        let details = c
            .get("Details")
            .cloned()
            .unwrap_or(Value::Object(Vec::new()));
        let d = |k: &str| match details.get(k) {
            Some(v) => print_value(v),
            None => String::new(),
        };
        t.push_str(&format!("\n {name}:"));
        if name == "Engine" {
            t.push_str(&format!(
                "\n  Version:\t{}\n  API version:\t{} (minimum version {})\n  Go version:\t{}\n  Git commit:\t{}\n  Built:\t{}\n  OS/Arch:\t{}/{}\n  Experimental:\t{}",
                c.get_str("Version"),
                d("ApiVersion"),
                d("MinAPIVersion"),
                d("GoVersion"),
                d("GitCommit"),
                d("BuildTime"),
                d("Os"),
                d("Arch"),
                d("Experimental")
            ));
        } else {
            t.push_str(&format!("\n  Version:\t{}", c.get_str("Version")));
            let mut keys: Vec<&str> = match &details {
                Value::Object(f) => f.iter().map(|(k, _)| k.as_str()).collect(),
                _ => Vec::new(),
            };
            keys.sort_unstable();
            for k in keys {
                t.push_str(&format!("\n  {k}:\t{}", d(k)));
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_output_like_docker() {
        let server = Value::from_json(br#"{"Platform":{"Name":""},"Components":[
            {"Name":"Engine","Version":"20.10.24","Details":{"ApiVersion":"1.41","Arch":"amd64","BuildTime":"2026-05-07T21:09:36.000000000+00:00","Experimental":"false","GitCommit":"5d6db84","GoVersion":"go1.19.8","MinAPIVersion":"1.12","Os":"linux"}},
            {"Name":"runc","Version":"1.1.5","Details":{"GitCommit":"g"}},
            {"Name":"docker-init","Version":"0.19.0","Details":{"GitCommit":""}}]}"#).unwrap();
        let client = client_version("1.41");
        let text =
            VERSION.render(&(default_text(&client, Some(&with_engine_component(server))) + "\n"));
        let want = format!(
            "Client:\n Version:           {}\n API version:       1.41 (downgraded from {})\n OS/Arch:           linux/{}\n Context:           default\n\nServer:\n Engine:\n  Version:          20.10.24\n  API version:      1.41 (minimum version 1.12)\n  Go version:       go1.19.8\n  Git commit:       5d6db84\n  Built:            Thu May  7 21:09:36 2026\n  OS/Arch:          linux/amd64\n  Experimental:     false\n runc:\n  Version:          1.1.5\n  GitCommit:        g\n docker-init:\n  Version:          0.19.0\n  GitCommit:        \n",
            env!("CARGO_PKG_VERSION"),
            bollard::API_DEFAULT_VERSION,
            go_arch()
        );
        assert_eq!(text, want);
    }

    #[test]
    fn engine_component_made_when_missing() {
        let server = Value::from_json(br#"{"Version":"0.1.0","ApiVersion":"1.45","MinAPIVersion":"1.24","Os":"linux","Arch":"amd64"}"#).unwrap();
        let s = with_engine_component(server);
        let engine = match s.get("Components") {
            Some(Value::Array(c)) => c[0].clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(engine.get_str("Version"), "0.1.0");
        assert_eq!(
            engine.get("Details").unwrap().get_str("Experimental"),
            "false"
        );
    }
}
