//! The create-body rewrite: a container with `WEAVE_CIDR` runs `wait-for-net` first.
//!
//! `POST /containers/create` bodies are rewritten so that
//! - `Entrypoint` is `["/w/wait-for-net"]`,
//! - `Cmd` is `["--", <the command Docker would have run>...]`,
//! - `HostConfig.Binds` gains `HOST_PATH:/w/wait-for-net:ro` (HostConfig and Binds are
//!   created when absent; existing binds stay).
//!
//! "The command Docker would have run" follows the daemon's own rules (moby
//! `daemon/commit.go` `merge` then `mergeAndVerifyConfig`):
//! - if the request's Entrypoint is absent, `null` or empty: the Cmd is the request's if it
//!   is non-empty, else the image's; the Entrypoint is the image's if the request's is
//!   absent or `null`, else none (an empty array clears it);
//! - otherwise the request's Entrypoint and the request's Cmd (the image's Cmd is NOT used);
//! - then an Entrypoint of exactly `[""]` (`docker run --entrypoint ""`) means none.
//!
//! Entrypoint and Cmd may be strings (one element, not split) or arrays, as Docker accepts.
//! Bodies without `WEAVE_CIDR` are not touched.

use serde_json::{Map, Value};

use super::cidr::{self, CidrError, CidrRequest};

/// Where `wait-for-net` appears inside the container.
pub const WAIT_FOR_NET: &str = "/w/wait-for-net";

/// An image's `ENTRYPOINT` and `CMD`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageCommand {
    /// `ENTRYPOINT`, if the image has one.
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`, if the image has one.
    pub cmd: Option<Vec<String>>,
}

/// Why a create body cannot be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The body is not a JSON object.
    #[error("the create request body is not a JSON object")]
    NotAnObject,
    /// A field has the wrong type.
    #[error("{field} must be {want}")]
    BadField {
        /// The field.
        field: &'static str,
        /// What it must be.
        want: &'static str,
    },
    /// `WEAVE_CIDR` is malformed.
    #[error(transparent)]
    Cidr(#[from] CidrError),
    /// The container would share another network namespace (`--network host` or
    /// `container:NAME`): attaching `ethwe` there would change that namespace.
    #[error(
        "WEAVE_CIDR needs a network namespace of the container's own, and --network {mode} \
         shares another one: drop WEAVE_CIDR or the --network option"
    )]
    SharedNetns {
        /// The network mode asked for.
        mode: String,
    },
    /// Neither the request nor the image gives a command.
    #[error("no command specified (neither the request nor the image has ENTRYPOINT or CMD)")]
    NoCommand,
}

/// The `WEAVE_CIDR` requests in a create body; `None` when it has none (pass unchanged).
pub fn requests(body: &Value) -> Option<Result<Vec<CidrRequest>, RewriteError>> {
    let env = match body.get("Env") {
        None | Some(Value::Null) => return None,
        Some(env) => env,
    };
    let Some(list) = env.as_array() else {
        return Some(Err(bad("Env", "a list of NAME=value strings")));
    };
    let strings: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
    cidr::from_env(&strings).map(|r| r.map_err(RewriteError::from))
}

/// Refuses network modes in which the container has no namespace of its own.
pub fn check_network_mode(body: &Value) -> Result<(), RewriteError> {
    let mode = body
        .get("HostConfig")
        .and_then(|h| h.get("NetworkMode"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if shares_netns(mode) {
        return Err(RewriteError::SharedNetns {
            mode: mode.to_owned(),
        });
    }
    Ok(())
}

/// Whether a `HostConfig.NetworkMode` puts the container in a namespace not its own.
pub fn shares_netns(mode: &str) -> bool {
    mode == "host" || mode.starts_with("container:")
}

/// The image the body names, when the rewrite needs the image's ENTRYPOINT/CMD.
pub fn image_needed(body: &Value) -> Result<Option<&str>, RewriteError> {
    let entrypoint = str_slice(body, "Entrypoint")?;
    let cmd = str_slice(body, "Cmd")?;
    let needed = match &entrypoint {
        None => true,
        Some(e) => e.is_empty() && cmd.is_none_or(|c| c.is_empty()),
    };
    Ok(needed
        .then(|| body.get("Image").and_then(Value::as_str))
        .flatten())
}

/// The argv Docker would run for this body and image.
pub fn command(body: &Value, image: &ImageCommand) -> Result<Vec<String>, RewriteError> {
    let mut entrypoint = str_slice(body, "Entrypoint")?;
    let mut cmd = str_slice(body, "Cmd")?.unwrap_or_default();
    if entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if cmd.is_empty() {
            cmd = image.cmd.clone().unwrap_or_default();
        }
        if entrypoint.is_none() {
            entrypoint = image.entrypoint.clone();
        }
    }
    let mut entrypoint = entrypoint.unwrap_or_default();
    if entrypoint.len() == 1 && entrypoint[0].is_empty() {
        entrypoint.clear();
    }
    entrypoint.extend(cmd);
    if entrypoint.is_empty() {
        return Err(RewriteError::NoCommand);
    }
    Ok(entrypoint)
}

/// Rewrites `body` to run `argv` under `wait-for-net`, bind-mounted from `host_path`.
pub fn wrap(body: &mut Value, argv: Vec<String>, host_path: &str) -> Result<(), RewriteError> {
    let object = body.as_object_mut().ok_or(RewriteError::NotAnObject)?;
    let mut cmd = vec![Value::from("--")];
    cmd.extend(argv.into_iter().map(Value::from));
    object.insert("Entrypoint".into(), Value::from(vec![WAIT_FOR_NET]));
    object.insert("Cmd".into(), Value::Array(cmd));
    let host_config = object
        .entry("HostConfig")
        .and_modify(|v| {
            if v.is_null() {
                *v = Value::Object(Map::new());
            }
        })
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| bad("HostConfig", "an object"))?;
    let binds = host_config
        .entry("Binds")
        .and_modify(|v| {
            if v.is_null() {
                *v = Value::Array(Vec::new());
            }
        })
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| bad("HostConfig.Binds", "a list of strings"))?;
    binds.push(Value::from(format!("{host_path}:{WAIT_FOR_NET}:ro")));
    Ok(())
}

/// Docker's StrSlice field: absent or `null` is `None`, a string is one element.
fn str_slice(body: &Value, field: &'static str) -> Result<Option<Vec<String>>, RewriteError> {
    const WANT: &str = "a string or a list of strings";
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(field, WANT))
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(bad(field, WANT)),
    }
}

fn bad(field: &'static str, want: &'static str) -> RewriteError {
    RewriteError::BadField { field, want }
}

#[cfg(test)]
mod tests;
