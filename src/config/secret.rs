//! Secret material (HMAC keys, tokens, a Redis URL with a password): resolved once at load from
//! `env:NAME`, `file:PATH` or a literal, and never printed.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Key bytes that print as `***` in `Debug` and `Display`, so a secret cannot leak through logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// Wraps raw key bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(Arc::from(bytes.into()))
    }

    /// The key bytes; call only where the key is used (MAC, compare).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A `redis://` URL that may carry a password: `Debug` and `Display` show it with the user
/// information replaced by `***`, so logging the storage config cannot leak the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(Arc<str>);

impl RedisUrl {
    /// Wraps a URL already checked to start with `redis://` or `rediss://`.
    pub(crate) fn new(url: String) -> Self {
        RedisUrl(Arc::from(url))
    }

    /// The full URL, password included; only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the URL carries user information (a password, usually).
    pub(crate) fn has_credentials(&self) -> bool {
        self.split().1.is_some()
    }

    /// (`scheme://`, user information, `host…`).
    fn split(&self) -> (&str, Option<&str>, &str) {
        let url: &str = &self.0;
        let (scheme, rest) = url.split_at(url.find("://").map_or(0, |i| i + 3));
        let authority_end = rest.find('/').unwrap_or(rest.len());
        match rest[..authority_end].rfind('@') {
            Some(at) => (scheme, Some(&rest[..at]), &rest[at + 1..]),
            None => (scheme, None, rest),
        }
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.split() {
            (scheme, Some(_), host) => write!(f, "{scheme}***@{host}"),
            (_, None, _) => f.write_str(&self.0),
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

/// Where a secret came from, for the warnings the caller may add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Env,
    File,
    Literal,
}

/// Why a reference could not be resolved; worded without the secret's value.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    #[error("environment variable {0} is not set")]
    EnvUnset(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// Resolves `env:NAME`, `file:PATH` (relative to `base`, trailing newlines dropped) or a literal.
pub(crate) fn resolve(v: &str, base: &Path) -> Result<(Vec<u8>, Source), ResolveError> {
    if let Some(name) = v.strip_prefix("env:") {
        let value = std::env::var(name).map_err(|_| ResolveError::EnvUnset(name.into()))?;
        return Ok((value.into_bytes(), Source::Env));
    }
    if let Some(p) = v.strip_prefix("file:") {
        let text = std::fs::read_to_string(base.join(p)).map_err(|source| ResolveError::File {
            path: p.into(),
            source,
        })?;
        let value = text.trim_end_matches(['\r', '\n']).as_bytes().to_vec();
        return Ok((value, Source::File));
    }
    Ok((v.as_bytes().to_vec(), Source::Literal))
}

/// Whether group or others may read `path` (a key file should be `0600` or `0400`).
pub(crate) fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

#[cfg(test)]
mod tests {
    use super::RedisUrl;

    #[test]
    fn redis_url_prints_without_its_password() {
        let u = RedisUrl::new("redis://:hunter2@db.internal:6379/2".into());
        assert_eq!(u.to_string(), "redis://***@db.internal:6379/2");
        assert!(!format!("{u:?}").contains("hunter2"));
        assert!(u.has_credentials());
        let plain = RedisUrl::new("rediss://db:6380".into());
        assert_eq!(plain.to_string(), "rediss://db:6380");
        assert!(!plain.has_credentials());
        let at_in_path = RedisUrl::new("redis://db/0?x=a@b".into());
        assert!(!at_in_path.has_credentials());
    }
}
