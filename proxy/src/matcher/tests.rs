use super::*;
use proptest::prelude::*;

fn p(key: &str) -> Pattern {
    Pattern::parse(key).unwrap()
}

#[test]
fn star_matches_exactly_one_segment() {
    let start = p("POST /*/containers/*/start");
    assert!(start.matches("POST", "/v1.41/containers/abc/start"));
    assert!(!start.matches("POST", "/v1.41/containers/a/b/start"));
    assert!(!start.matches("GET", "/v1.41/containers/abc/start"));
}

#[test]
fn version_prefix_is_optional_on_both_sides() {
    let versioned = p("POST /*/containers/create");
    assert!(versioned.matches("POST", "/v1.41/containers/create"));
    assert!(versioned.matches("POST", "/containers/create"));
    assert!(versioned.matches("POST", "/containers/create?name=web"));
    let plain = p("POST /containers/create");
    assert!(plain.matches("POST", "/v1.41/containers/create"));
    assert!(plain.matches("POST", "/containers/create"));
    let pinned = p("POST /v1.41/containers/create");
    assert!(pinned.matches("POST", "/containers/create"));
    assert!(!pinned.matches("POST", "/v1.40/containers/create"));
}

#[test]
fn a_leading_star_never_stands_for_a_route_word() {
    // The issue: with builtin:debug these fired on an image inspect and an rmi of the
    // image `containers/podman`.
    let inspect = p("GET /*/containers/*/json");
    assert!(!inspect.matches("GET", "/v1.41/images/containers/podman/json"));
    assert!(!inspect.matches("GET", "/images/containers/podman/json"));
    assert!(inspect.matches("GET", "/v1.41/containers/podman/json"));
    assert!(inspect.matches("GET", "/containers/podman/json"));
    let remove = p("DELETE /*/containers/*");
    assert!(!remove.matches("DELETE", "/v1.41/images/containers/podman"));
    assert!(!remove.matches("DELETE", "/images/containers/podman"));
    assert!(remove.matches("DELETE", "/v1.41/containers/podman?force=1"));
    assert!(remove.matches("DELETE", "/containers/podman"));
    // `/*/*/json` used to catch `/images/json` with `images` as the version.
    let list = p("GET /*/containers/json");
    assert!(!list.matches("GET", "/images/json"));
    assert!(!list.matches("GET", "/v1.41/images/json"));
    assert!(!p("GET /*/json").matches("GET", "/images/json"));
    assert!(p("GET /*/json").matches("GET", "/v1.41/json"));
}

#[test]
fn versions_are_what_dockers_router_takes_as_versions() {
    let create = p("POST /*/containers/create");
    // Docker routes all of these to container create, so the hook must fire on each.
    for path in ["/v1.41.0", "/v1", "/v01.41", "/v1.", "/v.1"] {
        assert!(
            create.matches("POST", &format!("{path}/containers/create")),
            "{path}"
        );
    }
    assert!(!create.matches("POST", "/V1.41/containers/create"));
    assert!(!create.matches("POST", "/vx/containers/create"));
    // Only one version prefix is ever stripped.
    assert!(!create.matches("POST", "/v1.41/v1.41/containers/create"));
}

#[test]
fn a_pinned_version_matches_its_equals_as_docker_compares_them() {
    let pinned = p("POST /v1.41/containers/create");
    for same in ["/v1.41", "/v1.41.0", "/v01.41", "/v1.041"] {
        assert!(
            pinned.matches("POST", &format!("{same}/containers/create")),
            "{same}"
        );
    }
    for other in ["/v1.40", "/v1.4", "/v1.41.1", "/v2.41"] {
        assert!(
            !pinned.matches("POST", &format!("{other}/containers/create")),
            "{other}"
        );
    }
}

#[test]
fn escapes_are_decoded_before_matching_as_docker_does() {
    let create = p("POST /*/containers/create");
    assert!(create.matches("POST", "/v1.41/%63ontainers/create"));
    assert!(create.matches("POST", "/v1.41/containers%2Fcreate"));
    assert!(create.matches("POST", "/%761.41/containers/create"));
    assert!(!create.matches("POST", "/v1.41/containers/create%2Fx"));
    // A malformed escape (Docker answers 400) is matched as written.
    assert!(!create.matches("POST", "/v1.41/containers/%zzcreate"));
    assert!(p("GET /*/containers/*/json").matches("GET", "/containers/we%zz/json"));
}

