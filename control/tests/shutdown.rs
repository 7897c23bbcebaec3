//! SIGTERM stops a member within its grace period even while a watch stream is open.

use std::process::Command;
use std::time::{Duration, Instant};

use proto::control as pb;
use testkit::cluster::volume;
use testkit::{Cluster, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_member_with_an_open_watch() {
    let mut c = Cluster::start(1, &[]);
    c.leader(1).await;
    let mut client = c.client(1).await;
    let mut watch = client
        .watch(pb::WatchRequest {})
        .await
        .unwrap()
        .into_inner();
    client.create_volume(volume("seen")).await.unwrap();
    let event = watch.message().await.unwrap().expect("an event");
    assert_eq!(event.key, "seen");

    let proc = c.procs[0].as_mut().unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &proc.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = eventually(Duration::from_secs(15), "the member to exit", || {
        let r = proc.child.try_wait().unwrap();
        async move { r }
    })
    .await;
    assert!(exit.success(), "{exit:?}");
    let grace = control::daemon::SHUTDOWN_GRACE;
    assert!(
        started.elapsed() < grace + Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
