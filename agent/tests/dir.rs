//! The directory backend with the same behaviour tests as ZFS, on two directory roots
//! standing for two hosts. Mounts are bind mounts, so this needs root; skipped with a
//! reason otherwise, a failure under CI.

mod support;

use agent::locks::VolumeLocks;
use agent::storage::{Backend, CreateOptions, DirStorage, Storage, StorageSpec, Store};
use support::behaviour::{self, volume};
use testkit::{Scratch, is_root, prerequisite};

struct TwoHosts {
    src: DirStorage,
    dst: DirStorage,
    scratch: Scratch,
}

fn two_hosts() -> Option<TwoHosts> {
    if !prerequisite(is_root(), "bind mounts need root") {
        return None;
    }
    let scratch = Scratch::new("dirst");
    let host = |name: &str| {
        let root = scratch.path().join(name);
        DirStorage::new(root.join("data"), root.join("mnt"))
    };
    Some(TwoHosts {
        src: host("a"),
        dst: host("b"),
        scratch,
    })
}

#[tokio::test]
async fn full_then_incremental_into_a_read_only_replica() {
    let Some(hosts) = two_hosts() else { return };
    behaviour::full_then_incremental(&hosts.src, &hosts.dst).await;
}

#[tokio::test]
async fn broken_streams_change_nothing() {
    let Some(hosts) = two_hosts() else { return };
    behaviour::broken_streams_change_nothing(&hosts.src, &hosts.dst).await;
}

#[tokio::test]
async fn a_stale_copy_is_replaced_only_when_the_new_one_is_complete() {
    let Some(hosts) = two_hosts() else { return };
    behaviour::a_stale_copy_is_replaced_only_when_the_new_one_is_complete(&hosts.src, &hosts.dst)
        .await;
}

#[tokio::test]
async fn a_diverged_copy_is_set_aside_and_kept() {
    let Some(hosts) = two_hosts() else { return };
    behaviour::a_diverged_copy_is_set_aside_and_kept(&hosts.src, &hosts.dst).await;
}

#[tokio::test]
async fn a_clone_holds_its_snapshot_and_is_a_volume_of_its_own() {
    let Some(hosts) = two_hosts() else { return };
    behaviour::a_clone_holds_its_snapshot_and_is_a_volume_of_its_own(&hosts.src, &hosts.dst, false)
        .await;
}

#[tokio::test]
async fn errors_name_the_volume() {
    let Some(hosts) = two_hosts() else { return };
    behaviour::errors_name_the_volume(&hosts.src).await;
}

#[tokio::test]
async fn bad_names_are_refused_and_the_root_is_untouched() {
    let Some(hosts) = two_hosts() else { return };
    let root = hosts.scratch.path().to_owned();
    let listing = move || {
        let out = std::process::Command::new("find")
            .arg(&root)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    behaviour::bad_names_are_refused(&hosts.src, listing).await;
}

#[tokio::test]
async fn quota_is_recorded_but_not_enforced() {
    let Some(hosts) = two_hosts() else { return };
    let v = volume();
    let options = CreateOptions { quota: Some(1024) };
    hosts.src.create(&v, &options).await.unwrap();
    assert!(!hosts.src.capabilities().enforces_quota);
    assert_eq!(hosts.src.load(&v).unwrap().quota, Some(1024));
    hosts.src.destroy(&v).await.unwrap();
}

#[tokio::test]
async fn the_run_time_choice_behaves_the_same() {
    let Some(hosts) = two_hosts() else { return };
    let open = |host: &str| {
        let root = hosts.scratch.path().join(host);
        let spec: StorageSpec = format!("dir:{}", root.join("data").display())
            .parse()
            .unwrap();
        async move {
            Backend::open(&spec, root.join("mnt"), VolumeLocks::default())
                .await
                .unwrap()
        }
    };
    let (src, dst) = (open("c").await, open("d").await);
    assert!(matches!(src.store(), Store::Dir(_)));
    behaviour::full_then_incremental(&src, &dst).await;
}