#[test]
fn names_with_dashes_and_dots_match() {
    // powerstrip-weave's `\w+` missed these.
    assert!(p("POST /*/containers/*/start").matches("POST", "/v1.41/containers/my-app.1/start"));
}

#[test]
fn any_method() {
    assert!(p("* /_ping").matches("HEAD", "/_ping"));
}

#[test]
fn bad_keys_are_explained() {
    assert_eq!(
        Pattern::parse("containers/create"),
        Err(PatternError::Shape)
    );
    assert_eq!(
        Pattern::parse("POST containers/create"),
        Err(PatternError::Shape)
    );
    assert_eq!(
        Pattern::parse("post /x"),
        Err(PatternError::Method("post".into()))
    );
    assert_eq!(Pattern::parse("GET /x?y=1"), Err(PatternError::Query));
    assert_eq!(
        Pattern::parse("GET /contain*"),
        Err(PatternError::Glob("contain*".into()))
    );
    for nothing_after_the_version in ["* /*", "GET /v1.41", "GET /", "* /*/"] {
        assert_eq!(
            Pattern::parse(nothing_after_the_version),
            Err(PatternError::NoEndpoint),
            "{nothing_after_the_version}"
        );
    }
}

#[test]
fn overlap_detects_streaming_endpoints() {
    let logs = p("GET /containers/*/logs");
    assert!(p("GET /*/containers/*/logs").overlaps(&logs));
    assert!(p("GET /v1.41/containers/*/logs").overlaps(&logs));
    assert!(p("* /*/containers/web/*").overlaps(&logs));
    assert!(!p("POST /*/containers/*/logs").overlaps(&logs));
    assert!(!p("GET /*/containers/*/json").overlaps(&logs));
    // The issue: the leading `*` used to stand for `containers` here.
    assert!(!p("GET /*/networks/*").overlaps(&logs));
}

#[test]
fn versions() {
    assert!(is_version("v1.41") && is_version("v1") && is_version("v12.0"));
    assert!(is_version("v1.2.3") && is_version("v1.") && is_version("v."));
    assert!(!is_version("v") && !is_version("x1") && !is_version("v1a") && !is_version("V1"));
}

proptest! {
    /// A literal pattern matches its own path, with or without a version prefix.
    #[test]
    fn literal_patterns_match_themselves(segments in prop::collection::vec("[a-uw-z_][a-z0-9_.-]{0,8}", 1..5), minor in 12u32..60) {
        let path = format!("/{}", segments.join("/"));
        let pattern = p(&format!("GET {path}"));
        prop_assert!(pattern.matches("GET", &path));
        let versioned = format!("/v1.{minor}{path}?a=b");
        prop_assert!(pattern.matches("GET", &versioned));
    }

    /// Replacing any segment but the first with `*` still matches, and adding a segment
    /// never does.
    #[test]
    fn star_is_one_segment(segments in prop::collection::vec("[a-uw-z][a-z0-9]{0,8}", 2..5), index in 1usize..5) {
        let index = 1 + index % (segments.len() - 1);
        let mut globbed = segments.clone();
        globbed[index] = "*".into();
        let pattern = p(&format!("GET /{}", globbed.join("/")));
        let exact = format!("/{}", segments.join("/"));
        let longer = format!("{exact}/extra/more");
        prop_assert!(pattern.matches("GET", &exact));
        prop_assert!(!pattern.matches("GET", &longer));
    }

    /// A leading `*` matches a version or nothing, never a word.
    #[test]
    fn leading_star_is_a_version_only(segments in prop::collection::vec("[a-uw-z][a-z0-9]{0,8}", 2..5), minor in 0u32..100) {
        let rest = &segments[1..];
        let pattern = p(&format!("GET /*/{}", rest.join("/")));
        let whole = format!("/{}", segments.join("/"));
        let unversioned = format!("/{}", rest.join("/"));
        let versioned = format!("/v1.{minor}{unversioned}");
        prop_assert!(!pattern.matches("GET", &whole));
        prop_assert!(pattern.matches("GET", &unversioned));
        prop_assert!(pattern.matches("GET", &versioned));
    }
}
