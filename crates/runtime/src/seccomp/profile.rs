//! Docker's seccomp profile format (what `--security-opt seccomp=FILE`
//! sends) and its translation into the OCI `linux.seccomp` object for one
//! container: rules are kept or dropped by the container's capabilities,
//! the host's architecture and kernel version, as Docker does.
//!
//! Docker's decoder ignores fields it does not know; so does this one, so
//! that profiles written for newer Docker versions still load.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::ProfileError;

/// A profile in Docker's format.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(default)]
    pub default_action: String,
    pub default_errno_ret: Option<u32>,
    pub architectures: Option<Vec<String>>,
    pub arch_map: Option<Vec<ArchMap>>,
    pub syscalls: Option<Vec<Rule>>,
    pub flags: Option<Vec<String>>,
    pub listener_path: Option<String>,
}

/// The architectures a filter covers when the host is `architecture`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    pub sub_architectures: Option<Vec<String>>,
}

/// One rule: an action for some syscalls, maybe only for some arguments,
/// kept only when `includes` holds and `excludes` does not.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub name: String,
    pub names: Option<Vec<String>>,
    pub action: String,
    pub errno_ret: Option<u32>,
    pub args: Option<Vec<Arg>>,
    pub includes: Option<Filter>,
    pub excludes: Option<Filter>,
}

/// A condition on the container: all listed capabilities (every one must
/// be held for `includes`, any one for `excludes`), the host architecture
/// (Docker's names: `amd64`, `x86`, `arm64`, `arm`, ...), a kernel version.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub caps: Option<Vec<String>>,
    pub arches: Option<Vec<String>>,
    pub min_kernel: Option<String>,
}

/// A comparison of one syscall argument.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// What a profile is applied to.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// Docker's name of the host architecture (`amd64`, `arm64`, ...).
    pub arch: &'a str,
    /// The container's capabilities, `CAP_*`.
    pub caps: &'a [String],
    /// The host kernel's version.
    pub kernel: (u32, u32, u32),
}

const ACTIONS: [&str; 9] = [
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

const OPERATORS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

const ARCHES: [&str; 24] = [
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

const FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// The seccomp architecture of a host whose Docker arch name is `arch`.
fn seccomp_arch(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "SCMP_ARCH_X86_64",
        "x86" => "SCMP_ARCH_X86",
        "x32" => "SCMP_ARCH_X32",
        "arm64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "s390x" => "SCMP_ARCH_S390X",
        "s390" => "SCMP_ARCH_S390",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        _ => return None,
    })
}

/// `"4.8"`, `"5.10.2"` → (major, minor, patch).
fn parse_kernel(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.trim().splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = match parts.next() {
        Some(p) => {
            let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().unwrap_or(0)
        }
        None => 0,
    };
    Some((major, minor, patch))
}

/// The running kernel's version from `/proc/sys/kernel/osrelease`
/// (`6.1.0-18-amd64` → (6, 1, 0)); (0, 0, 0) when it cannot be read.
pub fn host_kernel() -> (u32, u32, u32) {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|s| parse_kernel(&s))
        .unwrap_or((0, 0, 0))
}

