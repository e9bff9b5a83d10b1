use std::time::Duration;

use redb::ReadableTableMetadata;

use super::*;

const LONG: Duration = Duration::from_secs(3600);

fn open(dir: &tempfile::TempDir) -> Db {
    Db::open(dir.path()).expect("open db")
}

fn dedup(db: &Db, dedup_ttl: Duration, claim_ttl: Duration) -> EmbeddedDedup {
    EmbeddedDedup::new(db.clone(), dedup_ttl, claim_ttl)
}

/// Completes `id` and waits for its record to be committed.
async fn complete(d: &EmbeddedDedup, route: &str, id: &str) {
    d.complete(route, id).await.unwrap();
    d.db.flush().await.unwrap();
}

#[tokio::test]
async fn fresh_then_in_flight_then_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dedup(&open(&dir), LONG, LONG);
    assert_eq!(d.claim("r", "e1").await.unwrap(), Claim::Fresh);
    assert_eq!(d.claim("r", "e1").await.unwrap(), Claim::InFlight);
    complete(&d, "r", "e1").await;
    assert_eq!(d.claim("r", "e1").await.unwrap(), Claim::Duplicate);
    // Ids are scoped by route.
    assert_eq!(d.claim("other", "e1").await.unwrap(), Claim::Fresh);
}

#[tokio::test]
async fn completed_but_not_yet_committed_is_already_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dedup(&open(&dir), LONG, LONG);
    assert_eq!(d.claim("r", "e1").await.unwrap(), Claim::Fresh);
    d.complete("r", "e1").await.unwrap();
    // No flush: the done record may still be waiting for its group commit.
    assert_eq!(d.claim("r", "e1").await.unwrap(), Claim::Duplicate);
    d.db.flush().await.unwrap();
    assert_eq!(d.claim("r", "e1").await.unwrap(), Claim::Duplicate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_yield_one_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let d = dedup(&open(&dir), LONG, LONG);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let d = d.clone();
            tokio::spawn(async move { d.claim("r", "same").await.unwrap() })
        })
        .collect();
    let mut fresh = 0;
    for t in tasks {
        match t.await.unwrap() {
            Claim::Fresh => fresh += 1,
            Claim::InFlight => {}
            Claim::Duplicate => panic!("nothing was completed"),
        }
    }
    assert_eq!(fresh, 1);
}

#[tokio::test]
async fn release_lets_the_retry_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = dedup(&open(&dir), LONG, LONG);
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Fresh);
    d.release("r", "e").await.unwrap();
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Fresh);
}

#[tokio::test]
async fn expired_claim_no_longer_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dedup(&open(&dir), LONG, Duration::from_millis(50));
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Fresh);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Fresh);
}

#[tokio::test]
async fn done_record_expires_after_dedup_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dedup(&open(&dir), Duration::from_millis(100), LONG);
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Fresh);
    complete(&d, "r", "e").await;
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Duplicate);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Fresh);
}

fn table_len(db: &Db) -> (u64, u64) {
    let txn = db.read().unwrap();
    let done = txn.open_table(DEDUP).unwrap().len().unwrap();
    let index = txn.open_table(DEDUP_BY_EXPIRY).unwrap().len().unwrap();
    (done, index)
}

#[tokio::test]
async fn sweep_removes_only_expired_records() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let short = dedup(&db, Duration::from_millis(10), LONG);
    let long = dedup(&db, LONG, LONG);
    for id in ["a", "b", "c"] {
        complete(&short, "r", id).await;
    }
    complete(&long, "r", "keep").await;
    // Completing again moves the expiry: the old index entry must not linger.
    complete(&long, "r", "keep").await;
    assert_eq!(table_len(&db), (4, 4));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(db.sweep(now_ms()).await.unwrap(), 3);
    assert_eq!(table_len(&db), (1, 1));
    assert_eq!(long.claim("r", "keep").await.unwrap(), Claim::Duplicate);
}

#[tokio::test]
async fn sweeper_task_runs_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    complete(&dedup(&db, Duration::from_millis(1), LONG), "r", "a").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = db.spawn_sweeper(Duration::from_millis(10), shutdown);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(table_len(&db), (0, 0));
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn done_record_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let d = dedup(&db, LONG, LONG);
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Fresh);
    complete(&d, "r", "e").await;
    drop((d, db));
    let d = dedup(&open(&dir), LONG, LONG);
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Duplicate);
}

#[tokio::test]
async fn claims_are_forgotten_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dedup(&open(&dir), LONG, LONG);
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Fresh);
    drop(d);
    let d = dedup(&open(&dir), LONG, LONG);
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Fresh);
}

#[tokio::test]
async fn a_completing_marker_whose_record_never_commits_expires_with_dedup_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let d = dedup(&db, Duration::from_millis(200), LONG);
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Fresh);
    // A closed writer never checkpoints: the marker is all that is left of the done record.
    db.close();
    d.complete("r", "e").await.unwrap();
    assert_eq!(d.claim("r", "e").await.unwrap(), Claim::Duplicate);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        d.claim("r", "e").await.unwrap(),
        Claim::Fresh,
        "the marker outlived dedup_ttl"
    );
}

#[test]
fn expired_markers_of_both_kinds_are_pruned() {
    let mut claims = Claims::default();
    let then = Instant::now();
    let now = then + Duration::from_millis(1);
    for i in 0..PRUNE_EVERY - 1 {
        let marker = match i % 2 {
            0 => Pending::Claimed(then),
            _ => Pending::Completing(then),
        };
        claims.insert(("r".into(), i.to_string()), marker, then);
    }
    assert_eq!(claims.until.len(), PRUNE_EVERY as usize - 1);
    let live = Pending::Claimed(now + LONG);
    claims.insert(("r".into(), "live".into()), live, now);
    assert_eq!(claims.until.len(), 1, "expired markers pile up");
}
