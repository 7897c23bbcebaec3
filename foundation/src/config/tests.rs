use std::collections::HashMap;
use std::path::Path;

use clap::Parser;

use super::*;

/// A daemon's flags, in small.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
struct Args {
    #[arg(long)]
    node: String,
    #[arg(long, value_delimiter = ',', required = true)]
    control: Vec<String>,
    #[arg(long, default_value_t = 2000)]
    heartbeat_ms: u64,
    #[arg(long, default_value = "/etc/flocker/tls/node")]
    tls_dir: PathBuf,
    #[arg(long)]
    advertise: Option<String>,
    #[arg(long = "peer", value_delimiter = ',')]
    peers: Vec<String>,
    #[arg(long)]
    join: bool,
    #[command(flatten)]
    file: FileArgs,
}

const LAYERS: Layers = Layers {
    default_file: "/nonexistent/flocker/test.yml",
    env_prefix: "FLOCKER_TEST",
};

fn load_with(argv: &[&str], env: &[(&str, &str)]) -> Result<Layered<Args>, LoadError> {
    let env: HashMap<String, OsString> = env
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    let argv = std::iter::once("test").chain(argv.iter().copied());
    load::<Args>(argv, |k| env.get(k).cloned(), &LAYERS)
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("settings.yml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn problems(result: Result<Layered<Args>, LoadError>) -> Vec<String> {
    match result {
        Err(LoadError::Invalid(problems)) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn flag_beats_environment_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "node: from-file\ncontrol: [a:1, b:2]\nheartbeat_ms: 300\nadvertise: file:1\ntls_dir: /file/tls\n",
    );
    let layered = load_with(
        &["--config", &file, "--advertise", "flag:1"],
        &[
            ("FLOCKER_TEST_HEARTBEAT_MS", "400"),
            ("FLOCKER_TEST_ADVERTISE", "env:1"),
        ],
    )
    .unwrap();
    let args = &layered.args;
    assert_eq!(args.advertise.as_deref(), Some("flag:1"));
    assert_eq!(args.heartbeat_ms, 400);
    assert_eq!(args.tls_dir, Path::new("/file/tls"));
    assert_eq!(args.node, "from-file");
    assert_eq!(args.control, ["a:1", "b:2"]);
    assert!(!args.join);
    assert_eq!(layered.report.source("advertise"), Some(&Source::Flag));
    assert_eq!(
        layered.report.source("heartbeat_ms"),
        Some(&Source::Env("FLOCKER_TEST_HEARTBEAT_MS".into()))
    );
    assert_eq!(layered.report.source("tls_dir"), Some(&Source::File));
    assert_eq!(layered.report.source("join"), Some(&Source::Default));
}

#[test]
fn lists_switches_and_the_config_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "peer: [2=a:1, 3=b:1]\njoin: true\ncontrol: a:1,b:2\n",
    );
    let layered = load_with(
        &["--node", "n"],
        &[
            ("FLOCKER_TEST_CONFIG", &file),
            ("FLOCKER_TEST_PEER", "4=c:1,5=d:1"),
        ],
    )
    .unwrap();
    assert_eq!(layered.args.peers, ["4=c:1", "5=d:1"], "the variable wins");
    assert!(layered.args.join);
    assert_eq!(layered.args.control, ["a:1", "b:2"]);
    // A flag given on the command line is not appended to the file's list.
    let layered = load_with(&["--node", "n", "--config", &file, "--peer", "9=z:1"], &[]).unwrap();
    assert_eq!(layered.args.peers, ["9=z:1"]);
}

#[test]
fn every_problem_of_the_file_and_the_environment_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "hearbeat_ms: 5\nheartbeat_ms: soon\nadvertise: [a, b]\njoin: sometimes\ntls_dir: {a: 1}\n",
    );
    let found = problems(load_with(
        &["--config", &file],
        &[("FLOCKER_TEST_JOIN", "maybe")],
    ));
    let expect = [
        format!("{file}: hearbeat_ms: unknown key (known: node, control, heartbeat_ms"),
        format!("{file}: heartbeat_ms: invalid value 'soon': invalid digit"),
        format!("{file}: advertise: expected one value, got a list of 2"),
        format!("{file}: join: expected true or false, got 'sometimes'"),
        format!("{file}: tls_dir: expected a value, got a: 1"),
        "FLOCKER_TEST_JOIN: expected true or false, got 'maybe'".to_owned(),
        format!("node is not set: give --node, FLOCKER_TEST_NODE or `node:` in {file}"),
        format!("control is not set: give --control, FLOCKER_TEST_CONTROL or `control:` in {file}"),
    ];
    for want in &expect {
        assert!(
            found.iter().any(|p| p.starts_with(want.as_str())),
            "{want:?} not in {found:#?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{found:#?}");
}

#[test]
fn a_missing_default_file_is_fine_a_missing_named_one_is_not() {
    let layered = load_with(&["--node", "n", "--control", "a:1"], &[]).unwrap();
    assert_eq!(layered.args.tls_dir, Path::new("/etc/flocker/tls/node"));
    let err = load_with(&["--config", "/nonexistent/x.yml"], &[]).unwrap_err();
    assert!(
        matches!(err, LoadError::File(YamlError::Read { .. })),
        "{err:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "node: [");
    let err = load_with(&["--config", &file], &[]).unwrap_err();
    assert!(
        matches!(err, LoadError::File(YamlError::Syntax { .. })),
        "{err:?}"
    );
    let empty = write(dir.path(), "# nothing set\n");
    let layered = load_with(
        &["--config", &empty, "--node", "n", "--control", "a:1"],
        &[],
    );
    assert!(layered.is_ok(), "{layered:?}");
}

#[test]
fn printed_settings_read_back_to_the_same_settings() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "node: '007'\nheartbeat_ms: 250\njoin: true\n");
    let first = load_with(
        &["--config", &file, "--control", "a:1,b:2", "--peer", "2=x:1"],
        &[("FLOCKER_TEST_TLS_DIR", "/env/tls")],
    )
    .unwrap();
    assert!(!first.report.print_config);
    let printed = first.report.to_yaml();
    assert!(printed.contains("advertise: null"), "{printed}");
    let again = write(dir.path(), &printed);
    let second = load_with(&["--config", &again], &[]).unwrap();
    let strip = |mut a: Args| {
        a.file = FileArgs {
            config: None,
            print_config: false,
        };
        a
    };
    assert_eq!(strip(first.args.clone()), strip(second.args.clone()));
    let body = |y: &str| y.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&printed), body(&second.report.to_yaml()));
    assert!(
        load_with(&["--config", &again, "--print-config"], &[])
            .unwrap()
            .report
            .print_config
    );
}

#[test]
fn the_daemons_own_problems_name_the_layer_of_their_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "tls_dir: /file/tls\nnode: n\n");
    let layered = load_with(
        &["--config", &file, "--control", "x"],
        &[("FLOCKER_TEST_ADVERTISE", "e")],
    )
    .unwrap();
    let said = layered.report.attribute(vec![
        "--tls-dir: cannot read /file/tls/ca.crt".into(),
        "--control \"x\": expected HOST:PORT".into(),
        "--advertise: bad".into(),
        "something else".into(),
    ]);
    assert_eq!(
        said,
        [
            format!("{file}: tls_dir: cannot read /file/tls/ca.crt"),
            "--control \"x\": expected HOST:PORT".to_owned(),
            "FLOCKER_TEST_ADVERTISE: bad".to_owned(),
            "something else".to_owned(),
        ]
    );
}
