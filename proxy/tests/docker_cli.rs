//! The real `docker` CLI and docker-compose, through a real `powerstrip`, against a real
//! dockerd that this test starts (one for the whole file: it takes seconds to start).
//!
//! A custom harness (`harness = false`): `main` starts dockerd, runs every scenario whose
//! name contains the first command-line argument, and stops dockerd however they end.

use std::io::{BufRead, BufReader, Write};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::adapter::{AdapterServer, Reply, dead_url, echo_pre, rewrite_body, rewrite_response};
use testkit::docker::TestDocker;
use testkit::powerstrip::Powerstrip;
use testkit::{stdout_exact, unique};

const NO_HOOKS: &str = "endpoints: {}\nadapters: {}\n";

type Scenario = fn(&TestDocker);

const SCENARIOS: &[(&str, Scenario)] = &[
    ("run_prints_output", run_prints_output),
    (
        "stdin_eof_reaches_the_container",
        stdin_eof_reaches_the_container,
    ),
    ("logs_follow_streams", logs_follow_streams),
    ("exec_with_and_without_stdin", exec_with_and_without_stdin),
    (
        "events_stream_while_other_commands_run",
        events_stream_while_other_commands_run,
    ),
    (
        "build_streams_the_context_past_hooks",
        build_streams_the_context_past_hooks,
    ),
    ("compose_up_two_services", compose_up_two_services),
    (
        "adapter_chain_changes_env_and_response",
        adapter_chain_changes_env_and_response,
    ),
    (
        "failing_adapters_give_clear_errors",
        failing_adapters_give_clear_errors,
    ),
    ("oversized_hook_body_gets_413", oversized_hook_body_gets_413),
    (
        "sighup_reloads_and_keeps_old_config_when_bad",
        sighup_reloads_and_keeps_old_config_when_bad,
    ),
    ("fifty_concurrent_clients", fifty_concurrent_clients),
    (
        "the_documented_python_adapter_works",
        the_documented_python_adapter_works,
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in SCENARIOS {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let filter = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .cloned()
        .unwrap_or_default();
    let selected: Vec<_> = SCENARIOS
        .iter()
        .filter(|(name, _)| name.contains(&filter))
        .collect();
    if selected.is_empty() {
        return ExitCode::SUCCESS;
    }
    let Some(docker) = TestDocker::start_on_host("the proxy's Docker CLI tests") else {
        return ExitCode::SUCCESS;
    };
    let count = selected.len();
    println!("\nrunning {count} docker CLI scenarios");
    let mut failed = Vec::new();
    for (name, scenario) in selected {
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&docker)));
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!(
            "test {name} ... {verdict} ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    drop(docker);
    if failed.is_empty() {
        println!("\ntest result: ok. {count} passed");
        ExitCode::SUCCESS
    } else {
        println!("\ntest result: FAILED. failures: {failed:?}");
        ExitCode::FAILURE
    }
}

fn run_prints_output(docker: &TestDocker) {
    let proxy = Powerstrip::start(NO_HOOKS, &docker.socket());
    let out = proxy.run(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(stdout_exact(&out), "hi\n");
}

fn stdin_eof_reaches_the_container(docker: &TestDocker) {
    let proxy = Powerstrip::start(NO_HOOKS, &docker.socket());
    let mut child = proxy
        .docker()
        .args(["run", "-i", "--rm", "busybox", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"data\n").unwrap();
    // stdin is closed here: cat exits only if the EOF crossed the proxy.
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout_exact(&out), "data\n");
}

fn logs_follow_streams(docker: &TestDocker) {
    let proxy = Powerstrip::start(NO_HOOKS, &docker.socket());
    let script = "echo first; sleep 3; echo second";
    let id = stdout_exact(&proxy.run(&["run", "-d", "busybox", "sh", "-c", script]));
    let id = id.trim();
    let mut follower = proxy
        .docker()
        .args(["logs", "-f", id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "first");
    // The first line arrived while the container still runs: nothing was buffered.
    let running = stdout_exact(&proxy.run(&["inspect", "-f", "{{.State.Running}}", id]));
    assert_eq!(
        running.trim(),
        "true",
        "first line arrived only after the container exited"
    );
    assert_eq!(lines.next().unwrap().unwrap(), "second");
    assert!(lines.next().is_none());
    assert!(follower.wait().unwrap().success());
    proxy.run(&["rm", "-f", id]);
}

fn exec_with_and_without_stdin(docker: &TestDocker) {
    let proxy = Powerstrip::start(NO_HOOKS, &docker.socket());
    let name = unique("exec");
    stdout_exact(&proxy.run(&["run", "-d", "--name", &name, "busybox", "sleep", "300"]));
    // Without -i the CLI half-closes at once; the output must still come back.
    assert_eq!(
        stdout_exact(&proxy.run(&["exec", &name, "echo", "hello"])),
        "hello\n"
    );
    let mut child = proxy
        .docker()
        .args(["exec", "-i", &name, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    assert_eq!(stdout_exact(&child.wait_with_output().unwrap()), "piped\n");
    let status = proxy.run(&["exec", &name, "sh", "-c", "exit 7"]).status;
    assert_eq!(
        status.code(),
        Some(7),
        "exec must report the command's own exit code"
    );
    proxy.run(&["rm", "-f", &name]);
}

fn events_stream_while_other_commands_run(docker: &TestDocker) {
    let proxy = Powerstrip::start(NO_HOOKS, &docker.socket());
    let name = unique("evt");
    // From a second ago: the start is seen however long the stream takes to open.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    let mut events = proxy
        .docker()
        .args(["events", "--since", &since.to_string()])
        .args(["--filter", "type=container", "--filter", "event=start"])
        .args(["--format", "{{.Actor.Attributes.name}}"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = events.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Other commands go through while the events stream is open.
    stdout_exact(&proxy.run(&["run", "--rm", "--name", &name, "busybox", "true"]));
    // Earlier starts in that second may come first.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let seen = rx.recv_timeout(left).expect("the start event arrives");
        if seen == name {
            break;
        }
    }
    let _ = events.kill();
    let _ = events.wait();
}

fn build_streams_the_context_past_hooks(docker: &TestDocker) {
    let seen_bodies = Arc::new(Mutex::new(Vec::<Value>::new()));
    let record = seen_bodies.clone();
    let spy = AdapterServer::start(move |hook| {
        record
            .lock()
            .unwrap()
            .push(hook["ClientRequest"]["Body"].clone());
        Reply::Json(echo_pre(hook))
    });
    let config = format!(
        "endpoints:\n  \"POST /*/build\": {{ pre: [spy] }}\nadapters:\n  spy: {}\n",
        spy.url()
    );
    let proxy = Powerstrip::start(&config, &docker.socket());
    let context = docker.dir().join(unique("ctx"));
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox\nCOPY message /message\nRUN echo built >> /message\nCMD [\"cat\", \"/message\"]\n",
    )
    .unwrap();
    std::fs::write(context.join("message"), "copied\n").unwrap();
    let tag = format!("{}:1", unique("pst-built"));
    stdout_exact(
        &proxy
            .docker()
            .args(["build", "-t", &tag])
            .arg(&context)
            .output()
            .unwrap(),
    );
    assert_eq!(
        stdout_exact(&proxy.run(&["run", "--rm", &tag])),
        "copied\nbuilt\n"
    );
    // The adapter ran, but the tar context was never handed to it.
    assert_eq!(*seen_bodies.lock().unwrap(), vec![Value::Null]);
    proxy.run(&["rmi", &tag]);
}

fn compose_up_two_services(docker: &TestDocker) {
    if !testkit::prerequisite(
        testkit::have("docker-compose"),
        "docker-compose is not installed",
    ) {
        return;
    }
    let proxy = Powerstrip::start(NO_HOOKS, &docker.socket());
    let project = unique("pst").replace('-', "");
    let dir = docker.dir().join(&project);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        r#"version: "2.4"
services:
  api:
    image: busybox
    command: sh -c 'echo api-says-hello > /tmp/index.html && exec httpd -f -p 8080 -h /tmp'
  web:
    image: busybox
    depends_on: [api]
    command: sh -c 'for i in $$(seq 100); do wget -qO- http://api:8080/ && exit 0; sleep 0.2; done; exit 1'
"#,
    )
    .unwrap();
    let compose = |args: &[&str]| {
        std::process::Command::new("docker-compose")
            .current_dir(&dir)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", proxy.socket().display()),
            )
            .args(["-p", &project])
            .args(args)
            .output()
            .unwrap()
    };
    let up = compose(&["up", "--abort-on-container-exit", "--exit-code-from", "web"]);
    let down = compose(&["down", "-t", "1"]);
    let output = stdout_exact(&up);
    assert!(
        output.contains("api-says-hello"),
        "web did not reach api:\n{output}"
    );
    stdout_exact(&down);
}

fn adapter_chain_changes_env_and_response(docker: &TestDocker) {
    // a adds ORDER=a; b appends b to it: only right if b sees a's output.
    let a = AdapterServer::start(|hook| match hook["Type"].as_str() {
        Some("pre-hook") => Reply::Json(rewrite_body(hook, |body| {
            let env = body["Env"]
                .as_array_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            let mut env: Vec<Value> = env;
            env.push(json!("ORDER=a"));
            body["Env"] = Value::Array(env);
        })),
        _ => Reply::Json(rewrite_response(hook, |body| {
            body["Config"]["Labels"]["seen-by"] = json!("a");
        })),
    });
    let b = AdapterServer::start(|hook| match hook["Type"].as_str() {
        Some("pre-hook") => Reply::Json(rewrite_body(hook, |body| {
            for entry in body["Env"].as_array_mut().into_iter().flatten() {
                if entry.as_str().is_some_and(|e| e.starts_with("ORDER=")) {
                    *entry = json!(format!("{}b", entry.as_str().unwrap()));
                }
            }
        })),
        _ => Reply::Json(rewrite_response(hook, |body| {
            let before = body["Config"]["Labels"]["seen-by"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            body["Config"]["Labels"]["seen-by"] = json!(format!("{before},b"));
        })),
    });
    let config = format!(
        "version: 1\nendpoints:\n  \"POST /*/containers/create\":\n    pre: [a, b]\n  \"GET /*/containers/*/json\":\n    post: [a, b]\nadapters:\n  a: {}\n  b: {}\n",
        a.url(),
        b.url()
    );
    let proxy = Powerstrip::start(&config, &docker.socket());
    let name = unique("chain");
    let out = proxy.run(&["run", "--name", &name, "busybox", "sh", "-c", "echo $ORDER"]);
    assert_eq!(stdout_exact(&out), "ab\n");
    let label = proxy.run(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"seen-by\"}}",
        &name,
    ]);
    assert_eq!(stdout_exact(&label), "a,b\n");
    // Docker itself never saw the label: the post-hooks changed only the response.
    let direct = std::process::Command::new("docker")
        .env(
            "DOCKER_HOST",
            format!("unix://{}", docker.socket().display()),
        )
        .args([
            "inspect",
            "-f",
            "{{index .Config.Labels \"seen-by\"}}",
            &name,
        ])
        .output()
        .unwrap();
    assert_eq!(stdout_exact(&direct), "\n");
    proxy.run(&["rm", "-f", &name]);
}

fn failing_adapters_give_clear_errors(docker: &TestDocker) {
    let slow = AdapterServer::start(|_| Reply::Hang(Duration::from_secs(60)));
    let garbage = AdapterServer::start(|_| Reply::Raw(200, "this is not json"));
    let sad = AdapterServer::start(|_| Reply::Raw(500, "sadness for you, today."));
    let cases = [
        ("down", dead_url(), "cannot reach"),
        ("slow", slow.url(), "no answer within 1s"),
        (
            "garbage",
            garbage.url(),
            "is not a Powerstrip v1 ModifiedClientRequest",
        ),
        (
            "sad",
            sad.url(),
            "answered 500 Internal Server Error: sadness for you, today.",
        ),
    ];
    let label = unique("failing");
    for (name, url, expected) in cases {
        let config = format!(
            "endpoints:\n  \"POST /*/containers/create\": {{ pre: [{name}] }}\nadapters:\n  {name}: {{ url: \"{url}\", timeout: 1s }}\n"
        );
        let proxy = Powerstrip::start(&config, &docker.socket());
        let started = Instant::now();
        let create = proxy
            .docker()
            .args(["create", "--label", &label, "busybox", "true"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Meanwhile, requests that no hook touches keep flowing.
        let ps = Instant::now();
        stdout_exact(&proxy.run(&["ps"]));
        assert!(
            ps.elapsed() < Duration::from_secs(3),
            "{name}: docker ps waited on the adapter"
        );
        let out = create.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: create should fail");
        assert!(
            stderr.contains(&format!("adapter '{name}' failed in its pre-hook")),
            "{name}: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{name}: expected {expected:?} in {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name}: took {:?}",
            started.elapsed()
        );
    }
    // Docker never saw any of those creates.
    let direct = std::process::Command::new("docker")
        .env(
            "DOCKER_HOST",
            format!("unix://{}", docker.socket().display()),
        )
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
        .unwrap();
    assert_eq!(stdout_exact(&direct), "");
    // With on_error: ignore, a dead adapter is skipped.
    let config = format!(
        "endpoints:\n  \"POST /*/containers/create\": {{ pre: [down] }}\nadapters:\n  down: {{ url: \"{}\", on_error: ignore }}\n",
        dead_url()
    );
    let proxy = Powerstrip::start(&config, &docker.socket());
    assert_eq!(
        stdout_exact(&proxy.run(&["run", "--rm", "busybox", "echo", "ignored"])),
        "ignored\n"
    );
}

fn oversized_hook_body_gets_413(docker: &TestDocker) {
    let echo = AdapterServer::start(|hook| Reply::Json(echo_pre(hook)));
    let config = format!(
        "endpoints:\n  \"POST /*/containers/create\": {{ pre: [echo] }}\nadapters:\n  echo: {}\n",
        echo.url()
    );
    let proxy = Powerstrip::start_with(&config, &docker.socket(), &["--max-hook-body", "2048"]);
    let big = format!("BIG={}", "x".repeat(4096));
    let out = proxy.run(&["create", "-e", &big, "busybox", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("larger than the 2048 bytes that hooks may inspect"),
        "{stderr}"
    );
    assert_eq!(echo.calls(), 0);
    assert_eq!(
        stdout_exact(&proxy.run(&["run", "--rm", "busybox", "echo", "small"])),
        "small\n"
    );
}

fn sighup_reloads_and_keeps_old_config_when_bad(docker: &TestDocker) {
    let tagger = AdapterServer::start(|hook| {
        Reply::Json(rewrite_body(hook, |body| {
            body["Env"] = json!(["RELOADED=yes"])
        }))
    });
    let proxy = Powerstrip::start(NO_HOOKS, &docker.socket());
    let show = || {
        stdout_exact(&proxy.run(&["run", "--rm", "busybox", "sh", "-c", "echo ${RELOADED:-no}"]))
    };
    assert_eq!(show(), "no\n");
    let hooked = format!(
        "endpoints:\n  \"POST /*/containers/create\": {{ pre: [tag] }}\nadapters:\n  tag: {}\n",
        tagger.url()
    );
    proxy.reload(&hooked);
    testkit::wait_until(Duration::from_secs(10), "the reload to apply", || {
        show() == "yes\n"
    });
    proxy.reload("endpoints: [this is not valid");
    testkit::wait_until(Duration::from_secs(10), "the refusal to be logged", || {
        proxy.log().contains("reload refused")
    });
    assert_eq!(
        show(),
        "yes\n",
        "a bad file must leave the old configuration in force"
    );
}

fn fifty_concurrent_clients(docker: &TestDocker) {
    let echo = AdapterServer::start(|hook| Reply::Json(echo_pre(hook)));
    let config = format!(
        "endpoints:\n  \"POST /*/containers/create\": {{ pre: [echo, dbg] }}\nadapters:\n  echo: {}\n  dbg: builtin:debug\n",
        echo.url()
    );
    let proxy = Arc::new(Powerstrip::start(&config, &docker.socket()));
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let proxy = proxy.clone();
            std::thread::spawn(move || {
                // Half run containers (create, attach, wait, start), half list them.
                if i % 2 == 0 {
                    let out =
                        proxy.run(&["run", "--rm", "busybox", "echo", &format!("client-{i}")]);
                    assert_eq!(stdout_exact(&out), format!("client-{i}\n"));
                } else {
                    stdout_exact(&proxy.run(&["ps", "-a"]));
                }
            })
        })
        .collect();
    let failures = clients
        .into_iter()
        .map(|c| c.join())
        .filter(Result::is_err)
        .count();
    assert_eq!(failures, 0, "{failures} of 50 clients failed");
    assert_eq!(echo.calls(), 25);
}

fn the_documented_python_adapter_works(docker: &TestDocker) {
    if !testkit::prerequisite(testkit::have("python3"), "python3 is not installed") {
        return;
    }
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../demos/adapters/label.py");
    let port = testkit::free_port();
    let mut adapter = std::process::Command::new("python3")
        .arg(&script)
        .arg(port.to_string())
        .spawn()
        .unwrap();
    testkit::wait_until(Duration::from_secs(10), "label.py to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let config = format!(
        "endpoints:\n  \"POST /*/containers/create\": {{ pre: [label] }}\nadapters:\n  label: http://127.0.0.1:{port}/hook\n"
    );
    let proxy = Powerstrip::start(&config, &docker.socket());
    let name = unique("labelled");
    stdout_exact(&proxy.run(&["create", "--name", &name, "busybox", "true"]));
    let label = proxy.run(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"powerstrip.example/labelled-by\"}}",
        &name,
    ]);
    let _ = adapter.kill();
    let _ = adapter.wait();
    assert_eq!(stdout_exact(&label), "label.py\n");
    proxy.run(&["rm", "-f", &name]);
}
