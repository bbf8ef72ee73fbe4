//! `--link` values, as Docker's CLI checks them and its daemon reads them.

/// `NAME`, `NAME:ALIAS`, or the form inspect shows (`/NAME:/PARENT/ALIAS`):
/// (name, alias), with Docker's messages for what is not a link.
pub fn parse_link(link: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = link.split(':').collect();
    let (name, alias) = match parts[..] {
        [""] | [] => return Err("empty string specified for links".into()),
        [one] => (one, one),
        [name, alias] if name.starts_with('/') => {
            (&name[1..], alias.rsplit('/').next().unwrap_or(alias))
        }
        [name, alias] => (name, alias),
        _ => return Err(format!("bad format for links: {link}")),
    };
    let name = name.strip_prefix('/').unwrap_or(name);
    if name.is_empty() || alias.is_empty() {
        return Err(format!("bad format for links: {link}"));
    }
    Ok((name.to_string(), alias.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_as_dockers_cli_and_daemon_write_them() {
        assert_eq!(parse_link("db"), Ok(("db".into(), "db".into())));
        assert_eq!(
            parse_link("db:database"),
            Ok(("db".into(), "database".into()))
        );
        assert_eq!(
            parse_link("/db:/web/database"),
            Ok(("db".into(), "database".into()))
        );
        assert_eq!(
            parse_link("a:b:c"),
            Err("bad format for links: a:b:c".into())
        );
        assert_eq!(
            parse_link(""),
            Err("empty string specified for links".into())
        );
        assert!(parse_link(":x").is_err());
    }
}
