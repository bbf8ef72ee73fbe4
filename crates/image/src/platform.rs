//! Platforms (`os/arch[/variant]`) and selection from manifest lists.

use std::fmt;

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this engine runs containers for.
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Self {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: (architecture == "arm64").then(|| "v8".to_string()),
        }
    }

    /// Parses `os[/arch[/variant]]` as `--platform` takes it.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || {
            StoreError::InvalidArgument(format!(
                "\"{s}\": unknown operating system or architecture: invalid argument"
            ))
        };
        if parts.iter().any(|p| {
            p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }) {
            return Err(bad());
        }
        let host = Self::host();
        let (os, arch, variant) = match parts.as_slice() {
            [os] => (os.to_string(), host.architecture, None),
            [os, arch] => (os.to_string(), normalize_arch(arch), None),
            [os, arch, v] => (os.to_string(), normalize_arch(arch), Some(v.to_string())),
            _ => return Err(bad()),
        };
        if os != "linux" && os != "windows" && os != "darwin" && os != "freebsd" {
            return Err(bad());
        }
        Ok(Self {
            os: os.to_lowercase(),
            architecture: arch,
            variant,
        })
    }

    /// Whether an image or index entry for `os/arch/variant` can serve this platform.
    pub fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.architecture != normalize_arch(arch) {
            return false;
        }
        match (&self.variant, variant) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        }
    }
}

fn normalize_arch(a: &str) -> String {
    match a {
        "x86_64" | "x86-64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        other => other.to_lowercase(),
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert!(p.matches("linux", "arm64", Some("v8")));
        assert!(p.matches("linux", "aarch64", None));
        assert!(!p.matches("linux", "amd64", None));
        assert!(Platform::parse("linux/x86_64")
            .unwrap()
            .matches("linux", "amd64", None));
        assert!(Platform::parse("plan9//").is_err());
        assert!(Platform::parse("beos/amd64").is_err());
    }
}
