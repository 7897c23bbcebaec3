//! Endpoint patterns: `METHOD /path` where `*` matches exactly one path segment, except a
//! leading one, which stands for the Docker API version and nothing else.
//!
//! The version prefix is optional on both sides. A pattern's first segment, when it is `*` or
//! a version such as `v1.41`, is its *version slot*: `POST /*/containers/create` matches
//! `/v1.41/containers/create` and the unversioned `/containers/create` (go-dockerclient and
//! Kubernetes send the latter), and so does `POST /containers/create`. The slot never stands
//! for any other segment, so `GET /*/containers/*/json` does not slide onto
//! `/v1.41/images/containers/podman/json` (inspecting the image `containers/podman`).
//!
//! A request's first segment is its version when Docker's router would take it as one
//! (`/v{version:[0-9.]+}`); the rest is matched segment by segment after `%XX` escapes are
//! decoded, as Docker decodes them before routing. The query string is never part of a match.

use std::borrow::Cow;
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
    /// Nothing follows the version slot, so no Docker endpoint can match.
    #[error(
        "the path names no endpoint: a leading '*' stands for the API version only; \
         write the endpoint after it, e.g. \"GET /*/containers/*/json\""
    )]
    NoEndpoint,
}

/// One segment of a pattern after its version slot.
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
}

/// A parsed endpoint pattern such as `POST /*/containers/*/start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// `None` for `*` (any method).
    method: Option<String>,
    /// The version a pattern such as `/v1.41/...` names; `None` for `/*/...` or no slot,
    /// which both accept any version or none.
    pinned: Option<String>,
    /// The segments after the version slot.
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
        let mut rest = split(path).peekable();
        let pinned = match rest.peek() {
            Some(&"*") => {
                rest.next();
                None
            }
            Some(first) if is_version(first) => rest.next().map(str::to_owned),
            _ => None,
        };
        let segments: Vec<Segment> = rest
            .map(|segment| match segment {
                "*" => Ok(Segment::Any),
                s if s.contains('*') => Err(PatternError::Glob(s.to_owned())),
                s => Ok(Segment::Literal(s.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        if segments.is_empty() {
            return Err(PatternError::NoEndpoint);
        }
        Ok(Pattern {
            method,
            pinned,
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
        let path = percent_decode(path.split('?').next().unwrap_or_default());
        let mut request = split(&path).peekable();
        if let Some(version) = request.next_if(|first| is_version(first)) {
            // A pattern that names a version matches that version or none, never another.
            if self
                .pinned
                .as_deref()
                .is_some_and(|pinned| !same_version(pinned, version))
            {
                return false;
            }
        }
        // Segment by segment, without collecting the request's: same count, each matching.
        let mut patterns = self.segments.iter();
        loop {
            match (patterns.next(), request.next()) {
                (Some(pattern), Some(segment)) if pattern.matches(segment) => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    /// Whether some request could match both patterns (used to refuse post-hooks on
    /// streaming endpoints at load time). Version slots always meet: the unversioned
    /// request matches both.
    pub fn overlaps(&self, other: &Pattern) -> bool {
        let methods_meet = match (&self.method, &other.method) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        methods_meet
            && self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| a.overlaps(b))
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Splits a path into its non-empty segments.
fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Whether Docker's router takes this first segment as an API version: `v` then one or more
/// digits and dots (`/v{version:[0-9.]+}`), so `v1.41`, `v1` and `v1.41.0` all count.
pub fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// Whether Docker treats two version segments as the same API version: dot-separated
/// numbers compared one by one, missing or empty parts counting as 0 (`v1.41` = `v1.41.0`
/// = `v01.41`), as its `versions.compare` does.
fn same_version(a: &str, b: &str) -> bool {
    fn parts(version: &str) -> Vec<u64> {
        let number = version.strip_prefix('v').unwrap_or(version);
        number
            .split('.')
            .map(|part| match part.parse() {
                Ok(n) => n,
                Err(_) if !part.is_empty() => u64::MAX, // all digits, too many of them
                Err(_) => 0,
            })
            .collect()
    }
    let (a, b) = (parts(a), parts(b));
    (0..a.len().max(b.len()))
        .all(|i| a.get(i).copied().unwrap_or(0) == b.get(i).copied().unwrap_or(0))
}

/// Decodes `%XX` escapes the way Docker does before routing (Go's `URL.Path`), so that
/// `/%63ontainers/create` cannot slip past `POST /*/containers/create`. A malformed escape,
/// which Docker answers with 400, is kept as written.
fn percent_decode(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(high), Some(low)) => {
                decoded.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&decoded).into_owned())
}

#[cfg(test)]
pub(crate) mod docker_routes;
#[cfg(test)]
mod tests;
