//! Running each end-to-end case on both storage backends, and the test Redis.

/// Which storage backend a gateway under test uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Embedded,
    Redis,
    /// A real six-node Redis Cluster (tests/it/support/cluster.rs), sharded lanes.
    Cluster,
}

/// Generates, from `async fn name(store: Store)`, the module `name` with one test per listed
/// backend (`embedded`, `redis`, `cluster`): the shared body of the two macros below.
#[macro_export]
macro_rules! backend_cases {
    ($name:ident: $($case:ident => $store:ident),+) => {
        mod $name {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$name($crate::support::Store::$store).await
                }
            )+
        }
    };
}

/// One test per backend: `name::embedded`, `name::redis` and `name::cluster`, so the whole
/// end-to-end suite runs once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        $crate::backend_cases!($name: embedded => Embedded, redis => Redis, cluster => Cluster);
    )*};
}

/// Like [`both_backends!`] for cases about replicas sharing Redis: `name::redis` and
/// `name::cluster`.
#[macro_export]
macro_rules! redis_backends {
    ($($name:ident),* $(,)?) => {$(
        $crate::backend_cases!($name: redis => Redis, cluster => Cluster);
    )*};
}

/// The Redis the tests use: `HOOKGATE_TEST_REDIS_URL`, else 127.0.0.1:6379.
pub fn redis_url() -> String {
    std::env::var("HOOKGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Deletes every key under `prefix` (each test has a prefix of its own) on the Redis at `url`
/// (on a cluster: call it for every master). SCAN in steps rather than one KEYS: the shared
/// Redis may hold other projects' keys by the hundred thousand (benchmarks), and a single KEYS
/// over them outlasts the client's response timeout.
pub async fn clean_redis(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(30)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            // One key per DEL: a cluster node refuses a DEL whose keys span slots.
            let mut pipe = redis::pipe();
            for key in keys {
                pipe.cmd("DEL").arg(key).ignore();
            }
            pipe.exec_async(&mut conn).await.unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}
