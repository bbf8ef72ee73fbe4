//! `-v`, `--mount` and `--tmpfs`, parsed as docker parses them.

use std::collections::BTreeMap;
use std::path::Path;

use super::body::{BindOptions, Driver, ImageOptions, Mount, TmpfsOptions, VolumeOptions};
use super::units::{parse_bool, ram_in_bytes};

/// What `-v` specs become: host binds, and anonymous volumes by target.
#[derive(Debug, Default, PartialEq)]
pub struct Volumes {
    pub binds: Vec<String>,
    pub anonymous: Vec<String>,
}

/// Docker's `loader.ParseVolume` result, as far as `-v` needs it.
#[derive(Debug, Default, PartialEq)]
struct VolumeSpec {
    source: String,
    target: String,
    is_bind: bool,
}

/// Splits each `-v` spec into a bind (it names a source) or an anonymous
/// volume, making relative `./host` paths absolute as docker does.
pub fn parse_volumes(specs: &[String]) -> Result<Volumes, String> {
    let mut out = Volumes::default();
    for spec in specs {
        let parsed = parse_volume(spec)?;
        if parsed.source.is_empty() {
            if !out.anonymous.contains(spec) {
                out.anonymous.push(spec.clone());
            }
            continue;
        }
        let mut bind = spec.clone();
        if parsed.is_bind {
            if let Some((host, target)) = spec.split_once(':') {
                let mut host = host.to_string();
                if !Path::new(&host).is_absolute() && host.starts_with('.') {
                    if let Some(abs) = absolute(&host) {
                        host = abs;
                    }
                }
                bind = format!("{host}:{target}");
            }
        }
        if !out.binds.contains(&bind) {
            out.binds.push(bind);
        }
    }
    Ok(out)
}

fn absolute(path: &str) -> Option<String> {
    let joined = std::env::current_dir().ok()?.join(path);
    Some(clean_path(&joined.to_string_lossy()))
}

/// Go's `path.Clean` for absolute paths.
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

fn parse_volume(spec: &str) -> Result<VolumeSpec, String> {
    let mut volume = VolumeSpec::default();
    let chars: Vec<char> = spec.chars().collect();
    match chars.len() {
        0 => return Err("invalid empty volume spec".into()),
        1 | 2 => {
            volume.target = spec.to_string();
            return Ok(volume);
        }
        _ => {}
    }
    let mut buffer: Vec<char> = Vec::new();
    let mut iter = chars.iter().map(|c| Some(*c)).chain(std::iter::once(None));
    for c in iter.by_ref() {
        let windows_drive = c == Some(':') && buffer.len() == 1 && buffer[0].is_alphabetic();
        if windows_drive {
            buffer.push(':');
        } else if c == Some(':') || c.is_none() {
            if let Err(e) = populate(c.is_none(), &buffer, &mut volume) {
                return Err(format!("invalid spec: {spec}: {e}"));
            }
            buffer.clear();
        } else if let Some(c) = c {
            buffer.push(c);
        }
    }
    volume.is_bind = !volume.source.is_empty() && is_file_path(&volume.source);
    Ok(volume)
}

fn populate(end: bool, buffer: &[char], volume: &mut VolumeSpec) -> Result<(), &'static str> {
    let text: String = buffer.iter().collect();
    if buffer.is_empty() {
        return Err("empty section between colons");
    }
    if volume.source.is_empty() && end {
        volume.target = text;
    } else if volume.source.is_empty() {
        volume.source = text;
    } else if volume.target.is_empty() {
        volume.target = text;
    } else if !end {
        return Err("too many colons");
    }
    Ok(())
}

fn is_file_path(source: &str) -> bool {
    if source.starts_with(['.', '/', '~']) {
        return true;
    }
    let chars: Vec<char> = source.chars().collect();
    if chars.len() == 1 {
        return false;
    }
    source.starts_with("\\\\") || (chars[1] == ':' && chars[0].is_alphabetic())
}

