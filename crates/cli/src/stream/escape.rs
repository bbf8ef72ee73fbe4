//! The detach key sequence (ctrl-p ctrl-q by default), spotted in what the
//! user types as docker's `term.NewEscapeProxy` does: a partial match is held
//! back until it either completes (detach) or fails (the keys are sent).

/// ctrl-p, ctrl-q.
pub const DEFAULT_KEYS: &[u8] = &[16, 17];

/// Parses `--detach-keys` ("ctrl-p,ctrl-q", "a,ctrl-x", "DEL") like
/// `term.ToBytes`.
pub fn parse_keys(keys: &str) -> Result<Vec<u8>, String> {
    let mut codes = Vec::new();
    for key in keys.split(',') {
        if key.len() == 1 {
            codes.push(key.as_bytes()[0]);
            continue;
        }
        if key == "DEL" {
            codes.push(127);
            continue;
        }
        let code = key.strip_prefix("ctrl-").and_then(|c| match c.as_bytes() {
            [b'@'] => Some(0),
            [c @ b'a'..=b'z'] => Some(c - b'a' + 1),
            [b'['] => Some(27),
            [b'\\'] => Some(28),
            [b']'] => Some(29),
            [b'^'] => Some(30),
            [b'_'] => Some(31),
            _ => None,
        });
        match code {
            Some(c) => codes.push(c),
            None => return Err(format!("Unknown character: '{key}'")),
        }
    }
    Ok(codes)
}

/// Watches input for the escape keys.
#[derive(Debug)]
pub struct Escape {
    keys: Vec<u8>,
    matched: usize,
}

/// What to do with one chunk of input.
#[derive(Debug, PartialEq, Eq)]
pub struct Filtered {
    /// Bytes to send on.
    pub forward: Vec<u8>,
    /// The whole sequence was typed: detach after sending `forward`.
    pub detach: bool,
}

impl Escape {
    pub fn new(keys: Vec<u8>) -> Self {
        Escape { keys, matched: 0 }
    }

    pub fn filter(&mut self, input: &[u8]) -> Filtered {
        let mut forward = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            forward.extend_from_slice(input);
            return Filtered {
                forward,
                detach: false,
            };
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return Filtered {
                        forward,
                        detach: true,
                    };
                }
                continue;
            }
            // A broken partial match: what was held back was typed input.
            forward.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    return Filtered {
                        forward,
                        detach: true,
                    };
                }
            } else {
                forward.push(b);
            }
        }
        Filtered {
            forward,
            detach: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_sequence_across_chunks() {
        let mut e = Escape::new(DEFAULT_KEYS.to_vec());
        assert_eq!(
            e.filter(b"ls\x10"),
            Filtered {
                forward: b"ls".to_vec(),
                detach: false
            }
        );
        assert_eq!(
            e.filter(b"\x11rest"),
            Filtered {
                forward: vec![],
                detach: true
            }
        );
    }

    #[test]
    fn releases_a_broken_prefix() {
        let mut e = Escape::new(DEFAULT_KEYS.to_vec());
        let f = e.filter(b"\x10x\x10\x10\x11");
        assert_eq!(f.forward, b"\x10x\x10".to_vec());
        assert!(f.detach);
    }

    #[test]
    fn parses_key_lists() {
        assert_eq!(parse_keys("ctrl-p,ctrl-q").unwrap(), DEFAULT_KEYS);
        assert_eq!(parse_keys("a,ctrl-@,DEL").unwrap(), vec![b'a', 0, 127]);
        assert_eq!(
            parse_keys("ctrl-1").unwrap_err(),
            "Unknown character: 'ctrl-1'"
        );
    }
}
