//! The agent's Docker client against a real private dockerd (root): inspecting containers
//! and images, listing running containers, typed 404s, the events stream surviving a
//! daemon restart (with a `Connected` at every connection for [`DockerApi::updates`]), and
//! stopping the containers that hold a volume for a move (`transfer::stop::Stopper`).

use std::sync::Arc;
use std::time::Duration;

use agent::docker::{
    Action, Docker, DockerApi, DockerError, Event, EventFilter, EventStream, Update,
};
use futures_util::StreamExt;
use testkit::docker::TestDocker;
use testkit::{stdout, unique};

/// The next event for container `id` with `action`, skipping others; panics after 30 s.
async fn next_for(events: &mut EventStream, id: &str, action: Action) -> Event {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.next().await {
            if event.id == id && event.action == action {
                return event;
            }
        }
        panic!("the event stream ended");
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {action:?} event for {id} within 30 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_containers_and_images() {
    let Some(docker) = TestDocker::start("inspect_containers_and_images") else {
        return;
    };
    let client = Docker::new(docker.socket());
    let name = unique("insp");
    let bind = format!("{}:/host:ro", docker.dir().display());
    let id = stdout(&docker.cli(&[
        "run",
        "-d",
        "--name",
        &name,
        "-e",
        "GREETING=hi",
        "-v",
        &bind,
        "busybox",
        "sleep",
        "300",
    ]));

    let info = client.inspect_container(&name).await.unwrap();
    assert_eq!(info.id, id);
    assert_eq!(info.name, format!("/{name}"));
    assert!(info.state.running && info.state.pid > 0, "{:?}", info.state);
    assert_eq!(info.config.env_var("GREETING"), Some("hi"));
    assert_eq!(
        info.config.cmd.as_deref(),
        Some(&["sleep".into(), "300".into()][..])
    );
    assert_eq!(info.config.entrypoint, None);
    assert_eq!(info.config.image, "busybox");
    assert_eq!(info.host_config.binds, [bind]);
    let mount = &info.mounts[0];
    assert_eq!(
        (mount.kind.as_str(), mount.destination.as_str()),
        ("bind", "/host")
    );
    assert_eq!(mount.source, docker.dir().display().to_string());
    let running = client.running_containers().await.unwrap();
    let listed = running.iter().find(|c| c.id == id).expect("listed");
    assert_eq!(listed.names, [format!("/{name}")]);
    assert_eq!(listed.mounts, info.mounts);
    let by_id = client.inspect_container(&id[..12]).await.unwrap();
    assert_eq!(by_id.state.pid, info.state.pid);
    // The PID is the container's init in our PID namespace.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", info.state.pid)).unwrap();
    assert_eq!(comm.trim(), "sleep");

    docker.build(
        "both:1",
        "FROM busybox\nENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"echo built\"]\n",
    );
    let image = client.inspect_image("both:1").await.unwrap();
    assert_eq!(image.config.entrypoint.unwrap(), ["/bin/sh", "-c"]);
    assert_eq!(image.config.cmd.unwrap(), ["echo built"]);
    let imported = client.inspect_image("busybox").await.unwrap();
    assert_eq!(imported.config.entrypoint, None);
    assert!(imported.config.env.contains(&"PATH=/bin".to_owned()));

    match client.inspect_container("no-such-container").await {
        Err(e @ DockerError::NotFound { .. }) => {
            assert_eq!(e.to_string(), "no such container: no-such-container")
        }
        other => panic!("{other:?}"),
    }
    match client.inspect_image("no/such:image").await {
        Err(e @ DockerError::NotFound { .. }) => {
            assert_eq!(e.to_string(), "no such image: no/such:image")
        }
        other => panic!("{other:?}"),
    }
    client.kill(&name, "KILL").await.unwrap();
    let killed = client.inspect_container(&name).await.unwrap();
    assert!(!killed.state.running);
    let running = client.running_containers().await.unwrap();
    assert!(!running.iter().any(|c| c.id == id), "{running:?}");
    let e = client.kill("no-such-container", "KILL").await.unwrap_err();
    assert_eq!(e.to_string(), "no such container: no-such-container");
    let dead = Docker::new(docker.dir().join("nothing.sock"));
    let e = dead.inspect_container(&name).await.unwrap_err();
    assert!(matches!(e, DockerError::Unreachable { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_typed_and_survive_a_daemon_restart() {
    let Some(mut docker) = TestDocker::start("events_are_typed_and_survive_a_daemon_restart")
    else {
        return;
    };
    let client = Docker::new(docker.socket());
    let mut events = client.events(EventFilter::actions([
        Action::Start,
        Action::Die,
        Action::Stop,
        Action::Restart,
        Action::Destroy,
    ]));
    let mut updates = client.updates(EventFilter::actions([Action::Start]));
    let first = tokio::time::timeout(Duration::from_secs(30), updates.next()).await;
    assert_eq!(
        first.expect("connected within 30 s"),
        Some(Update::Connected)
    );
    let name = unique("ev");
    let id = stdout(&docker.cli(&["run", "-d", "--name", &name, "busybox", "sleep", "300"]));
    let start = next_for(&mut events, &id, Action::Start).await;
    assert_eq!(start.name, name);
    assert_eq!(start.attributes["image"], "busybox");
    stdout(&docker.cli(&["restart", "-t", "1", &name]));
    next_for(&mut events, &id, Action::Restart).await;
    stdout(&docker.cli(&["stop", "-t", "1", &name]));
    let die = next_for(&mut events, &id, Action::Die).await;
    assert!(die.attributes.contains_key("exitCode"), "{die:?}");
    next_for(&mut events, &id, Action::Stop).await;
    stdout(&docker.cli(&["rm", &name]));
    next_for(&mut events, &id, Action::Destroy).await;

    // The same stream goes on after dockerd restarts.
    docker.restart();
    let after = unique("ev");
    let id2 = stdout(&docker.cli(&["run", "-d", "--name", &after, "busybox", "sleep", "300"]));
    let start = next_for(&mut events, &id2, Action::Start).await;
    assert_eq!(start.name, after);
    // `updates` says it connected again before the events of the new connection.
    let mut reconnected = false;
    loop {
        let update = tokio::time::timeout(Duration::from_secs(30), updates.next()).await;
        match update.expect("updates within 30 s").expect("updates go on") {
            Update::Connected => reconnected = true,
            Update::Event(event) if event.id == id2 => break,
            Update::Event(_) => {}
        }
    }
    assert!(reconnected, "no Connected after the daemon restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_holders_of_a_volume_sends_sigterm_and_spares_the_others() {
    let Some(docker) =
        TestDocker::start("stopping_the_holders_of_a_volume_sends_sigterm_and_spares_the_others")
    else {
        return;
    };
    let volume_root = docker.dir().join("vols");
    std::fs::create_dir_all(volume_root.join("app")).unwrap();
    let stopper = agent::transfer::stop::Stopper {
        docker: Arc::new(Docker::new(docker.socket())),
        volume_root: volume_root.clone(),
    };
    let bind = format!("{}:/data", volume_root.join("app").display());
    let holder = stdout(&docker.cli(&[
        "run",
        "-d",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "trap 'echo stopping > /data/by; exit 143' TERM; while true; do sleep 1 & wait $!; done",
    ]));
    let other = stdout(&docker.cli(&["run", "-d", "busybox", "sleep", "300"]));
    let app = agent::storage::VolumeName::new("app").unwrap();
    let grace = Duration::from_secs(10);

    // A container that does not use the volume is refused, and left running.
    let refused = stopper
        .stop(&app, std::slice::from_ref(&other), grace)
        .await;
    let message = refused.unwrap_err().to_string();
    assert!(
        message.contains(&other) && message.contains("app"),
        "{message}"
    );
    let state = |id: &str| {
        stdout(&docker.cli(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", id]))
    };
    assert_eq!(state(&other), "running 0");

    // The holder gets SIGTERM: its handler runs (exit code 143, its last write is there).
    let stopped = stopper
        .stop(&app, std::slice::from_ref(&holder), grace)
        .await
        .unwrap();
    assert_eq!(stopped.stopped, std::slice::from_ref(&holder));
    assert_eq!(state(&holder), "exited 143");
    let by = std::fs::read_to_string(volume_root.join("app/by")).unwrap();
    assert_eq!(by, "stopping\n");

    // Again, and for a container Docker never knew: nothing to stop, reported as such.
    let gone = "0123456789ab".to_owned();
    let again = stopper
        .stop(&app, &[holder.clone(), gone.clone()], grace)
        .await
        .unwrap();
    assert!(again.stopped.is_empty(), "{again:?}");
    assert_eq!(again.not_running, [holder, gone.clone()]);
    let client = Docker::new(docker.socket());
    assert!(matches!(
        client.stop(&gone, grace).await,
        Err(DockerError::NotFound { .. })
    ));
}
