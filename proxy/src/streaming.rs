//! Docker endpoints whose responses stream, never complete, or are hijacked.
//!
//! Post-hooks need a complete response, so a configuration that puts one on any of these is
//! refused at load time. At run time the proxy never buffers a response unless a post-hook
//! needs it, so everything else streams anyway; this list is what makes the refusal exact.

use std::sync::LazyLock;

use crate::matcher::Pattern;

/// `METHOD /path` of each streaming endpoint, with the reason shown in the refusal.
const STREAMING: &[(&str, &str)] = &[
    ("POST /containers/*/attach", "attach hijacks the connection"),
    (
        "GET /containers/*/attach/ws",
        "attach hijacks the connection",
    ),
    ("POST /exec/*/start", "exec start hijacks the connection"),
    (
        "POST /containers/*/wait",
        "wait answers only when the container exits",
    ),
    ("GET /containers/*/logs", "logs can follow forever"),
    ("GET /containers/*/stats", "stats streams by default"),
    ("GET /containers/*/export", "export streams a tar archive"),
    ("GET /containers/*/archive", "archive streams a tar archive"),
    ("GET /events", "events streams forever"),
    ("POST /build", "build streams progress"),
    ("POST /images/create", "pull streams progress"),
    ("POST /images/*/push", "push streams progress"),
    ("POST /images/load", "load streams progress"),
    ("GET /images/get", "save streams a tar archive"),
    ("GET /images/*/get", "save streams a tar archive"),
    ("GET /services/*/logs", "logs can follow forever"),
    ("GET /tasks/*/logs", "logs can follow forever"),
    ("POST /plugins/pull", "plugin pull streams progress"),
    ("POST /plugins/*/upgrade", "plugin upgrade streams progress"),
    ("POST /plugins/*/push", "plugin push streams progress"),
    (
        "POST /session",
        "BuildKit's session is a hijacked HTTP/2 tunnel",
    ),
    ("POST /grpc", "BuildKit's gRPC is a hijacked HTTP/2 tunnel"),
];

static PATTERNS: LazyLock<Vec<(Pattern, &'static str)>> = LazyLock::new(|| {
    STREAMING
        .iter()
        .map(|(key, why)| {
            (
                Pattern::parse(key).expect("built-in patterns are valid"),
                *why,
            )
        })
        .collect()
});

/// The first streaming endpoint that `pattern` could match, and why it streams.
pub fn streaming_overlap(pattern: &Pattern) -> Option<(&'static Pattern, &'static str)> {
    PATTERNS
        .iter()
        .find(|(streaming, _)| pattern.overlaps(streaming))
        .map(|(streaming, why)| (streaming, *why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::docker_routes::{ROUTES, shape};

    #[test]
    fn the_list_parses_and_detects_overlaps() {
        let logs = Pattern::parse("GET /*/containers/*/logs").unwrap();
        let (hit, why) = streaming_overlap(&logs).unwrap();
        assert_eq!(hit.as_str(), "GET /containers/*/logs");
        assert!(why.contains("follow"));
        let start = Pattern::parse("POST /*/containers/*/start").unwrap();
        assert!(streaming_overlap(&start).is_none());
        let create = Pattern::parse("POST /*/containers/create").unwrap();
        assert!(streaming_overlap(&create).is_none());
        // The leading `*` is a version, never `containers` in `GET /containers/*/logs`.
        let network = Pattern::parse("GET /*/networks/*").unwrap();
        assert!(streaming_overlap(&network).is_none());
    }

    /// Over every Docker API route: its pattern is refused exactly when the route streams.
    #[test]
    fn only_streaming_routes_are_refused() {
        for (method, template) in ROUTES {
            let shape = shape(template);
            let streams = STREAMING
                .iter()
                .any(|(key, _)| *key == format!("{method} {shape}"));
            let pattern = Pattern::parse(&format!("{method} /*{shape}")).unwrap();
            assert_eq!(
                streaming_overlap(&pattern).is_some(),
                streams,
                "{method} {template}"
            );
        }
    }
}
