//! `[storage]` validation, and the check that Redis leases outlive the slowest delivery.

use super::{Backend, ConfigError, Cx, Route, StorageConfig, VISIBILITY_MARGIN, raw};

pub(super) fn storage(cx: &Cx, raw: raw::RawStorage) -> Result<StorageConfig, ConfigError> {
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
    if !raw.redis_url.starts_with("redis://") && !raw.redis_url.starts_with("rediss://") {
        return Err(cx.err("storage.redis_url", "must start with redis:// or rediss://"));
    }
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
        redis_url: raw.redis_url,
        dedup_ttl: cx.positive_duration("storage.dedup_ttl", &raw.dedup_ttl)?,
        claim_ttl: cx.positive_duration("storage.claim_ttl", &raw.claim_ttl)?,
        key_prefix: raw.key_prefix,
        visibility_timeout: cx
            .positive_duration("storage.visibility_timeout", &raw.visibility_timeout)?,
        op_timeout: cx.positive_duration("storage.op_timeout", &raw.op_timeout)?,
        cache_bytes: usize::try_from(cx.size("storage.cache", &raw.cache)?).unwrap_or(usize::MAX),
    })
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
