//! What `flockerctl` shows of a volume's use: `volume inspect` lists its moves (when, how
//! many bytes, how long no container could use it) and `volume ls` who holds it. One
//! control member and two real agents (zfs-fuse pools) on loopback; run
//! `cargo build -p agent --bin flocker-agent` first.

use proto::control as pb;
use serde_json::Value;
use testkit::cluster::Role;
use testkit::move_lab::Lab;

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_inspect_shows_a_finished_move_and_volume_ls_the_task_holding_the_volume() {
    let Some(lab) = Lab::start(1, 2, None).await else {
        return;
    };
    lab.create("db", 0).await;
    let data = testkit::random(4 * MIB);
    std::fs::write(lab.hosts[0].path("db").join("data"), &data).unwrap();

    let events = lab.move_ok("db", 1);
    let sent = events.last().unwrap()["bytes_sent"].as_u64().unwrap();
    assert!(sent >= data.len() as u64, "{events:?}");

    let v = lab.volume("db");
    let moves = v["moves"].as_array().expect("inspect lists the moves");
    assert_eq!(moves.len(), 1, "{v}");
    let m = &moves[0];
    assert_eq!((&m["from"], &m["to"]), (&"host-a".into(), &"host-b".into()));
    assert_eq!(m["result"], "done", "{m}");
    assert_eq!(m["bytes_sent"].as_u64(), Some(sent), "{m}");
    let at = |key: &str| m[key].as_u64().unwrap_or_else(|| panic!("{key} in {m}"));
    let (started, handoff, ended) = (at("started_ms"), at("handoff_ms"), at("ended_ms"));
    assert!(started <= handoff && handoff <= ended, "{m}");
    assert_eq!(at("downtime_ms"), ended - handoff, "{m}");

    let shown = lab.ctl_table(&["volume", "inspect", "db"]);
    let row = shown
        .lines()
        .find(|l| l.contains("host-a -> host-b"))
        .unwrap_or_else(|| panic!("no move row in:\n{shown}"));
    assert!(row.trim_end().ends_with("done"), "{row}");
    let downtime = humantime::format_duration(std::time::Duration::from_millis(ended - handoff));
    assert!(row.contains(&downtime.to_string()), "{row}");

    // The lease host-b's agent takes when a Swarm task using the volume starts there.
    let node_tls = lab.c.pki.tls(Role::Node, "host-b");
    let mut node = lab.c.client_with(1, &node_tls).await;
    let lease = pb::Lease {
        volume: "db".into(),
        node: "host-b".into(),
        container_id: "c0ffee0123456789".into(),
        container_name: Some("db.1.k2j3abc".into()),
        service: Some("db".into()),
        task: Some("db.1.k2j3abc".into()),
    };
    node.acquire_lease(lease).await.unwrap();
    let listed = lab.ctl_table(&["volume", "ls"]);
    let row = listed.lines().find(|l| l.starts_with("db ")).unwrap();
    assert!(
        listed.lines().next().unwrap().contains("HELD BY"),
        "{listed}"
    );
    assert!(row.trim_end().ends_with("db.1.k2j3abc@host-b"), "{listed}");
    let all: Value = serde_json::from_slice(&lab.ctl(&["volume", "ls"]).stdout).unwrap();
    let held = &all[0]["held_by"][0];
    assert_eq!(
        (&held["task"], &held["service"]),
        (&"db.1.k2j3abc".into(), &"db".into())
    );
    assert_eq!(held["node"], "host-b", "{all}");
}
