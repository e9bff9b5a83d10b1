//! Against the real Redis of `HOOKGATE_TEST_REDIS_URL` (default 127.0.0.1:6379).

use super::*;
use crate::redis_conn::testing;

const LONG: Duration = Duration::from_secs(3600);

async fn ttl_ms(d: &RedisDedup, route: &str, id: &str) -> i64 {
    let mut conn = d.redis.conn();
    redis::cmd("PTTL")
        .arg(d.key(route, id))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn fresh_then_in_flight_then_duplicate() {
    let r = testing::redis("dedup-states");
    let d = RedisDedup::new(r.clone(), LONG, LONG);
    assert_eq!(d.claim("r", "e1").await.unwrap(), Claim::Fresh);
    assert_eq!(d.claim("r", "e1").await.unwrap(), Claim::InFlight);
    d.complete("r", "e1").await.unwrap();
    assert_eq!(d.claim("r", "e1").await.unwrap(), Claim::Duplicate);
    assert_eq!(
        d.claim("other", "e1").await.unwrap(),
        Claim::Fresh,
        "scoped by route"
    );
    let ttl = ttl_ms(&d, "r", "e1").await;
    assert!(
        ttl > 3_590_000 && ttl <= 3_600_000,
        "done for dedup_ttl: {ttl}"
    );
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn keys_carry_the_route_as_a_cluster_hash_tag() {
    let r = testing::redis("dedup-keys");
    let d = RedisDedup::new(r.clone(), LONG, LONG);
    let key = d.key("stripe", "evt_1");
    assert!(key.ends_with(":{stripe}:dedup:evt_1"), "{key}");
}

#[tokio::test]
async fn release_frees_the_id_but_never_a_done_record() {
    let r = testing::redis("dedup-release");
    let d = RedisDedup::new(r.clone(), LONG, LONG);
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Fresh);
    d.release("r", "e").await.unwrap();
    assert_eq!(
        d.claim("r", "e").await.unwrap(),
        Claim::Fresh,
        "the retry gets in"
    );
    d.complete("r", "e").await.unwrap();
    d.release("r", "e").await.unwrap();
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Duplicate);
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn claims_and_done_records_expire() {
    let r = testing::redis("dedup-expiry");
    let d = RedisDedup::new(
        r.clone(),
        Duration::from_secs(1),
        Duration::from_millis(100),
    );
    assert_eq!(d.claim("r", "crashed").await.unwrap(), Claim::Fresh);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        d.claim("r", "crashed").await.unwrap(),
        Claim::Fresh,
        "claim expired"
    );
    d.complete("r", "crashed").await.unwrap();
    assert_eq!(d.claim("r", "crashed").await.unwrap(), Claim::Duplicate);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        d.claim("r", "crashed").await.unwrap(),
        Claim::Fresh,
        "done expired"
    );
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn complete_after_the_claim_expired_still_marks_done() {
    let r = testing::redis("dedup-late");
    let d = RedisDedup::new(r.clone(), LONG, Duration::from_millis(50));
    assert_eq!(d.claim("r", "slow").await.unwrap(), Claim::Fresh);
    tokio::time::sleep(Duration::from_millis(100)).await;
    d.complete("r", "slow").await.unwrap();
    assert_eq!(d.claim("r", "slow").await.unwrap(), Claim::Duplicate);
    testing::cleanup(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_have_one_winner() {
    let r = testing::redis("dedup-race");
    let d = RedisDedup::new(r.clone(), LONG, LONG);
    let claims = (0..20).map(|_| {
        let d = d.clone();
        tokio::spawn(async move { d.claim("r", "same").await.unwrap() })
    });
    let mut fresh = 0;
    for c in claims {
        fresh += usize::from(c.await.unwrap() == Claim::Fresh);
    }
    assert_eq!(fresh, 1);
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn unreachable_redis_is_an_error_within_the_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = Redis::connect(
        &format!("redis://127.0.0.1:{port}"),
        "x",
        Duration::from_millis(300),
    )
    .unwrap();
    let d = RedisDedup::new(r, LONG, LONG);
    let started = std::time::Instant::now();
    assert!(d.claim("r", "e").await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
