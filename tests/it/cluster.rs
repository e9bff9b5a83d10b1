//! hookgate on a real Redis Cluster (tests/it/support/cluster.rs): sharding, failover, resharding.

use crate::support::*;

/// The helper forms a healthy 3+3 cluster, finds slot owners, and survives a SIGKILLed master.
#[test]
fn the_test_cluster_forms_and_fails_over() {
    let cluster = Cluster::start();
    assert_eq!(cluster.masters().len(), 3);
    let slot = cluster.keyslot("{probe}");
    let master = cluster.master_of_slot(slot);
    assert!(cluster.masters().contains(&master));
    cluster.kill(master);
    cluster.wait_healthy();
    let promoted = cluster.master_of_slot(slot);
    assert_ne!(promoted, master);
    assert_eq!(cluster.masters().len(), 3);
}
