//! `/flocker/<name>[/sub]` references in a `containers/create` body: found and validated
//! before any side effect ([`flocker_volumes`]), then rewritten to the local mount
//! ([`rewrite`]). Only the host side of each bind changes: the container path, the
//! sub-path and the options stay, other binds stay, and `Binds: null` stays null.

use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use crate::storage::VolumeName;

/// The global namespace users write in front of a volume name.
pub const NAMESPACE: &str = "/flocker";

/// A bind or mount source that names a flocker volume but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// The name after `/flocker/` is not a valid volume name.
    #[error(
        "{source_path:?} does not name a flocker volume: {reason} (write /flocker/NAME with NAME of 1 to 63 characters from a-z, 0-9, '_', '.', '-', starting with a letter or digit)"
    )]
    BadName {
        /// The bind's host side as given.
        source_path: String,
        /// What is wrong with the name.
        reason: String,
    },
    /// The sub-path below the volume leaves it or is not a plain path.
    #[error("{source_path:?}: the path inside the volume must not contain '.' or '..' components")]
    BadSubPath {
        /// The bind's host side as given.
        source_path: String,
    },
    /// The body is not a JSON object.
    #[error("the container create request body is not JSON: {0}")]
    NotJson(String),
}

/// A parsed `/flocker/<name>[/sub]` host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlockerPath {
    /// The volume.
    pub volume: VolumeName,
    /// The path inside the volume, empty for the volume itself.
    pub sub: PathBuf,
}

/// Parses a host path: `None` if it is not in the flocker namespace at all.
pub fn parse_source(source: &str) -> Option<Result<FlockerPath, BindError>> {
    let rest = source.strip_prefix(NAMESPACE)?;
    let rest = match rest.strip_prefix('/') {
        Some(rest) => rest,
        None if rest.is_empty() => "",
        None => return None, // `/flockerish/...` is somebody else's path
    };
    let (name, sub) = rest.split_once('/').unwrap_or((rest, ""));
    let volume = match VolumeName::new(name) {
        Ok(v) => v,
        Err(e) => {
            return Some(Err(BindError::BadName {
                source_path: source.to_owned(),
                reason: e.reason.to_owned(),
            }));
        }
    };
    let sub = Path::new(sub);
    if !sub.components().all(|c| matches!(c, Component::Normal(_))) {
        return Some(Err(BindError::BadSubPath {
            source_path: source.to_owned(),
        }));
    }
    Some(Ok(FlockerPath {
        volume,
        sub: sub.to_owned(),
    }))
}

/// The host side of a `HOST:CONTAINER[:OPTIONS]` bind and the rest after the first colon.
fn split_bind(bind: &str) -> (&str, Option<&str>) {
    match bind.split_once(':') {
        Some((host, rest)) => (host, Some(rest)),
        None => (bind, None),
    }
}

/// Whether a collected string is a whole `HOST:CONTAINER[:OPTIONS]` bind or a mount's
/// `Source` (a host path alone).
#[derive(Clone, Copy)]
enum Kind {
    Bind,
    MountSource,
}

