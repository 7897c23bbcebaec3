//! The ZFS backend against real zfs-fuse pools: two file-backed pools per test stand for two
//! hosts. Needs root and zfs-fuse; skipped with a reason otherwise, a failure under CI.

mod support;

use agent::locks::VolumeLocks;
use agent::storage::{Access, Backend, CreateOptions, Storage, StorageSpec, Store, ZfsStorage};
use support::behaviour::{self, MIB, volume};
use testkit::Scratch;
use testkit::pool::TestPool;

/// Two "hosts": a pool and a volume root each. Fields drop in order: pools, then roots.
struct TwoHosts {
    src: ZfsStorage,
    dst: ZfsStorage,
    pools: (TestPool, TestPool),
    roots: Scratch,
}

async fn two_hosts() -> Option<TwoHosts> {
    let a = TestPool::create()?;
    let b = TestPool::create()?;
    let roots = Scratch::new("zfsroot");
    let parent = |pool: &TestPool| format!("{}/flocker", pool.name());
    let src = ZfsStorage::open(&parent(&a), roots.path().join("a"))
        .await
        .expect("zfs storage on pool a");
    let dst = ZfsStorage::open(&parent(&b), roots.path().join("b"))
        .await
        .expect("zfs storage on pool b");
    Some(TwoHosts {
        src,
        dst,
        pools: (a, b),
        roots,
    })
}

#[tokio::test]
async fn full_then_incremental_into_a_read_only_replica() {
    let Some(hosts) = two_hosts().await else {
        return;
    };
    behaviour::full_then_incremental(&hosts.src, &hosts.dst).await;
}

#[tokio::test]
async fn broken_streams_change_nothing() {
    let Some(hosts) = two_hosts().await else {
        return;
    };
    behaviour::broken_streams_change_nothing(&hosts.src, &hosts.dst).await;
}

#[tokio::test]
async fn a_stale_copy_is_replaced_only_when_the_new_one_is_complete() {
    let Some(hosts) = two_hosts().await else {
        return;
    };
    behaviour::a_stale_copy_is_replaced_only_when_the_new_one_is_complete(&hosts.src, &hosts.dst)
        .await;
}

#[tokio::test]
async fn a_diverged_copy_is_set_aside_and_kept() {
    let Some(hosts) = two_hosts().await else {
        return;
    };
    behaviour::a_diverged_copy_is_set_aside_and_kept(&hosts.src, &hosts.dst).await;
}

#[tokio::test]
async fn a_clone_holds_its_snapshot_and_is_a_volume_of_its_own() {
    let Some(hosts) = two_hosts().await else {
        return;
    };
    behaviour::a_clone_holds_its_snapshot_and_is_a_volume_of_its_own(&hosts.src, &hosts.dst, true)
        .await;
}

#[tokio::test]
async fn errors_name_the_volume() {
    let Some(hosts) = two_hosts().await else {
        return;
    };
    behaviour::errors_name_the_volume(&hosts.src).await;
}

#[tokio::test]
async fn bad_names_are_refused_and_the_pool_is_untouched() {
    let Some(hosts) = two_hosts().await else {
        return;
    };
    let pool = &hosts.pools.0;
    behaviour::bad_names_are_refused(&hosts.src, || pool.datasets()).await;
}

#[tokio::test]
async fn quota_is_enforced() {
    let Some(hosts) = two_hosts().await else {
        return;
    };
    let v = volume();
    let quota = 8 * MIB as u64;
    let options = CreateOptions { quota: Some(quota) };
    hosts.src.create(&v, &options).await.unwrap();
    assert!(hosts.src.capabilities().enforces_quota);
    let path = hosts.src.mount(&v, Access::ReadWrite).await.unwrap();
    let chunk = testkit::random(MIB);
    let mut file = std::fs::File::create(path.join("fill")).unwrap();
    let refused = (0..16).find_map(|_| std::io::Write::write_all(&mut file, &chunk).err());
    let err = refused.expect("writing 16 MiB into an 8 MiB volume fails");
    assert!(
        matches!(err.raw_os_error(), Some(122 | 28)),
        "EDQUOT or ENOSPC expected, got {err}"
    );
    drop(file);
    let used = hosts.src.used(&v).await.unwrap();
    assert!(
        used <= quota + MIB as u64,
        "used {used} over the quota {quota}"
    );
    hosts.src.destroy(&v).await.unwrap();
}

#[tokio::test]
async fn features_match_the_installed_zfs() {
    let Some(hosts) = two_hosts().await else {
        return;
    };
    let features = hosts.src.features();
    // A new pool has the newest version this ZFS supports, which `zpool upgrade -v` names.
    let upgrade = testkit::sh("zpool", &["upgrade", "-v"]);
    let newest = upgrade
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("This system is currently running ZFS pool version "))
        .and_then(|v| v.trim_end_matches('.').parse::<u32>().ok());
    assert_eq!(features.pool_version, newest, "{upgrade}");
    if features.pool_version.is_some_and(|v| v < 28) {
        // Resume tokens and `receive -u` came long after pool version 28 (zfs-fuse: 23).
        assert!(
            !features.resumable_receive && !features.receive_no_mount,
            "{features:?}"
        );
        assert!(!hosts.src.capabilities().resumable_receive);
    }
}

#[tokio::test]
async fn the_run_time_choice_behaves_the_same() {
    let Some(hosts) = two_hosts().await else {
        return;
    };
    let open = |pool: &TestPool, host: &str| {
        let spec: StorageSpec = format!("zfs:{}/chosen", pool.name()).parse().unwrap();
        let root = hosts.roots.path().join(host);
        async move {
            Backend::open(&spec, root, VolumeLocks::default())
                .await
                .unwrap()
        }
    };
    let src = open(&hosts.pools.0, "c").await;
    let dst = open(&hosts.pools.1, "d").await;
    assert!(matches!(src.store(), Store::Zfs(_)));
    behaviour::full_then_incremental(&src, &dst).await;
}
