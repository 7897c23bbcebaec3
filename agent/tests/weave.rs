//! The `weave` adapter end to end (root): the real `docker` CLI through a real powerstrip
//! with `builtin:weave`, a private dockerd in its own network namespace, the overlay
//! bridge there, and the static `wait-for-net` bind-mounted into busybox containers.

use std::time::{Duration, Instant};

use testkit::weave::WeaveHost;
use testkit::{poll_until, stderr, stdout, unique};

fn pid_of(host: &WeaveHost, name: &str) -> u32 {
    let pid = stdout(&host.docker(&["inspect", "-f", "{{.State.Pid}}", name]));
    pid.parse().unwrap()
}

#[test]
fn containers_get_their_address_and_keep_their_own_command() {
    let Some(host) = WeaveHost::start("containers_get_their_address_and_keep_their_own_command")
    else {
        return;
    };

    // The address is there when the command runs.
    let out = host.docker(&[
        "run",
        "--rm",
        "-e",
        "WEAVE_CIDR=10.255.0.51/8",
        "busybox",
        "ip",
        "-4",
        "addr",
        "show",
        "ethwe",
    ]);
    assert!(
        stdout(&out).contains("inet 10.255.0.51/8"),
        "{}",
        stdout(&out)
    );

    // What the adapter costs `docker run` (printed, for docs/network.md).
    let median_run_ms = |extra: &[&str]| {
        let mut times: Vec<u128> = (0..5)
            .map(|_| {
                let mut args = vec!["run", "--rm"];
                args.extend_from_slice(extra);
                args.extend_from_slice(&["busybox", "true"]);
                let started = Instant::now();
                stdout(&host.docker(&args));
                started.elapsed().as_millis()
            })
            .collect();
        times.sort();
        times[2]
    };
    let plain = median_run_ms(&[]);
    let weave = median_run_ms(&["-e", "WEAVE_CIDR=10.255.0.52/8"]);
    eprintln!(
        "docker run --rm busybox true, median of 5: {plain} ms plain, {weave} ms with WEAVE_CIDR"
    );

    // Two containers on this host reach each other over ethwe.
    let server = unique("srv");
    stdout(&host.docker(&[
        "run",
        "-d",
        "--name",
        &server,
        "-e",
        "WEAVE_CIDR=10.255.0.61/8",
        "busybox",
        "sleep",
        "300",
    ]));
    assert!(WeaveHost::ethwe_of(pid_of(&host, &server)).contains("10.255.0.61/8"));
    let ping = host.docker(&[
        "run",
        "--rm",
        "-e",
        "WEAVE_CIDR=10.255.0.62/8",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "10.255.0.61",
    ]);
    assert!(
        stdout(&ping).contains("1 packets received"),
        "{}",
        stdout(&ping)
    );

    // The exit code is the application's: `docker run` and `docker wait` both say 3.
    let quitter = unique("exit");
    let run = host.docker(&[
        "run",
        "--name",
        &quitter,
        "-e",
        "WEAVE_CIDR=10.255.0.63/8",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(run.status.code(), Some(3), "{}", stderr(&run));
    assert_eq!(stdout(&host.docker(&["wait", &quitter])), "3");

    // `docker stop` delivers SIGTERM to the application (wait-for-net exec'd it).
    let out_dir = host.docker.dir().join(unique("out"));
    std::fs::create_dir_all(&out_dir).unwrap();
    let bind = format!("{}:/out", out_dir.display());
    let trapper = unique("trap");
    stdout(&host.docker(&[
        "run",
        "-d",
        "--name",
        &trapper,
        "-v",
        &bind,
        "-e",
        "WEAVE_CIDR=10.255.0.64/8",
        "busybox",
        "sh",
        "-c",
        "trap 'echo term > /out/got; exit 42' TERM; echo ready > /out/ready; \
         while true; do sleep 0.1; done",
    ]));
    assert!(poll_until(Duration::from_secs(10), || out_dir
        .join("ready")
        .exists()));
    let started = Instant::now();
    stdout(&host.docker(&["stop", "-t", "20", &trapper]));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stop took {:?}: SIGTERM did not reach the trap, Docker had to kill",
        started.elapsed()
    );
    assert_eq!(stdout(&host.docker(&["wait", &trapper])), "42");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("got")).unwrap().trim(),
        "term"
    );
}

