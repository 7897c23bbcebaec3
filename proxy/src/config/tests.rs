use super::*;
use crate::adapter::http::adapter_client;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(
        text,
        "adapters.yml",
        &Builtins::standard(),
        &adapter_client(),
    )
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected validation problems, got {other}"),
        Ok(_) => panic!("expected validation problems, the config was accepted"),
    }
}

#[tokio::test]
async fn the_original_format_loads() {
    let config = parse(
        r#"
version: 1
endpoints:
  "POST /*/containers/create":
    pre: [flocker, weave]
  "POST /*/containers/*/start":
    post: [weave]
adapters:
  flocker: http://flocker/flocker-adapter
  weave: http://weave:80/extension
"#,
    )
    .unwrap();
    let hooks = config.hooks_for("POST", "/v1.41/containers/create");
    let names: Vec<_> = hooks.pre.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["flocker", "weave"]);
    assert!(hooks.post.is_empty());
    assert_eq!(
        config.hooks_for("POST", "/containers/x/start").post.len(),
        1
    );
    assert!(config.hooks_for("GET", "/containers/json").is_empty());
}

#[tokio::test]
async fn the_extended_form_sets_timeout_and_policy() {
    let config = parse(
        r#"
endpoints:
  "* /_ping": { pre: [policy, dbg] }
adapters:
  dbg: builtin:debug
  policy: { url: "http://127.0.0.1:8181/hook", timeout: 250ms, on_error: ignore }
"#,
    )
    .unwrap();
    let hooks = config.hooks_for("GET", "/_ping");
    assert_eq!(hooks.pre[0].timeout, Duration::from_millis(250));
    assert_eq!(hooks.pre[0].on_error, OnError::Ignore);
    assert_eq!(hooks.pre[1].timeout, DEFAULT_ADAPTER_TIMEOUT);
    assert_eq!(hooks.pre[1].on_error, OnError::Fail);
}

#[tokio::test]
async fn matching_endpoints_concatenate_in_file_order() {
    let config = parse(
        r#"
endpoints:
  "POST /*/containers/create": { pre: [a] }
  "* /*/containers/*": { pre: [b, a] }
adapters: { a: "builtin:debug", b: "builtin:debug" }
"#,
    )
    .unwrap();
    let names: Vec<_> = config
        .hooks_for("POST", "/containers/create")
        .pre
        .iter()
        .map(|a| a.name.clone())
        .collect();
    assert_eq!(names, ["a", "b", "a"]);
}

#[tokio::test]
async fn container_patterns_leave_images_alone() {
    // The issue: both fired on `containers/podman` image calls, and the post-hook on
    // networks was refused as if it were on container logs.
    let config = parse(
        r#"
endpoints:
  "GET /*/containers/*/json": { pre: [a] }
  "DELETE /*/containers/*": { pre: [a] }
  "GET /*/networks/*": { post: [a] }
adapters: { a: "builtin:debug" }
"#,
    )
    .unwrap();
    assert!(
        config
            .hooks_for("GET", "/v1.41/images/containers/podman/json")
            .is_empty()
    );
    assert!(
        config
            .hooks_for("DELETE", "/v1.41/images/containers/podman")
            .is_empty()
    );
    assert_eq!(
        config
            .hooks_for("GET", "/v1.41/containers/podman/json")
            .pre
            .len(),
        1
    );
    assert_eq!(
        config.hooks_for("DELETE", "/containers/podman").pre.len(),
        1
    );
    assert_eq!(
        config.hooks_for("GET", "/v1.41/networks/bridge").post.len(),
        1
    );
}

#[tokio::test]
async fn a_pattern_with_nothing_after_the_version_is_refused() {
    let found = problems("endpoints:\n  \"* /*\": { pre: [a] }\nadapters: { a: builtin:debug }\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("stands for the API version only"),
        "{found:?}"
    );
}

#[tokio::test]
async fn every_problem_is_reported_at_once() {
    let found = problems(
        r#"
version: 2
endpoints:
  "POST /*/containers/create": { pre: [missing], post: [ok] }
  "GET /*/containers/*/logs": { post: [ok] }
  "containers/json": { pre: [ok] }
  "GET /info": {}
  "GET /version": { pre: [ok], around: [ok] }
adapters:
  ok: builtin:debug
  nope: builtin:nope
  tls: https://example/hook
  slow: { url: "http://x/hook", timeout: soon, on_error: retry }
"#,
    );
    let all = found.join("\n");
    for needle in [
        "version 2 is not supported",
        "pre-hook adapter 'missing' is not defined",
        "post-hooks cannot run on GET /containers/*/logs",
        "endpoint \"containers/json\": expected \"METHOD /path\"",
        "endpoint \"GET /info\": expected a mapping",
        "unknown key 'around'",
        "no built-in adapter 'nope' (built-ins here: debug)",
        "https adapters are not supported",
        "timeout 'soon' must look like",
        "on_error must be 'fail' or 'ignore', not 'retry'",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert_eq!(found.len(), 10, "{all}");
}

#[tokio::test]
async fn missing_sections_and_garbage_are_errors() {
    assert!(
        problems("endpoints: {}")
            .iter()
            .any(|p| p == "'adapters' is missing")
    );
    assert!(
        problems("adapters: {}")
            .iter()
            .any(|p| p == "'endpoints' is missing")
    );
    assert!(matches!(
        parse("this is garbage"),
        Err(ConfigError::Invalid { .. })
    ));
    assert!(matches!(
        parse("endpoints: [1"),
        Err(ConfigError::Syntax { .. })
    ));
}

#[tokio::test]
async fn duplicate_endpoint_keys_are_an_error_not_a_silent_override() {
    let text = "endpoints:\n  \"GET /info\": { pre: [a] }\n  \"GET /info\": { post: [a] }\nadapters: { a: builtin:debug }\n";
    assert!(matches!(parse(text), Err(ConfigError::Syntax { .. })));
}

#[test]
fn timeouts() {
    let t = |s: &str| parse_timeout(&Value::String(s.into()));
    assert_eq!(t("2s"), Ok(Duration::from_secs(2)));
    assert_eq!(t("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(t("1m"), Ok(Duration::from_secs(60)));
    assert_eq!(t("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(
        parse_timeout(&Value::Number(3.into())),
        Ok(Duration::from_secs(3))
    );
    assert!(t("0s").is_err() && t("-1s").is_err() && t("2h").is_err() && t("").is_err());
}
