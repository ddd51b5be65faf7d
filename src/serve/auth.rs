//! API keys: reading them, and checking a request's `Authorization: Bearer`
//! header against them in constant time.
//!
//! Keys are kept only as their SHA-256 digests: a presented token is hashed
//! and compared with every digest without stopping at the first match or
//! the first differing byte, so the time taken says nothing about how much
//! of a key was right, nor which key matched. A key is never logged or put
//! in an error message; clients are told apart by the key's line number
//! (`key 2`), which is what metrics and logs name.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Fewer characters than this is too guessable to stand between a LAN and
/// the server's CPU; `openssl rand -hex 32` gives 64.
pub const MIN_KEY_CHARS: usize = 16;

/// A key file or `PAPERSIM_API_KEY` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("{}: {source}; give a readable file of keys, one a line", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A key in the file is unusable (the key itself is not repeated).
    #[error("{}:{line}: {reason}", path.display())]
    BadKey {
        /// The key file, or `PAPERSIM_API_KEY`.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The file holds no key at all.
    #[error("{}: no key in the file (one key a line; `#` starts a comment); add one, e.g. `openssl rand -hex 32 >> {}`", path.display(), path.display())]
    Empty {
        /// The key file.
        path: PathBuf,
    },
}

/// What a request's `Authorization` header amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No key is configured: everyone is let in.
    Open,
    /// The token is key number `n` (0-based, in file order).
    Key(usize),
    /// No `Authorization: Bearer` header.
    Missing,
    /// A bearer token that is not one of the keys.
    Wrong,
}

/// The configured keys, as digests. Empty: no authentication.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

// Never print digests either: they would let a reader test guesses offline.
impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// Equal without an early exit: every byte is looked at whatever differs.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold back into a short-circuit.
    std::hint::black_box(diff) == 0
}

impl ApiKeys {
    /// Keys from `texts`, each already checked.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        ApiKeys {
            digests: keys.into_iter().map(|k| digest(k.as_bytes())).collect(),
        }
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Checks an `Authorization` header value (None when absent).
    pub fn check(&self, authorization: Option<&[u8]>) -> Verdict {
        if self.digests.is_empty() {
            return Verdict::Open;
        }
        let Some(token) = authorization.and_then(bearer) else {
            return Verdict::Missing;
        };
        let presented = digest(token);
        let mut found = None;
        // All digests are compared, so the time does not depend on which
        // one (if any) matched.
        for (i, d) in self.digests.iter().enumerate() {
            if same(d, &presented) && found.is_none() {
                found = Some(i);
            }
        }
        found.map_or(Verdict::Wrong, Verdict::Key)
    }
}

/// The token of `Bearer TOKEN` (the scheme case-insensitive, as RFC 7235
/// says); None for any other scheme or an empty token.
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    let token = rest.trim_ascii();
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then_some(token)
}

/// Checks one key: long enough, printable ASCII without spaces (what an
/// HTTP header carries unchanged). The error says why without the key.
pub fn check_key(key: &str) -> Result<(), String> {
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "a key must be printable ASCII without spaces (it travels in an HTTP header); \
             make one with `openssl rand -hex 32`"
                .into(),
        );
    }
    if key.len() < MIN_KEY_CHARS {
        return Err(format!(
            "a key of {} characters is too easy to guess; use at least {MIN_KEY_CHARS} \
             (e.g. `openssl rand -hex 32`)",
            key.len()
        ));
    }
    Ok(())
}

/// The keys of a key file's text: one a line, surrounding whitespace
/// ignored, blank lines and lines starting with `#` skipped. `path` names
/// the file in errors.
pub fn parse_keys(text: &str, path: &Path) -> Result<Vec<String>, KeyError> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let key = line.trim();
        if key.is_empty() || key.starts_with('#') {
            continue;
        }
        check_key(key).map_err(|reason| KeyError::BadKey {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        })?;
        keys.push(key.to_string());
    }
    if keys.is_empty() {
        return Err(KeyError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(keys)
}

/// Reads a key file ([`parse_keys`]). Returns the keys and whether the file
/// can be read by other users than its owner (worth a warning).
pub fn read_key_file(path: &Path) -> Result<(Vec<String>, bool), KeyError> {
    let read = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(read)?;
    let shared = {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(read)?.permissions().mode();
        mode & 0o077 != 0
    };
    Ok((parse_keys(&text, path)?, shared))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123";
    const B: &str = "fedcba9876543210fedc";

    #[test]
    fn bearer_tokens_are_parsed_as_rfc_6750_says() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer   abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b""), None);
    }

    #[test]
    fn check_names_the_key_and_tells_missing_from_wrong() {
        let keys = ApiKeys::new([A, B]);
        assert_eq!(
            keys.check(Some(format!("Bearer {B}").as_bytes())),
            Verdict::Key(1)
        );
        assert_eq!(
            keys.check(Some(format!("Bearer {A}").as_bytes())),
            Verdict::Key(0)
        );
        assert_eq!(
            keys.check(Some(format!("Bearer {A}x").as_bytes())),
            Verdict::Wrong
        );
        assert_eq!(keys.check(Some(&A.as_bytes()[..10])), Verdict::Missing);
        assert_eq!(keys.check(None), Verdict::Missing);
        assert_eq!(ApiKeys::default().check(None), Verdict::Open);
    }

    #[test]
    fn key_files_skip_comments_and_refuse_weak_keys_by_line() {
        let p = Path::new("keys.txt");
        let keys = parse_keys(&format!("# lab keys\n\n  {A}  \n{B}\n"), p).unwrap();
        assert_eq!(keys, [A, B]);
        let e = parse_keys(&format!("{A}\nshort\n"), p)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("keys.txt:2: a key of 5 characters"), "{e}");
        assert!(!e.contains("short"), "the key leaked into {e}");
        let e = parse_keys(&format!("{A} {B}\n"), p)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("keys.txt:1: a key must be printable ASCII"),
            "{e}"
        );
        let e = parse_keys("# nothing\n\n", p).unwrap_err().to_string();
        assert!(e.contains("no key in the file"), "{e}");
    }

    #[test]
    fn debug_shows_no_digest() {
        assert_eq!(format!("{:?}", ApiKeys::new([A])), "ApiKeys(1 keys)");
    }
}
