//! Endpoint patterns: `METHOD /path` where `*` matches exactly one path segment.
//!
//! The Docker API version prefix (`/v1.41`) is optional on both sides: the pattern
//! `POST /*/containers/create` matches `/v1.41/containers/create` and the unversioned
//! `/containers/create` (go-dockerclient and Kubernetes send the latter), and the pattern
//! `POST /containers/create` matches both too. The query string is never part of a match.

use std::fmt;

/// Why an endpoint key is not a valid pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The key is not `METHOD /path`.
    #[error("expected \"METHOD /path\", e.g. \"POST /*/containers/create\"")]
    Shape,
    /// The method is not an upper-case HTTP token or `*`.
    #[error("method '{0}' must be an upper-case HTTP method such as POST, or '*'")]
    Method(String),
    /// The path has a query string, which is never part of a match.
    #[error("the path must not contain '?': the query string is not matched")]
    Query,
    /// A segment mixes `*` with other characters.
    #[error("segment '{0}': '*' must stand alone as a whole path segment")]
    Glob(String),
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Any single segment.
    Any,
    /// Exactly this text.
    Literal(String),
}

impl Segment {
    fn matches(&self, segment: &str) -> bool {
        match self {
            Segment::Any => true,
            Segment::Literal(text) => text == segment,
        }
    }

    /// Whether some segment matches both.
    fn overlaps(&self, other: &Segment) -> bool {
        match (self, other) {
            (Segment::Literal(a), Segment::Literal(b)) => a == b,
            _ => true,
        }
    }

    /// Whether this segment can stand for an API version prefix.
    fn can_be_version(&self) -> bool {
        match self {
            Segment::Any => true,
            Segment::Literal(text) => is_version(text),
        }
    }
}

/// A parsed endpoint pattern such as `POST /*/containers/*/start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// `None` for `*` (any method).
    method: Option<String>,
    segments: Vec<Segment>,
    source: String,
}

impl Pattern {
    /// Parses `METHOD /path`.
    pub fn parse(key: &str) -> Result<Self, PatternError> {
        let (method, path) = key.trim().split_once(' ').ok_or(PatternError::Shape)?;
        let path = path.trim();
        if !path.starts_with('/') {
            return Err(PatternError::Shape);
        }
        if path.contains('?') {
            return Err(PatternError::Query);
        }
        let method = match method {
            "*" => None,
            m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => Some(m.to_owned()),
            m => return Err(PatternError::Method(m.to_owned())),
        };
        let segments = split(path)
            .map(|segment| match segment {
                "*" => Ok(Segment::Any),
                s if s.contains('*') => Err(PatternError::Glob(s.to_owned())),
                s => Ok(Segment::Literal(s.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Pattern {
            method,
            segments,
            source: key.trim().to_owned(),
        })
    }

    /// Whether a request with this method and path (query string allowed, it is ignored)
    /// matches the pattern.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        let path = path.split('?').next().unwrap_or_default();
        let request: Vec<&str> = split(path).collect();
        if let (Some(Segment::Literal(pinned)), Some(version)) =
            (self.segments.first(), request.first())
        {
            // A pattern that names a version matches that version or none, never another.
            if is_version(pinned) && is_version(version) && pinned != version {
                return false;
            }
        }
        self.path_variants().any(|pattern| {
            request_variants(&request).any(|request| segments_match(pattern, request))
        })
    }

    /// Whether some request could match both patterns (used to refuse post-hooks on
    /// streaming endpoints at load time).
    pub fn overlaps(&self, other: &Pattern) -> bool {
        let methods_meet = match (&self.method, &other.method) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        methods_meet
            && self.path_variants().any(|mine| {
                other.path_variants().any(|theirs| {
                    mine.len() == theirs.len()
                        && mine.iter().zip(theirs).all(|(a, b)| a.overlaps(b))
                })
            })
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The pattern's path, and the same without a leading version segment.
    fn path_variants(&self) -> impl Iterator<Item = &[Segment]> {
        let unversioned = match self.segments.first() {
            Some(first) if first.can_be_version() => Some(&self.segments[1..]),
            _ => None,
        };
        std::iter::once(self.segments.as_slice()).chain(unversioned)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The request's path, and the same without its version prefix if it has one.
fn request_variants<'a>(request: &'a [&'a str]) -> impl Iterator<Item = &'a [&'a str]> {
    let unversioned = match request.first() {
        Some(first) if is_version(first) => Some(&request[1..]),
        _ => None,
    };
    std::iter::once(request).chain(unversioned)
}

fn segments_match(pattern: &[Segment], request: &[&str]) -> bool {
    pattern.len() == request.len() && pattern.iter().zip(request).all(|(p, r)| p.matches(r))
}

/// Splits a path into its non-empty segments.
fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// `v1`, `v1.41`: Docker's API version prefix.
pub fn is_version(segment: &str) -> bool {
    let Some(number) = segment.strip_prefix('v') else {
        return false;
    };
    let mut parts = number.split('.');
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts.next().is_some_and(all_digits) && parts.all(all_digits) && number.split('.').count() <= 2
}

#[cfg(test)]
mod tests {
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
    fn names_with_dashes_and_dots_match() {
        // powerstrip-weave's `\w+` missed these.
        assert!(
            p("POST /*/containers/*/start").matches("POST", "/v1.41/containers/my-app.1/start")
        );
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
    }

    #[test]
    fn overlap_detects_streaming_endpoints() {
        let logs = p("GET /containers/*/logs");
        assert!(p("GET /*/containers/*/logs").overlaps(&logs));
        assert!(p("* /*/containers/web/*").overlaps(&logs));
        assert!(!p("POST /*/containers/*/logs").overlaps(&logs));
        assert!(!p("GET /*/containers/*/json").overlaps(&logs));
    }

    #[test]
    fn versions() {
        assert!(is_version("v1.41") && is_version("v1") && is_version("v12.0"));
        assert!(
            !is_version("v") && !is_version("v1.") && !is_version("v1.2.3") && !is_version("x1")
        );
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

        /// Replacing any one segment with `*` still matches, and adding a segment never does.
        #[test]
        fn star_is_one_segment(segments in prop::collection::vec("[a-z][a-z0-9]{0,8}", 2..5), index in 0usize..5) {
            let index = index % segments.len();
            let mut globbed = segments.clone();
            globbed[index] = "*".into();
            let pattern = p(&format!("GET /{}", globbed.join("/")));
            let exact = format!("/{}", segments.join("/"));
            let longer = format!("{exact}/extra/more");
            prop_assert!(pattern.matches("GET", &exact));
            prop_assert!(!pattern.matches("GET", &longer));
        }
    }
}