#[test]
fn images_with_and_without_entrypoint_and_cmd() {
    let Some(host) = WeaveHost::start("images_with_and_without_entrypoint_and_cmd") else {
        return;
    };
    let show = "ip -4 -o addr show dev ethwe";
    host.docker.build(
        "both:1",
        &format!("FROM busybox\nENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"{show}\"]\n"),
    );
    host.docker.build(
        "cmdonly:1",
        &format!("FROM busybox\nCMD [\"sh\", \"-c\", \"{show}\"]\n"),
    );
    host.docker.build(
        "entryonly:1",
        "FROM busybox\nENTRYPOINT [\"/bin/echo\", \"entry\"]\n",
    );
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "-e", "WEAVE_CIDR=10.255.0.71/8"];
        all.extend_from_slice(args);
        stdout(&host.docker(&all))
    };
    // Image ENTRYPOINT + CMD, the request gives neither: both from the image.
    assert!(run(&["both:1"]).contains("10.255.0.71/8"));
    // The request gives Cmd: the image's ENTRYPOINT with the request's command.
    assert_eq!(run(&["both:1", "echo override"]), "override");
    // The request gives Entrypoint only: the image's CMD is not used.
    assert_eq!(run(&["--entrypoint", "/bin/echo", "both:1"]), "");
    assert_eq!(
        run(&["--entrypoint", "/bin/echo", "both:1", "a", "b"]),
        "a b"
    );
    // `--entrypoint ""` clears it: the request's command alone.
    assert_eq!(
        run(&["--entrypoint", "", "both:1", "echo", "cleared"]),
        "cleared"
    );
    // CMD only, ENTRYPOINT only, neither.
    assert!(run(&["cmdonly:1"]).contains("10.255.0.71/8"));
    assert_eq!(run(&["cmdonly:1", "echo", "mine"]), "mine");
    assert_eq!(run(&["entryonly:1"]), "entry");
    assert_eq!(run(&["entryonly:1", "a", "b"]), "entry a b");
    assert_eq!(run(&["busybox", "echo", "plain"]), "plain");

    // What Docker stored: wait-for-net in front, bind-mounted read-only.
    let name = unique("cfg");
    stdout(&host.docker(&[
        "create",
        "--name",
        &name,
        "-e",
        "WEAVE_CIDR=10.255.0.72/8",
        "-v",
        "/tmp:/t",
        "both:1",
    ]));
    let config = stdout(&host.docker(&[
        "inspect",
        "-f",
        "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{json .HostConfig.Binds}}",
        &name,
    ]));
    assert!(
        config.starts_with(r#"["/w/wait-for-net"] ["--","/bin/sh","-c","ip -4 -o addr show dev ethwe"] ["/tmp:/t","/"#),
        "{config}"
    );
    assert!(
        config.ends_with(r#"/wait-for-net:/w/wait-for-net:ro"]"#),
        "{config}"
    );

    // No WEAVE_CIDR: the container is created exactly as asked.
    let plain = unique("plain");
    stdout(&host.docker(&["create", "--name", &plain, "busybox", "true"]));
    let config = stdout(&host.docker(&[
        "inspect",
        "-f",
        "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{json .HostConfig.Binds}}",
        &plain,
    ]));
    assert_eq!(config, r#"null ["true"] null"#);
}

#[test]
fn bad_or_unservable_requests_are_refused_before_create() {
    let Some(host) = WeaveHost::start("bad_or_unservable_requests_are_refused_before_create")
    else {
        return;
    };
    let name = unique("bad");
    let out = host.docker(&[
        "run",
        "--rm",
        "--name",
        &name,
        "-e",
        "WEAVE_CIDR=10.255.0.300/8",
        "busybox",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("bad WEAVE_CIDR \"10.255.0.300/8\""),
        "{}",
        stderr(&out)
    );
    let out = host.docker(&[
        "run",
        "--rm",
        "--name",
        &name,
        "-e",
        "WEAVE_CIDR=net:10.2.0.0/24",
        "busybox",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("only the control service can pick"),
        "{}",
        stderr(&out)
    );
    let out = host.docker(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--network",
        "host",
        "-e",
        "WEAVE_CIDR=10.255.0.91/8",
        "busybox",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--network host shares another one"),
        "{}",
        stderr(&out)
    );
    // Nothing was created.
    assert_eq!(
        stdout(&host.docker(&["ps", "-aq", "-f", &format!("name={name}")])),
        ""
    );

    // An attach that fails (here: the overlay bridge is gone) fails the start, clearly, and
    // does not leave the container waiting in wait-for-net.
    host.docker.netns().ip(&["link", "del", "weave"]);
    let orphan = unique("orphan");
    let out = host.docker(&[
        "run",
        "-d",
        "--name",
        &orphan,
        "-e",
        "WEAVE_CIDR=10.255.0.92/8",
        "busybox",
        "sleep",
        "300",
    ]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("weave network could not be set up, so it was stopped")
            && said.contains("overlay bridge"),
        "{said}"
    );
    let running = stdout(&host.docker(&["inspect", "-f", "{{.State.Running}}", &orphan]));
    assert_eq!(running, "false");
}

#[test]
fn containers_docker_restarts_by_itself_get_their_address_back() {
    let Some(host) =
        WeaveHost::start("containers_docker_restarts_by_itself_get_their_address_back")
    else {
        return;
    };
    let _watcher = host.watch_restarts();
    let inspect = |name: &str| -> (u32, u32) {
        let out = host.docker(&["inspect", "-f", "{{.RestartCount}} {{.State.Pid}}", name]);
        let text = stdout(&out);
        let (count, pid) = text.split_once(' ').unwrap();
        (count.parse().unwrap(), pid.parse().unwrap())
    };

    // A restart policy: the container exits after a second and Docker starts it again.
    let flaky = unique("flaky");
    stdout(&host.docker(&[
        "run",
        "-d",
        "--name",
        &flaky,
        "--restart",
        "always",
        "-e",
        "WEAVE_CIDR=10.255.0.81/8",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 1",
    ]));
    let back = poll_until(Duration::from_secs(30), || {
        let (count, pid) = inspect(&flaky);
        count >= 2 && pid != 0 && WeaveHost::ethwe_of(pid).contains("inet 10.255.0.81/8")
    });
    assert!(back, "after Docker restarted it, ethwe never came back");

    // `docker restart` sent straight to dockerd, past the proxy: only the watcher sees it.
    let sleeper = unique("sleeper");
    stdout(&host.docker(&[
        "run",
        "-d",
        "--name",
        &sleeper,
        "-e",
        "WEAVE_CIDR=10.255.0.82/8",
        "busybox",
        "sleep",
        "300",
    ]));
    let (_, before) = inspect(&sleeper);
    stdout(&host.docker.cli(&["restart", "-t", "1", &sleeper]));
    let (_, after) = inspect(&sleeper);
    assert_ne!(before, after);
    let back = poll_until(Duration::from_secs(10), || {
        WeaveHost::ethwe_of(after).contains("inet 10.255.0.82/8")
    });
    assert!(back, "after docker restart, ethwe never came back");
}
