//! Finding the lanes stored under this gateway's key prefix, configured or not: one `SCAN`
//! (on every master of a cluster: each holds its own slots' keys).

use std::collections::BTreeSet;

use super::RedisQueue;
use crate::redis_conn::RedisError;

/// Keys asked for per `SCAN` call.
const SCAN_COUNT: usize = 1000;

impl RedisQueue {
    /// Lanes with a stream, a retry set or dead letters. `SCAN` walks the whole keyspace (dedup
    /// records included), a page per call, so it runs once at start.
    pub(super) async fn scan_lanes(&self) -> Result<Vec<String>, RedisError> {
        let prefix = self.redis.prefix();
        let pattern = format!("{}:*", escape_glob(prefix));
        let mut lanes = BTreeSet::new();
        let nodes = match self.redis.masters().await? {
            Some(masters) => masters.into_iter().map(Some).collect(),
            None => vec![None],
        };
        for node in nodes {
            let mut cursor = 0u64;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor).arg("MATCH").arg(&pattern);
                scan.arg("COUNT").arg(SCAN_COUNT);
                let (next, keys): (u64, Vec<String>) = match &node {
                    Some(node) => self.redis.on_node(node, scan).await?,
                    None => self.redis.query(&scan).await?,
                };
                lanes.extend(keys.iter().filter_map(|k| lane_of(prefix, k)));
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(lanes.into_iter().collect())
    }
}

/// The lane of a queue key `{prefix}:{<route>[/<shard>]}:<kind>:<lane>` (see
/// `RedisQueue::keys`).
fn lane_of(prefix: &str, key: &str) -> Option<String> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(":{")?;
    let (_route, rest) = rest.split_once("}:")?;
    let (kind, lane) = rest.split_once(':')?;
    matches!(kind, "q" | "retry" | "dead-order").then(|| lane.to_owned())
}

/// `s` matched literally by a `SCAN MATCH` glob.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "*?[]\\^".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_are_read_back_from_queue_keys_only() {
        assert_eq!(lane_of("hg", "hg:{r}:q:r/up").as_deref(), Some("r/up"));
        assert_eq!(lane_of("hg", "hg:{r}:dead-order:r").as_deref(), Some("r"));
        assert_eq!(
            lane_of("hg", "hg:{r/12}:retry:r/up").as_deref(),
            Some("r/up")
        );
        assert_eq!(lane_of("hg", "hg:{r}:history:r"), None);
        assert_eq!(lane_of("hg", "hgx:{r}:q:r"), None);
        assert_eq!(escape_glob("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }
}
