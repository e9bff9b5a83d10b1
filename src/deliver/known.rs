//! Every lane this process has run: a lane's health (failures, suspension, probe schedule)
//! survives a reload that keeps its upstream, and a lane that a reload removed stays
//! reachable, because its queued and dead events are still in the queue.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::lane::{LaneState, Lanes};
use crate::config::{Route, Upstream};

/// The lanes seen since start, owned by the gateway across generations of workers.
#[derive(Default)]
pub struct KnownLanes {
    by_lane: Mutex<BTreeMap<String, Known>>,
}

struct Known {
    state: Arc<LaneState>,
    /// None for a lane found in storage that no configuration has named yet.
    target: Option<Target>,
}

/// What makes a reloaded upstream the same one: where attempts go and which CA they trust.
/// Timeouts, concurrency and retry settings may change without resetting its health.
#[derive(PartialEq)]
struct Target {
    url: http::Uri,
    ca: Option<PathBuf>,
}

impl Target {
    fn of(up: &Upstream) -> Target {
        Target {
            url: up.url.clone(),
            ca: up.tls.as_ref().map(|t| t.ca.clone()),
        }
    }
}

impl KnownLanes {
    /// The lanes of `routes`, each keeping its health when its target is unchanged, plus every
    /// known lane that `routes` no longer have (as removed).
    pub fn lanes(&self, routes: &[Route]) -> Lanes {
        let mut known = self.lock();
        let mut lanes = Lanes::default();
        let mut live = HashSet::new();
        for route in routes {
            for up in &route.upstreams {
                let state = adopt(&mut known, route, up);
                live.insert(state.lane.clone());
                lanes.add(state);
            }
        }
        for k in known.values().filter(|k| !live.contains(&k.state.lane)) {
            lanes.add_removed(k.state.clone());
        }
        lanes
    }

    /// Adds lanes found in storage (see `Queue::stored_lanes`), so those of routes removed
    /// before this start are reachable too; lanes already known are left as they are.
    pub fn remember(&self, stored: &[String]) {
        let mut known = self.lock();
        for lane in stored {
            if known.contains_key(lane) {
                continue;
            }
            let (route, upstream) = match lane.split_once('/') {
                Some((r, u)) => (r, Some(u)),
                None => (lane.as_str(), None),
            };
            let state = Arc::new(LaneState::new(route, upstream, lane.clone(), u32::MAX));
            known.insert(
                lane.clone(),
                Known {
                    state,
                    target: None,
                },
            );
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Known>> {
        // Every update is one map insert, so a panic elsewhere leaves the map consistent.
        self.by_lane.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The known state of the lane of `up`, or a fresh one when the lane is new or its target moved.
fn adopt(known: &mut BTreeMap<String, Known>, route: &Route, up: &Upstream) -> Arc<LaneState> {
    let lane = up.lane(&route.name);
    let target = Target::of(up);
    match known.get_mut(&lane) {
        Some(k) if k.target.as_ref().is_none_or(|t| *t == target) => {
            k.target = Some(target);
            k.state.set_suspend_after(up.suspend_after);
            return k.state.clone();
        }
        Some(_) => tracing::info!(lane, "upstream target changed: its health starts afresh"),
        None => {}
    }
    let state = Arc::new(LaneState::new(
        &route.name,
        up.name.as_deref(),
        lane.clone(),
        up.suspend_after,
    ));
    known.insert(
        lane,
        Known {
            state: state.clone(),
            target: Some(target),
        },
    );
    state
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn routes(upstreams: &str) -> Vec<Route> {
        let text = format!(
            r#"
[server]
listen = "127.0.0.1:8443"
insecure_http = true
[[route]]
name = "r"
path = "/r"
scheme = "github"
secrets = ["a-literal-test-secret"]
upstreams = [{upstreams}]
"#
        );
        Config::parse(Path::new("/t.toml"), &text).unwrap().routes
    }

    const A: &str = r#"{ name = "a", url = "http://127.0.0.1:1/a" }"#;
    const B: &str = r#"{ name = "b", url = "http://127.0.0.1:1/b" }"#;

    #[test]
    fn health_survives_a_reload_that_keeps_the_target() {
        let known = KnownLanes::default();
        let first = known.lanes(&routes(&format!("{A}, {B}")));
        first.of("r")[0].failure();
        let tuned = A.replace(" }", r#", timeout = "5s", concurrency = 2 }"#);
        let second = known.lanes(&routes(&format!("{tuned}, {B}")));
        assert!(Arc::ptr_eq(&first.of("r")[0], &second.of("r")[0]));
        assert_eq!(second.of("r")[0].consecutive_failures(), 1);
    }

    #[test]
    fn a_moved_target_starts_afresh_and_a_dropped_lane_is_removed() {
        let known = KnownLanes::default();
        let first = known.lanes(&routes(&format!("{A}, {B}")));
        first.of("r")[0].failure();
        let moved = A.replace("/a", "/elsewhere");
        let second = known.lanes(&routes(&moved));
        assert_eq!(second.of("r").len(), 1);
        assert_eq!(second.of("r")[0].consecutive_failures(), 0);
        let removed: Vec<_> = second.removed().map(|l| l.lane.as_str()).collect();
        assert_eq!(removed, ["r/b"]);
        assert_eq!(second.removed_of("r").len(), 1);
    }

    #[test]
    fn stored_lanes_no_route_names_are_listed_as_removed() {
        let known = KnownLanes::default();
        known.remember(&["r/a".into(), "old/x".into(), "gone".into()]);
        let lanes = known.lanes(&routes(A));
        assert_eq!(lanes.of("r")[0].lane, "r/a");
        let removed: Vec<_> = lanes.removed().map(|l| l.lane.as_str()).collect();
        assert_eq!(removed, ["gone", "old/x"]);
        let old = &lanes.removed_of("old")[0];
        assert_eq!(
            (old.route.as_str(), old.upstream.as_deref()),
            ("old", Some("x"))
        );
    }
}
