use std::time::Duration;

use redb::ReadableTableMetadata;

use super::*;

/// Writes one META counter; `fail` makes the op fail after writing.
async fn put(db: &Db, key: &'static str, fail: bool) -> Result<(), StorageError> {
    db.write(move |txn| {
        txn.open_table(META)?.insert(key, 1)?;
        if fail {
            return Err(StorageError::Busy);
        }
        Ok(())
    })
    .await
}

fn meta_len(db: &Db) -> u64 {
    db.read().unwrap().open_table(META).unwrap().len().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_fails_every_waiter_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    // Keep the writer busy so the next two ops land in one batch.
    let slow = tokio::spawn({
        let db = db.clone();
        async move {
            db.write(|_| {
                std::thread::sleep(Duration::from_millis(100));
                Ok(())
            })
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (good, bad) = tokio::join!(put(&db, "good", false), put(&db, "bad", true));
    slow.await.unwrap().unwrap();
    assert!(good.is_err(), "the good op shared the failed commit");
    assert!(bad.is_err());
    assert_eq!(meta_len(&db), 0, "the aborted batch left nothing behind");
    put(&db, "after", false).await.unwrap();
    assert_eq!(meta_len(&db), 1, "the writer goes on after a failed batch");
}

#[tokio::test]
async fn close_flushes_queued_writes_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let write = |txn: &WriteTransaction| -> Result<(), StorageError> {
        txn.open_table(META)?.insert("queued", 7)?;
        Ok(())
    };
    db.submit(Durable::Now, write, |_| {}).await.unwrap();
    db.close();
    assert!(matches!(
        put(&db, "late", false).await,
        Err(StorageError::Closed)
    ));
    drop(db);
    let db = Db::open(dir.path()).unwrap();
    let value = db
        .read()
        .unwrap()
        .open_table(META)
        .unwrap()
        .get("queued")
        .unwrap();
    assert_eq!(value.map(|g| g.value()), Some(7));
}

#[tokio::test]
async fn a_reopened_database_keeps_its_data_and_serves_every_handle() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let other = db.clone();
    put(&db, "before", false).await.unwrap();
    // A snapshot alive across the reopen must not stop it (redb closes the file under it).
    let old = db.read().unwrap();
    db.inner.slot.reopen().unwrap();
    put(&other, "after", false).await.unwrap();
    assert_eq!(
        meta_len(&other),
        2,
        "old and new writes, read by another handle"
    );
    drop(old);
}

#[tokio::test]
async fn writes_are_refused_at_once_and_deliveries_wait_while_storage_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    db.set_healthy(false);
    assert!(!db.is_healthy());
    assert!(matches!(
        put(&db, "refused", false).await,
        Err(StorageError::Unavailable)
    ));
    let waiter = tokio::spawn({
        let db = db.clone();
        async move { db.healthy().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "healthy() waits while storage fails");
    db.set_healthy(true);
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("healthy() returns once storage works")
        .unwrap();
    put(&db, "accepted", false).await.unwrap();
    assert_eq!(meta_len(&db), 1);
}

#[test]
fn only_failures_of_the_file_call_for_a_reopen() {
    let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
    assert!(StorageError::from(redb::StorageError::Io(full)).is_io());
    assert!(StorageError::from(redb::StorageError::PreviousIo).is_io());
    assert!(!StorageError::from(redb::StorageError::Corrupted("x".into())).is_io());
    assert!(!StorageError::Busy.is_io());
    assert!(!StorageError::Unavailable.is_io());
}

/// Writes one META counter with the given durability.
async fn put_with(db: &Db, durable: Durable, key: &'static str) {
    db.write_with(durable, move |txn| {
        txn.open_table(META)?.insert(key, 1)?;
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn later_writes_commit_at_once_and_are_fsynced_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let (commits, syncs) = (db.commits(), db.syncs());
    put_with(&db, Durable::Later, "a").await;
    put_with(&db, Durable::Later, "b").await;
    assert_eq!(meta_len(&db), 2, "visible to readers once committed");
    assert_eq!((db.commits() - commits, db.syncs() - syncs), (2, 0));
    tokio::time::sleep(writer::MAX_UNSYNCED * 3).await;
    assert_eq!(
        (db.commits() - commits, db.syncs() - syncs),
        (3, 1),
        "one empty fsync'd commit, by the writer itself, once the bound passed"
    );
    tokio::time::sleep(writer::MAX_UNSYNCED * 2).await;
    assert_eq!(db.syncs() - syncs, 1, "nothing unsynced: the writer sleeps");
    put_with(&db, Durable::Now, "c").await;
    assert_eq!(
        db.syncs() - syncs,
        2,
        "a Now write is fsync'd before it returns"
    );
}

#[tokio::test]
async fn a_later_write_is_fsynced_by_close() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let syncs = db.syncs();
    put_with(&db, Durable::Later, "a").await;
    db.close();
    assert_eq!(db.syncs() - syncs, 1, "the writer's last act");
    drop(db);
    let db = Db::open(dir.path()).unwrap();
    assert_eq!(meta_len(&db), 1);
}