/// `--tmpfs /run:size=1m` → `{"/run": "size=1m"}`.
pub fn parse_tmpfs(specs: &[String]) -> BTreeMap<String, String> {
    specs
        .iter()
        .map(|t| match t.split_once(':') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (t.clone(), String::new()),
        })
        .collect()
}

/// One `--mount` value (docker's `opts.MountOpt.Set`).
pub fn parse_mount(value: &str) -> Result<Mount, String> {
    let fields = csv_fields(value)?;
    let mut m = Mount {
        r#type: "volume".into(),
        ..Default::default()
    };
    let invalid = |key: &str, val: &str| format!("invalid value for {key}: {val}");
    for field in &fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let Some(val) = val else {
            match key.as_str() {
                "readonly" | "ro" => m.read_only = true,
                "volume-nocopy" => volume_options(&mut m).no_copy = true,
                "bind-nonrecursive" => {
                    m.bind_options
                        .get_or_insert_with(Default::default)
                        .non_recursive = true
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        match key.as_str() {
            "type" => m.r#type = val.to_lowercase(),
            "source" | "src" => {
                m.source = val.to_string();
                if !Path::new(val).is_absolute() && val.starts_with('.') {
                    if let Some(abs) = absolute(val) {
                        m.source = abs;
                    }
                }
            }
            "target" | "dst" | "destination" => m.target = val.to_string(),
            "readonly" | "ro" => m.read_only = parse_bool(val).map_err(|_| invalid(&key, val))?,
            "consistency" => m.consistency = val.to_lowercase(),
            "bind-propagation" => {
                m.bind_options
                    .get_or_insert_with(Default::default)
                    .propagation = val.to_lowercase()
            }
            "bind-nonrecursive" => {
                m.bind_options
                    .get_or_insert_with(Default::default)
                    .non_recursive = parse_bool(val).map_err(|_| invalid(&key, val))?
            }
            "bind-recursive" => {
                let b: &mut BindOptions = m.bind_options.get_or_insert_with(Default::default);
                match val {
                    "enabled" => {}
                    "disabled" => b.non_recursive = true,
                    "writable" => b.read_only_non_recursive = true,
                    "readonly" => b.read_only_force_recursive = true,
                    _ => {
                        return Err(format!(
                            "invalid value for {key}: {val} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
                        ))
                    }
                }
            }
            "volume-subpath" => volume_options(&mut m).subpath = val.to_string(),
            "volume-nocopy" => {
                volume_options(&mut m).no_copy = parse_bool(val)
                    .map_err(|_| format!("invalid value for volume-nocopy: {val}"))?
            }
            "volume-label" => set_kv(&mut volume_options(&mut m).labels, val),
            "volume-driver" => driver(&mut m).name = val.to_string(),
            "volume-opt" => set_kv(&mut driver(&mut m).options, val),
            "image-subpath" => {
                m.image_options
                    .get_or_insert_with(ImageOptions::default)
                    .subpath = val.to_string()
            }
            "tmpfs-size" => {
                let size = ram_in_bytes(val).map_err(|_| invalid(&key, val))?;
                m.tmpfs_options
                    .get_or_insert_with(TmpfsOptions::default)
                    .size_bytes = size;
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(val, 8).map_err(|_| invalid(&key, val))?;
                m.tmpfs_options
                    .get_or_insert_with(TmpfsOptions::default)
                    .mode = mode;
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if m.r#type.is_empty() {
        return Err("type is required".into());
    }
    if m.target.is_empty() {
        return Err("target is required".into());
    }
    let mix = |prefix: &str| {
        format!(
            "cannot mix '{prefix}-*' options with mount type '{}'",
            m.r#type
        )
    };
    if m.volume_options.is_some() && m.r#type != "volume" {
        return Err(mix("volume"));
    }
    if m.image_options.is_some() && m.r#type != "image" {
        return Err(mix("image"));
    }
    if m.bind_options.is_some() && m.r#type != "bind" {
        return Err(mix("bind"));
    }
    if m.tmpfs_options.is_some() && m.r#type != "tmpfs" {
        return Err(mix("tmpfs"));
    }
    if let Some(b) = &m.bind_options {
        if b.read_only_non_recursive && !m.read_only {
            return Err("option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction".into());
        }
        if b.read_only_force_recursive {
            if !m.read_only {
                return Err("option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction".into());
            }
            if b.propagation != "rprivate" {
                return Err("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction".into());
            }
        }
    }
    Ok(m)
}