impl Profile {
    /// Decodes a profile sent by a client and checks everything that can be
    /// checked before a container exists.
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let p: Profile = serde_json::from_str(text)
            .map_err(|e| ProfileError(format!("Decoding seccomp profile failed: {e}")))?;
        p.check()?;
        Ok(p)
    }

    /// Rejects what no runtime could load.
    pub fn check(&self) -> Result<(), ProfileError> {
        let bad = |m: String| Err(ProfileError(m));
        let has_arches = self.architectures.as_ref().is_some_and(|a| !a.is_empty());
        let has_map = self.arch_map.as_ref().is_some_and(|a| !a.is_empty());
        if has_arches && has_map {
            return bad("'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'".into());
        }
        if self.listener_path.as_ref().is_some_and(|p| !p.is_empty()) {
            return bad("Seccomp notification listeners (listenerPath) are not supported".into());
        }
        if self.is_disabled() {
            return Ok(());
        }
        check_action(&self.default_action, "defaultAction")?;
        if self.default_action == "SCMP_ACT_NOTIFY" {
            return bad("SCMP_ACT_NOTIFY cannot be the default action of a seccomp profile".into());
        }
        let arch_names =
            self.architectures
                .iter()
                .flatten()
                .chain(self.arch_map.iter().flatten().flat_map(|m| {
                    std::iter::once(&m.architecture).chain(m.sub_architectures.iter().flatten())
                }));
        for a in arch_names {
            if !ARCHES.contains(&a.as_str()) {
                return bad(format!("Unknown architecture {a:?} in the seccomp profile"));
            }
        }
        for f in self.flags.iter().flatten() {
            if !FLAGS.contains(&f.as_str()) {
                return bad(format!("Unknown flag {f:?} in the seccomp profile"));
            }
        }
        for (i, r) in self.syscalls.iter().flatten().enumerate() {
            let names = r.names.as_deref().unwrap_or_default();
            if !r.name.is_empty() && !names.is_empty() {
                return bad("'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'".into());
            }
            if r.name.is_empty() && names.iter().all(|n| n.is_empty()) {
                return bad(format!("Rule {i} of the seccomp profile names no syscall"));
            }
            check_action(&r.action, &format!("syscalls[{i}].action"))?;
            if r.action == "SCMP_ACT_NOTIFY" {
                return bad("The seccomp action SCMP_ACT_NOTIFY is not supported".into());
            }
            for a in r.args.iter().flatten() {
                if a.index > 5 {
                    return bad(format!(
                        "Rule {i} of the seccomp profile compares argument {}: syscalls have 6 (0 to 5)",
                        a.index
                    ));
                }
                if !OPERATORS.contains(&a.op.as_str()) {
                    return bad(format!(
                        "Unknown operator {:?} in rule {i} of the seccomp profile",
                        a.op
                    ));
                }
            }
            for f in [&r.includes, &r.excludes].into_iter().flatten() {
                if let Some(k) = f.min_kernel.as_deref().filter(|k| !k.is_empty()) {
                    if parse_kernel(k).is_none() {
                        return bad(format!(
                            "Invalid minKernel {k:?} in rule {i} of the seccomp profile"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// No default action and no rules: Docker takes that as "no filter".
    fn is_disabled(&self) -> bool {
        self.default_action.is_empty() && self.syscalls.as_ref().is_none_or(|s| s.is_empty())
    }

    /// The OCI `linux.seccomp` object for `target`, `None` when the profile
    /// disables seccomp.
    pub fn to_oci(&self, target: &Target) -> Result<Option<Value>, ProfileError> {
        self.check()?;
        if self.is_disabled() {
            return Ok(None);
        }
        let mut out = Map::new();
        out.insert("defaultAction".into(), json!(self.default_action));
        if let Some(e) = self.default_errno_ret {
            out.insert("defaultErrnoRet".into(), json!(e));
        }
        let mut arches: Vec<String> = self.architectures.clone().unwrap_or_default();
        if let Some(native) = seccomp_arch(target.arch) {
            if let Some(m) = self
                .arch_map
                .iter()
                .flatten()
                .find(|m| m.architecture == native)
            {
                arches.push(m.architecture.clone());
                arches.extend(m.sub_architectures.iter().flatten().cloned());
            }
        }
        if !arches.is_empty() {
            out.insert("architectures".into(), json!(arches));
        }
        if let Some(f) = self.flags.as_ref().filter(|f| !f.is_empty()) {
            out.insert("flags".into(), json!(f));
        }
        let mut rules = Vec::new();
        for r in self.syscalls.iter().flatten() {
            if !applies(r, target) {
                continue;
            }
            let names: Vec<&str> = if r.name.is_empty() {
                r.names.iter().flatten().map(String::as_str).collect()
            } else {
                vec![r.name.as_str()]
            };
            let mut rule = json!({ "names": names, "action": r.action });
            if let Some(e) = r.errno_ret {
                rule["errnoRet"] = json!(e);
            }
            if let Some(args) = r.args.as_ref().filter(|a| !a.is_empty()) {
                rule["args"] = args
                    .iter()
                    .map(|a| json!({ "index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op }))
                    .collect();
            }
            rules.push(rule);
        }
        out.insert("syscalls".into(), Value::Array(rules));
        Ok(Some(Value::Object(out)))
    }
}

fn check_action(action: &str, field: &str) -> Result<(), ProfileError> {
    if ACTIONS.contains(&action) {
        Ok(())
    } else {
        Err(ProfileError(format!(
            "Unknown seccomp action {action:?} in {field}"
        )))
    }
}

/// Docker's filtering: an exclude that matches drops the rule; every
/// include must match.
fn applies(r: &Rule, t: &Target) -> bool {
    let has = |c: &String| t.caps.iter().any(|x| x == c);
    let at_least = |k: &Option<String>| {
        k.as_deref()
            .filter(|k| !k.is_empty())
            .and_then(parse_kernel)
            .map(|v| t.kernel >= v)
    };
    if let Some(ex) = &r.excludes {
        if ex.arches.iter().flatten().any(|a| a == t.arch)
            || ex.caps.iter().flatten().any(has)
            || at_least(&ex.min_kernel) == Some(true)
        {
            return false;
        }
    }
    if let Some(inc) = &r.includes {
        if inc
            .arches
            .as_ref()
            .is_some_and(|a| !a.is_empty() && !a.iter().any(|a| a == t.arch))
            || !inc.caps.iter().flatten().all(has)
            || at_least(&inc.min_kernel) == Some(false)
        {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(caps: &'a [String]) -> Target<'a> {
        Target {
            arch: "amd64",
            caps,
            kernel: (5, 10, 0),
        }
    }

    #[test]
    fn converts_docker_format() {
        let p = Profile::parse(
            r#"{
              "defaultAction": "SCMP_ACT_ERRNO",
              "defaultErrnoRet": 1,
              "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
              ],
              "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": []},
                {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2080505856, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390x"]}},
                {"names": ["arm_only"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
                {"names": ["new_kernel"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.2"}},
                {"names": ["old_kernel"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.4"}},
                {"names": ["future"], "action": "SCMP_ACT_LOG", "unknownField": true}
              ]
            }"#,
        )
        .unwrap();
        let caps = vec!["CAP_CHOWN".to_string()];
        let v = p.to_oci(&target(&caps)).unwrap().unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
        );
        let names: Vec<&Value> = v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["names"])
            .collect();
        assert_eq!(
            names,
            [
                &json!(["read", "write"]),
                &json!(["mkdir"]),
                &json!(["clone"]),
                &json!(["future"])
            ]
        );
        assert_eq!(v["syscalls"][1]["errnoRet"], 13);
        assert!(v["syscalls"][0].get("args").is_none());
        assert_eq!(
            v["syscalls"][2]["args"],
            json!([{"index": 0, "value": 2080505856u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}])
        );

        let admin = vec!["CAP_SYS_ADMIN".to_string()];
        let v = p
            .to_oci(&Target {
                arch: "arm64",
                caps: &admin,
                kernel: (6, 2, 0),
            })
            .unwrap()
            .unwrap();
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        let names: Vec<&str> = v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["names"][0].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["read", "mkdir", "mount", "arm_only", "new_kernel", "future"]
        );
    }

    #[test]
    fn empty_profile_disables_seccomp() {
        let p = Profile::parse("{}").unwrap();
        assert_eq!(p.to_oci(&target(&[])).unwrap(), None);
    }

    #[test]
    fn rejects_what_cannot_load() {
        let cases = [
            ("[]", "Decoding seccomp profile failed"),
            (r#"{"defaultAction": 3}"#, "Decoding seccomp profile failed"),
            (
                r#"{"defaultAction": "SCMP_ACT_NOPE"}"#,
                "Unknown seccomp action \"SCMP_ACT_NOPE\" in defaultAction",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
                "use either 'architectures' or 'archMap'",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["x86_64"]}"#,
                "Unknown architecture \"x86_64\"",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}"#,
                "use either 'name' or 'names'",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]}"#,
                "names no syscall",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "ALLOW"}]}"#,
                "Unknown seccomp action \"ALLOW\" in syscalls[0].action",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
                "6 (0 to 5)",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]}"#,
                "Unknown operator \"EQ\"",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "four"}}]}"#,
                "Invalid minKernel \"four\"",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#,
                "cannot be the default action",
            ),
        ];
        for (text, want) in cases {
            let err = Profile::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel("6.1.0-18-amd64\n"), Some((6, 1, 0)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8, 0)));
        assert_eq!(parse_kernel("5.10.2"), Some((5, 10, 2)));
        assert_eq!(parse_kernel("x"), None);
    }
}
