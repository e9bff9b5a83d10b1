//! The validation context: where errors point, where relative paths start, the warnings found
//! so far, and the parsers every section shares (durations, sizes, addresses, secrets).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::secret::{self, Source};
use super::{ConfigError, Secret};

/// Longest timeout, grace or interval: a typo ("30h" for "30s") is refused, not waited out.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest retry delay, signature tolerance or Redis visibility timeout.
pub const MAX_DELAY: Duration = Duration::from_secs(7 * 86_400);
/// Longest dedup or claim TTL.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 86_400);
/// Largest size (bodies, buffers), so byte counts stay far from any overflow.
pub const MAX_SIZE: u64 = 1 << 30;

/// Validation context for one file.
pub(crate) struct Cx {
    file: PathBuf,
    base: PathBuf,
    warnings: Vec<String>,
}

impl Cx {
    /// Relative paths in `file` start at `base`.
    pub(super) fn new(file: &Path, base: PathBuf) -> Cx {
        Cx {
            file: file.to_path_buf(),
            base,
            warnings: Vec::new(),
        }
    }

    pub(super) fn into_warnings(self) -> Vec<String> {
        self.warnings
    }

    pub(super) fn err(&self, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        let (key, problem) = (key.into(), problem.into());
        ConfigError::Invalid {
            file: self.file.clone(),
            key,
            problem,
        }
    }

    /// Records a non-fatal finding about `key`.
    pub(super) fn warn(&mut self, key: &str, problem: impl std::fmt::Display) {
        let file = self.file.display();
        self.warnings.push(format!("{file}: {key}: {problem}"));
    }

    pub(super) fn path(&self, p: &str) -> PathBuf {
        self.base.join(p)
    }

    /// A duration up to `MAX_TIMEOUT`; zero allowed.
    pub(super) fn duration(&self, key: &str, v: &str) -> Result<Duration, ConfigError> {
        self.duration_within(key, v, MAX_TIMEOUT)
    }

    /// A duration up to `MAX_TIMEOUT`, not zero.
    pub(super) fn positive_duration(&self, key: &str, v: &str) -> Result<Duration, ConfigError> {
        self.positive_within(key, v, MAX_TIMEOUT)
    }

    /// A duration up to `cap`, not zero.
    pub(super) fn positive_within(
        &self,
        key: &str,
        v: &str,
        cap: Duration,
    ) -> Result<Duration, ConfigError> {
        match self.duration_within(key, v, cap)? {
            d if d.is_zero() => Err(self.err(key, "must be greater than zero")),
            d => Ok(d),
        }
    }

    /// A duration up to `cap`; the cap keeps `Instant`/`SystemTime` arithmetic far from overflow.
    pub(super) fn duration_within(
        &self,
        key: &str,
        v: &str,
        cap: Duration,
    ) -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(v).map_err(|e| {
            self.err(
                key,
                format!("bad duration {v:?} ({e}); write e.g. \"30s\", \"5m\", \"24h\""),
            )
        })?;
        if d > cap {
            let cap = humantime::format_duration(cap);
            return Err(self.err(key, format!("{v:?} is over the limit of {cap}")));
        }
        Ok(d)
    }

    /// A size up to `MAX_SIZE`, not zero.
    pub(super) fn size(&self, key: &str, v: &str) -> Result<u64, ConfigError> {
        self.size_within(key, v, MAX_SIZE)
    }

    /// A size up to `cap`, not zero.
    pub(super) fn size_within(&self, key: &str, v: &str, cap: u64) -> Result<u64, ConfigError> {
        match v.parse::<bytesize::ByteSize>() {
            Ok(b) if b.as_u64() == 0 => Err(self.err(key, "must be greater than zero")),
            Ok(b) if b.as_u64() > cap => {
                let cap = bytesize::ByteSize::b(cap).display().iec();
                Err(self.err(key, format!("{v:?} is over the limit of {cap}")))
            }
            Ok(b) => Ok(b.as_u64()),
            Err(e) => Err(self.err(
                key,
                format!("bad size {v:?} ({e}); write e.g. \"64KiB\", \"25MB\""),
            )),
        }
    }

    /// A count from 1 to `cap` (it sizes a semaphore or a pool).
    pub(super) fn count(&self, key: &str, v: usize, cap: usize) -> Result<usize, ConfigError> {
        match v {
            0 => Err(self.err(key, "must be at least 1")),
            v if v > cap => Err(self.err(key, format!("{v} is over the limit of {cap}"))),
            v => Ok(v),
        }
    }

    pub(super) fn addr(&self, key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
        v.parse().map_err(|_| {
            self.err(
                key,
                format!("bad socket address {v:?}; write e.g. \"0.0.0.0:8443\""),
            )
        })
    }

    pub(super) fn cidrs(&self, key: &str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, v)| self.cidr(&format!("{key}[{i}]"), v))
            .collect()
    }

    fn cidr(&self, key: &str, v: &str) -> Result<IpNet, ConfigError> {
        v.parse::<IpNet>()
            .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| self.err(key, format!("bad CIDR or IP {v:?}")))
    }

    /// Resolves `env:NAME`, `file:PATH` or a literal (warned: it ends up in version control).
    pub(super) fn secret(&mut self, key: &str, v: &str) -> Result<Secret, ConfigError> {
        let (bytes, source) = self.resolve(key, v)?;
        if source == Source::Literal {
            let why = "literal secret in the config file; use env:NAME or file:PATH in production";
            self.warn(key, why);
        }
        if bytes.is_empty() {
            return Err(self.err(key, "secret is empty"));
        }
        Ok(Secret::new(bytes))
    }

    /// Resolves a value that may be secret, warning about a `file:` that group or others can
    /// read; errors never quote the value itself.
    pub(super) fn resolve(&mut self, key: &str, v: &str) -> Result<(Vec<u8>, Source), ConfigError> {
        let (bytes, source) =
            secret::resolve(v, &self.base).map_err(|e| self.err(key, e.to_string()))?;
        if let Some(p) = v.strip_prefix("file:")
            && secret::readable_by_others(&self.path(p))
        {
            self.warn(
                key,
                format!("secret file {p} is readable by group or others; chmod 600 it"),
            );
        }
        Ok((bytes, source))
    }
}