fn volume_options(m: &mut Mount) -> &mut VolumeOptions {
    let v = m.volume_options.get_or_insert_with(VolumeOptions::default);
    v.driver_config.get_or_insert_with(Driver::default);
    v
}

fn driver(m: &mut Mount) -> &mut Driver {
    volume_options(m)
        .driver_config
        .get_or_insert_with(Driver::default)
}

fn set_kv(map: &mut BTreeMap<String, String>, value: &str) {
    let (k, v) = value.split_once('=').unwrap_or((value, ""));
    if !k.is_empty() {
        map.insert(k.to_string(), v.to_string());
    }
}

/// One line of Go's `encoding/csv` (comma-separated, `"` quoting).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
                continue;
            }
            '"' if at_start => quoted = true,
            '"' => {
                return Err(format!(
                    "parse error on line 1, column {}: bare \" in non-quoted-field",
                    field.len() + 1
                ))
            }
            c => field.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err("extraneous or missing \" in quoted-field".into());
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn volume_specs() {
        let v = parse_volumes(&strings(&[
            "/tmp:/data",
            "/tmp:/ro:ro",
            "named:/vol",
            "/anon",
            "/tmp:/data",
        ]))
        .unwrap();
        assert_eq!(
            v.binds,
            strings(&["/tmp:/data", "/tmp:/ro:ro", "named:/vol"])
        );
        assert_eq!(v.anonymous, strings(&["/anon"]));
        let cwd = std::env::current_dir().unwrap();
        let v = parse_volumes(&strings(&["./x:/x"])).unwrap();
        assert_eq!(v.binds, vec![format!("{}/x:/x", cwd.display())]);
        assert_eq!(
            parse_volumes(&strings(&["/a::/b"])).unwrap_err(),
            "invalid spec: /a::/b: empty section between colons"
        );
        assert_eq!(
            parse_volumes(&strings(&["/a:/b:ro:x"])).unwrap_err(),
            "invalid spec: /a:/b:ro:x: too many colons"
        );
        assert_eq!(
            parse_volumes(&strings(&[""])).unwrap_err(),
            "invalid empty volume spec"
        );
    }

    #[test]
    fn mount_specs() {
        let m = parse_mount("type=bind,src=/tmp,dst=/m,readonly").unwrap();
        assert_eq!(m.r#type, "bind");
        assert!(m.read_only);
        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m").unwrap();
        assert_eq!(m.tmpfs_options.unwrap().size_bytes, 1 << 20);
        let m = parse_mount("src=v,dst=/v,volume-label=a=b").unwrap();
        assert_eq!(m.r#type, "volume");
        assert_eq!(m.volume_options.unwrap().labels["a"], "b");
        assert_eq!(
            parse_mount("type=bind,src=/x").unwrap_err(),
            "target is required"
        );
        assert_eq!(
            parse_mount("type=bind,dst=/x,bogus=1").unwrap_err(),
            "unexpected key 'bogus' in 'bogus=1'"
        );
        assert_eq!(
            parse_mount("type=volume,dst=/x,tmpfs-size=1m").unwrap_err(),
            "cannot mix 'tmpfs-*' options with mount type 'volume'"
        );
        assert_eq!(
            parse_mount("dst=/x,what").unwrap_err(),
            "invalid field 'what' must be a key=value pair"
        );
        let m = parse_mount("\"type=bind\",src=/a,dst=/b").unwrap();
        assert_eq!(m.r#type, "bind");
    }

    #[test]
    fn tmpfs_specs() {
        let t = parse_tmpfs(&strings(&["/run:size=1m", "/x"]));
        assert_eq!(t["/run"], "size=1m");
        assert_eq!(t["/x"], "");
    }
}