/// Every host path the create body names in `HostConfig.Binds` and in bind-type
/// `HostConfig.Mounts`, as mutable JSON strings.
fn sources_mut(body: &mut Value) -> Vec<(Kind, &mut String)> {
    let mut out = Vec::new();
    let Some(host) = body.get_mut("HostConfig").and_then(Value::as_object_mut) else {
        return out;
    };
    for (key, value) in host.iter_mut() {
        match (key.as_str(), value) {
            ("Binds", Value::Array(binds)) => {
                for bind in binds.iter_mut() {
                    if let Value::String(bind) = bind {
                        out.push((Kind::Bind, bind));
                    }
                }
            }
            ("Mounts", Value::Array(mounts)) => {
                for mount in mounts.iter_mut().filter_map(Value::as_object_mut) {
                    if mount.get("Type").and_then(Value::as_str) != Some("bind") {
                        continue;
                    }
                    if let Some(Value::String(source)) = mount.get_mut("Source") {
                        out.push((Kind::MountSource, source));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The host path of one collected entry.
fn host_of(kind: Kind, entry: &str) -> &str {
    match kind {
        Kind::Bind => split_bind(entry).0,
        Kind::MountSource => entry,
    }
}

/// Parses `body` and returns it with the flocker volumes it names, each once, in order.
/// Every bad reference is an error before anything else happens.
pub fn flocker_volumes(body: &str) -> Result<(Value, Vec<VolumeName>), BindError> {
    let mut value: Value =
        serde_json::from_str(body).map_err(|e| BindError::NotJson(e.to_string()))?;
    let mut names: Vec<VolumeName> = Vec::new();
    for (kind, entry) in sources_mut(&mut value) {
        match parse_source(host_of(kind, entry)) {
            Some(Ok(path)) if !names.contains(&path.volume) => names.push(path.volume),
            Some(Err(e)) => return Err(e),
            _ => {}
        }
    }
    Ok((value, names))
}

/// Rewrites every flocker reference in `body` to `mount_path(volume)` joined with its
/// sub-path; nothing else changes. The references must have passed [`flocker_volumes`].
pub fn rewrite(body: &mut Value, mount_path: impl Fn(&VolumeName) -> PathBuf) {
    for (kind, entry) in sources_mut(body) {
        let local = match parse_source(host_of(kind, entry)) {
            Some(Ok(path)) if path.sub.as_os_str().is_empty() => mount_path(&path.volume),
            Some(Ok(path)) => mount_path(&path.volume).join(&path.sub),
            _ => continue,
        };
        let local = local.to_string_lossy().into_owned();
        *entry = match (kind, split_bind(entry).1) {
            (Kind::Bind, Some(rest)) => format!("{local}:{rest}"),
            _ => local,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn root(v: &VolumeName) -> PathBuf {
        Path::new("/srv/vols").join(v.as_str())
    }

    #[test]
    fn rewrites_flocker_binds_and_keeps_everything_else() {
        let body = json!({"Image": "busybox", "HostConfig": {
        "Binds": ["/flocker/a:/data", "/tmp/x:/x:ro", "/flocker/b/sub/dir:/logs:ro,z", "named:/n"],
        "Mounts": [
            {"Type": "bind", "Source": "/flocker/a/m", "Target": "/m", "ReadOnly": true},
            {"Type": "volume", "Source": "/flocker/zz", "Target": "/v"},
            {"Type": "bind", "Source": "/home", "Target": "/h"}
        ]}});
        let (mut value, names) = flocker_volumes(&body.to_string()).unwrap();
        let names: Vec<&str> = names.iter().map(VolumeName::as_str).collect();
        assert_eq!(names, ["a", "b"]);
        rewrite(&mut value, root);
        assert_eq!(
            value["HostConfig"],
            json!({
            "Binds": ["/srv/vols/a:/data", "/tmp/x:/x:ro", "/srv/vols/b/sub/dir:/logs:ro,z", "named:/n"],
            "Mounts": [
                {"Type": "bind", "Source": "/srv/vols/a/m", "Target": "/m", "ReadOnly": true},
                {"Type": "volume", "Source": "/flocker/zz", "Target": "/v"},
                {"Type": "bind", "Source": "/home", "Target": "/h"}
            ]})
        );
    }

    #[test]
    fn null_binds_stay_null_and_other_paths_are_not_ours() {
        let body = json!({"HostConfig": {"Binds": null, "Mounts": null}});
        let (mut value, names) = flocker_volumes(&body.to_string()).unwrap();
        assert!(names.is_empty());
        rewrite(&mut value, root);
        assert_eq!(value, body);
        assert!(parse_source("/flockerx/a").is_none());
        assert!(parse_source("/tmp/flocker/a").is_none());
    }

    #[test]
    fn refuses_bad_names_and_sub_paths() {
        for bad in [
            "/flocker/../etc:/x",
            "/flocker/:/x",
            "/flocker:/x",
            "/flocker/Demo:/x",
            "/flocker/a/../../etc:/x",
            &format!("/flocker/{}:/x", "a".repeat(64)),
        ] {
            let body = json!({"HostConfig": {"Binds": ["/ok:/ok", bad]}});
            let err = flocker_volumes(&body.to_string()).expect_err(bad);
            assert!(err.to_string().contains("/flocker"), "{bad}: {err}");
        }
        let body = json!({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/flocker/..", "Target": "/x"}]}});
        assert!(flocker_volumes(&body.to_string()).is_err());
    }
}
