//! The Docker Engine API 1.41 routes, as moby's routers register them
//! (`daemon/server/router/*/*.go`; moby registers each both as `/v{version:[0-9.]+}/path` and
//! as `/path`), and a property test that a pattern written for one route matches that
//! route's requests and no other route's.
//!
//! `{id}` is a single-segment parameter (container, network, volume, exec, swarm object);
//! `{ref}` may span segments (`library/busybox`, `vieux/sshfs`), as moby's `{name:.*}` does.
//! Left out: `/debug/*` (only with debug on), `OPTIONS /{anyroute:.*}` (CORS), and
//! `GET /networks/` (the same as `GET /networks` once empty segments are dropped).

use proptest::prelude::*;

use super::Pattern;

/// `(method, path template)` of every route.
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("POST", "/build"),
    ("POST", "/build/cancel"),
    ("POST", "/build/prune"),
    ("POST", "/session"),
    ("POST", "/grpc"),
    ("POST", "/commit"),
    ("GET", "/containers/json"),
    ("POST", "/containers/create"),
    ("POST", "/containers/prune"),
    ("DELETE", "/containers/{id}"),
    ("GET", "/containers/{id}/archive"),
    ("HEAD", "/containers/{id}/archive"),
    ("PUT", "/containers/{id}/archive"),
    ("GET", "/containers/{id}/attach/ws"),
    ("POST", "/containers/{id}/attach"),
    ("GET", "/containers/{id}/changes"),
    ("GET", "/containers/{id}/checkpoints"),
    ("POST", "/containers/{id}/checkpoints"),
    ("DELETE", "/containers/{id}/checkpoints/{id}"),
    ("POST", "/containers/{id}/exec"),
    ("GET", "/containers/{id}/export"),
    ("GET", "/containers/{id}/json"),
    ("POST", "/containers/{id}/kill"),
    ("GET", "/containers/{id}/logs"),
    ("POST", "/containers/{id}/pause"),
    ("POST", "/containers/{id}/rename"),
    ("POST", "/containers/{id}/resize"),
    ("POST", "/containers/{id}/restart"),
    ("POST", "/containers/{id}/start"),
    ("GET", "/containers/{id}/stats"),
    ("POST", "/containers/{id}/stop"),
    ("GET", "/containers/{id}/top"),
    ("POST", "/containers/{id}/unpause"),
    ("POST", "/containers/{id}/update"),
    ("POST", "/containers/{id}/wait"),
    ("GET", "/exec/{id}/json"),
    ("POST", "/exec/{id}/resize"),
    ("POST", "/exec/{id}/start"),
    ("GET", "/images/json"),
    ("POST", "/images/create"),
    ("POST", "/images/load"),
    ("POST", "/images/prune"),
    ("GET", "/images/get"),
    ("GET", "/images/search"),
    ("DELETE", "/images/{ref}"),
    ("GET", "/images/{ref}/get"),
    ("GET", "/images/{ref}/history"),
    ("GET", "/images/{ref}/json"),
    ("POST", "/images/{ref}/push"),
    ("POST", "/images/{ref}/tag"),
    ("GET", "/distribution/{ref}/json"),
    ("GET", "/networks"),
    ("POST", "/networks/create"),
    ("POST", "/networks/prune"),
    ("DELETE", "/networks/{id}"),
    ("GET", "/networks/{id}"),
    ("POST", "/networks/{id}/connect"),
    ("POST", "/networks/{id}/disconnect"),
    ("GET", "/volumes"),
    ("POST", "/volumes/create"),
    ("POST", "/volumes/prune"),
    ("DELETE", "/volumes/{id}"),
    ("GET", "/volumes/{id}"),
    ("PUT", "/volumes/{id}"),
    ("GET", "/plugins"),
    ("GET", "/plugins/privileges"),
    ("POST", "/plugins/create"),
    ("POST", "/plugins/pull"),
    ("DELETE", "/plugins/{ref}"),
    ("POST", "/plugins/{ref}/disable"),
    ("POST", "/plugins/{ref}/enable"),
    ("GET", "/plugins/{ref}/json"),
    ("POST", "/plugins/{ref}/push"),
    ("POST", "/plugins/{ref}/set"),
    ("POST", "/plugins/{ref}/upgrade"),
    ("GET", "/swarm"),
    ("POST", "/swarm/init"),
    ("POST", "/swarm/join"),
    ("POST", "/swarm/leave"),
    ("POST", "/swarm/unlock"),
    ("GET", "/swarm/unlockkey"),
    ("POST", "/swarm/update"),
    ("GET", "/nodes"),
    ("DELETE", "/nodes/{id}"),
    ("GET", "/nodes/{id}"),
    ("POST", "/nodes/{id}/update"),
    ("GET", "/services"),
    ("POST", "/services/create"),
    ("DELETE", "/services/{id}"),
    ("GET", "/services/{id}"),
    ("GET", "/services/{id}/logs"),
    ("POST", "/services/{id}/update"),
    ("GET", "/tasks"),
    ("GET", "/tasks/{id}"),
    ("GET", "/tasks/{id}/logs"),
    ("GET", "/secrets"),
    ("POST", "/secrets/create"),
    ("DELETE", "/secrets/{id}"),
    ("GET", "/secrets/{id}"),
    ("POST", "/secrets/{id}/update"),
    ("GET", "/configs"),
    ("POST", "/configs/create"),
    ("DELETE", "/configs/{id}"),
    ("GET", "/configs/{id}"),
    ("POST", "/configs/{id}/update"),
    ("POST", "/auth"),
    ("GET", "/_ping"),
    ("HEAD", "/_ping"),
    ("GET", "/events"),
    ("GET", "/info"),
    ("GET", "/version"),
    ("GET", "/system/df"),
];

