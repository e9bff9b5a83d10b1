//! `[storage]` validation, and the check that Redis leases outlive the slowest delivery.

use super::secret::{RedisUrl, Source};
use super::{
    Backend, ConfigError, Cx, MAX_DELAY, MAX_TTL, Route, StorageConfig, VISIBILITY_MARGIN, raw,
};

/// redb's page cache is memory, not a byte count on the wire: it may exceed `MAX_SIZE`.
const MAX_CACHE: u64 = 64 << 30;
/// Streams per lane beyond this buy nothing (a cluster has 16,384 slots; a reader polls each).
const MAX_SHARDS: u32 = 1024;
/// More replicas than any cluster runs per master: a typo, not a setting.
const MAX_WAIT_REPLICAS: u32 = 16;

pub(super) fn storage(cx: &mut Cx, raw: raw::RawStorage) -> Result<StorageConfig, ConfigError> {
    let backend = match raw.backend.as_str() {
        "embedded" => Backend::Embedded,
        "redis" => Backend::Redis,
        other => {
            return Err(cx.err(
                "storage.backend",
                format!("unknown backend {other:?}; use \"embedded\" or \"redis\""),
            ));
        }
    };
    let url = redis_url(cx, "storage.redis_url", &raw.redis_url)?;
    let mut redis_cluster = Vec::with_capacity(raw.redis_cluster.len());
    for (i, seed) in raw.redis_cluster.iter().enumerate() {
        redis_cluster.push(redis_url(cx, &format!("storage.redis_cluster[{i}]"), seed)?);
    }
    if !redis_cluster.is_empty() && backend != Backend::Redis {
        return Err(cx.err(
            "storage.redis_cluster",
            "is for the Redis backend; set storage.backend = \"redis\"",
        ));
    }
    if !(1..=MAX_SHARDS).contains(&raw.shards) {
        return Err(cx.err(
            "storage.shards",
            format!("must be between 1 and {MAX_SHARDS}"),
        ));
    }
    if raw.wait_replicas > MAX_WAIT_REPLICAS {
        return Err(cx.err(
            "storage.wait_replicas",
            format!("must be at most {MAX_WAIT_REPLICAS}"),
        ));
    }
    // Streams per lane only spread load over the masters of a cluster; one Redis keeps the
    // single-stream layout (and the keys a gateway of an earlier version wrote).
    let shards = if redis_cluster.is_empty() {
        1
    } else {
        raw.shards
    };
    let prefix_ok = !raw.key_prefix.is_empty()
        && raw
            .key_prefix
            .chars()
            .all(|c| c.is_ascii_graphic() && !"{}".contains(c));
    if !prefix_ok {
        return Err(cx.err(
            "storage.key_prefix",
            "use printable characters without spaces, '{' or '}' (braces are Redis Cluster hash tags)",
        ));
    }
    Ok(StorageConfig {
        backend,
        path: cx.path(&raw.path),
        redis_url: url,
        dedup_ttl: cx.positive_within("storage.dedup_ttl", &raw.dedup_ttl, MAX_TTL)?,
        claim_ttl: cx.positive_within("storage.claim_ttl", &raw.claim_ttl, MAX_TTL)?,
        key_prefix: raw.key_prefix,
        visibility_timeout: cx.positive_within(
            "storage.visibility_timeout",
            &raw.visibility_timeout,
            MAX_DELAY,
        )?,
        op_timeout: cx.positive_duration("storage.op_timeout", &raw.op_timeout)?,
        cache_bytes: usize::try_from(cx.size_within("storage.cache", &raw.cache, MAX_CACHE)?)
            .unwrap_or(usize::MAX),
        redis_cluster,
        shards,
        wait_replicas: raw.wait_replicas,
    })
}

/// `redis_url` may be `env:NAME` or `file:PATH` like a secret (it may carry a password); a
/// literal with a password is warned about. Parsed by the Redis client here, not at connect.
fn redis_url(cx: &mut Cx, key: &str, v: &str) -> Result<RedisUrl, ConfigError> {
    let (bytes, source) = cx.resolve(key, v)?;
    let text = String::from_utf8(bytes).map_err(|_| cx.err(key, "is not UTF-8"))?;
    if !text.starts_with("redis://") && !text.starts_with("rediss://") {
        return Err(cx.err(key, "must start with redis:// or rediss://"));
    }
    if redis::IntoConnectionInfo::into_connection_info(text.as_str()).is_err() {
        // Not the client's message: its detail may quote part of the URL.
        let problem = "is not a usable Redis URL (check host, port, database number, query)";
        return Err(cx.err(key, problem));
    }
    let url = RedisUrl::new(text);
    if source == Source::Literal && url.has_credentials() {
        cx.warn(
            key,
            "password in the config file; use env:NAME or file:PATH in production",
        );
    }
    Ok(url)
}

/// With Redis, a lease outliving the visibility timeout is handed to another replica, so a slow
/// but successful delivery would be sent twice: the timeout must cover the slowest attempt.
pub(super) fn check_visibility(
    cx: &Cx,
    storage: &StorageConfig,
    routes: &[Route],
) -> Result<(), ConfigError> {
    if storage.backend != Backend::Redis {
        return Ok(());
    }
    let every_upstream = routes
        .iter()
        .flat_map(|r| r.upstreams.iter().map(move |u| (r, u)));
    let Some((slowest, up)) = every_upstream.max_by_key(|(_, u)| u.timeout) else {
        return Ok(());
    };
    let needed = up.timeout + storage.op_timeout + VISIBILITY_MARGIN;
    if storage.visibility_timeout <= needed {
        return Err(cx.err(
            "storage.visibility_timeout",
            format!(
                "must exceed the slowest upstream timeout ({:?}, route {:?}) + storage.op_timeout ({:?}) + {:?}; set it above {:?}",
                up.timeout,
                slowest.name,
                storage.op_timeout,
                VISIBILITY_MARGIN,
                needed
            ),
        ));
    }
    Ok(())
}