/// The endpoint keys shipped or documented (the agent's flocker and weave sides,
/// docs/proxy.md), each with the route it is written for.
const TYPICAL: &[(&str, (&str, &str))] = &[
    ("POST /*/containers/create", ("POST", "/containers/create")),
    (
        "POST /*/containers/*/start",
        ("POST", "/containers/{id}/start"),
    ),
    (
        "POST /*/containers/*/restart",
        ("POST", "/containers/{id}/restart"),
    ),
    ("GET /*/containers/*/json", ("GET", "/containers/{id}/json")),
    ("DELETE /*/containers/*", ("DELETE", "/containers/{id}")),
    ("GET /*/containers/json", ("GET", "/containers/json")),
    ("GET /*/networks/*", ("GET", "/networks/{id}")),
    ("POST /*/volumes/create", ("POST", "/volumes/create")),
    ("GET /*/images/*/json", ("GET", "/images/{ref}/json")),
    ("DELETE /*/images/*", ("DELETE", "/images/{ref}")),
    ("GET /info", ("GET", "/info")),
];

/// A route's path with every parameter as `*`: the pattern one writes for it.
pub(crate) fn shape(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "*" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Segment values that double as route words and versions, plus realistic ones.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "containers",
            "images",
            "json",
            "create",
            "start",
            "networks",
            "logs",
            "exec",
            "get",
            "_ping",
            "info",
            "v1.41",
            "v1.40",
            "v1",
            "podman",
            "library",
        ])
        .prop_map(str::to_owned),
        "[a-z0-9][a-z0-9_.-]{0,12}",
        "[0-9a-f]{64}",
    ]
}

/// A concrete request for `ROUTES[route]`: `(method, path, every {ref} is one segment)`.
fn request() -> impl Strategy<Value = (usize, String, Option<&'static str>, bool)> {
    let versions = vec![
        "v1.41", "v1.41.0", "v01.41", "v1.40", "v1.24", "v1", "v1.44",
    ];
    (
        0..ROUTES.len(),
        prop::collection::vec(prop::collection::vec(name(), 1..4), 2),
        prop::option::of(prop::sample::select(versions)),
        any::<bool>(),
    )
        .prop_map(|(route, names, version, escape)| {
            let mut params = names.iter();
            let mut single = true;
            let path: Vec<String> = ROUTES[route]
                .1
                .split('/')
                .map(|s| match s {
                    "{id}" => params.next().unwrap()[0].clone(),
                    "{ref}" => {
                        let parts = params.next().unwrap();
                        single &= parts.len() == 1;
                        parts.join("/")
                    }
                    s => s.to_owned(),
                })
                .collect();
            let mut path = format!(
                "{}{}",
                version.map(|v| format!("/{v}")).unwrap_or_default(),
                path.join("/")
            );
            if escape {
                // Docker decodes escapes before it routes, so this is still the same route.
                path = path.replace('e', "%65");
            }
            (route, path, version, single)
        })
}

#[test]
fn every_route_has_its_own_shape() {
    for (i, (method, template)) in ROUTES.iter().enumerate() {
        for (other_method, other) in &ROUTES[i + 1..] {
            assert!(
                method != other_method || shape(template) != shape(other),
                "{method} {template} and {other}: a pattern could not tell them apart"
            );
        }
    }
}

#[test]
fn typical_patterns_are_the_patterns_of_their_routes() {
    for (key, (method, template)) in TYPICAL {
        assert!(ROUTES.contains(&(*method, *template)), "{template}");
        let derived = format!("{method} /*{}", shape(template));
        let plain = format!("{method} {}", shape(template));
        assert!(*key == derived || *key == plain, "{key}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// For every route and each way of writing its pattern (`/*/...`, unversioned, pinned to
    /// v1.41), the pattern matches a request exactly when the request is for that route,
    /// its version (if any) is the pinned one, and every `{ref}` in it is one segment (`*`
    /// is one segment). With `*` for the method it matches what the request's own method
    /// would.
    #[test]
    fn patterns_match_their_own_route_and_no_other((target, path, version, single) in request()) {
        let (target_method, target_template) = ROUTES[target];
        let is_v141 = version.is_none_or(|v| matches!(v, "v1.41" | "v1.41.0" | "v01.41"));
        for (method, template) in ROUTES {
            let route_shape = shape(template);
            let own = route_shape == shape(target_template) && *method == target_method;
            // `*` for the method stands for the request's own method, nothing more.
            let any_method = Pattern::parse(&format!("* /*{route_shape}")).unwrap();
            let as_target = Pattern::parse(&format!("{target_method} /*{route_shape}")).unwrap();
            prop_assert_eq!(
                any_method.matches(target_method, &path),
                as_target.matches(target_method, &path)
            );
            for (key, expected) in [
                (format!("{method} /*{route_shape}"), own && single),
                (format!("{method} {route_shape}"), own && single),
                (format!("{method} /v1.41{route_shape}"), own && single && is_v141),
            ] {
                let pattern = Pattern::parse(&key).unwrap();
                prop_assert_eq!(
                    pattern.matches(target_method, &path),
                    expected,
                    "{} on {} {}",
                    key,
                    target_method,
                    path
                );
            }
        }
        for (key, (method, template)) in TYPICAL {
            let own = (*method, *template) == (target_method, target_template);
            prop_assert_eq!(Pattern::parse(key).unwrap().matches(target_method, &path), own && single, "{} on {} {}", key, target_method, path);
        }
    }
}
