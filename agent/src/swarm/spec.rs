//! What makes a Swarm service spec impossible to run here, read from the JSON Docker's
//! clients send (`ServiceSpec`):
//!
//! - a `/flocker` volume with a bad name (a `volume-driver=flocker` mount, or a bind of
//!   `/flocker/NAME`);
//! - a bad `WEAVE_CIDR`;
//! - one flocker volume written by several tasks at once: a flocker volume is single-writer
//!   (one owner host at a time), so a fixed name may not be used by a service with more than
//!   one replica, a global service, or one updated `start-first` (the new task would start
//!   beside the old one). A name with a template, such as `db-{{.Task.Slot}}`, is one volume
//!   per task and is fine.
//!
//! Swarm expands `{{...}}` templates per task (in mounts' sources and in the environment);
//! they are checked with each template standing for `1`.

use serde::Deserialize;

use crate::flocker::binds::NAMESPACE;
use crate::storage::VolumeName;
use crate::weave::cidr;

/// The volume driver name of flocker volumes.
const DRIVER: &str = crate::plugin::registration::DRIVER;

/// Why a service spec cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The request body is not a service spec.
    #[error("the service spec is not valid JSON: {0}")]
    Json(String),
    /// A flocker volume's name is invalid.
    #[error("service {service}: flocker volume {written:?}: {reason}")]
    VolumeName {
        /// The service's name.
        service: String,
        /// The mount's source as written.
        written: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `WEAVE_CIDR` is invalid.
    #[error("service {service}: WEAVE_CIDR={value:?}: {reason}")]
    WeaveCidr {
        /// The service's name.
        service: String,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// More than one task would write one flocker volume.
    #[error(
        "service {service}: flocker volume {volume:?} is single-writer (one host at a time), but {why}: \
         name it per task, e.g. \"{volume}-{{{{.Task.Slot}}}}\", or run one replica updated stop-first"
    )]
    SharedVolume {
        /// The service's name.
        service: String,
        /// The volume's name.
        volume: String,
        /// Why several tasks would hold it.
        why: String,
    },
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ServiceSpec {
    name: String,
    task_template: TaskTemplate,
    mode: Mode,
    update_config: Option<UpdateConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct TaskTemplate {
    container_spec: ContainerSpec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ContainerSpec {
    env: Vec<String>,
    mounts: Vec<Mount>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Mount {
    #[serde(rename = "Type")]
    kind: String,
    source: String,
    volume_options: Option<VolumeOptions>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct VolumeOptions {
    driver_config: Option<DriverConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DriverConfig {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Mode {
    replicated: Option<Replicated>,
    global: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Replicated {
    replicas: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateConfig {
    order: String,
}

/// Rewrites every bind of a whole `/flocker/NAME` in the spec `value` into a mount of the
/// flocker volume NAME (`type=volume,volume-driver=flocker`), so the task's node gets the
/// volume through the plugin, wherever Swarm places it (a bind would take whatever that
/// host's `/flocker/NAME` holds). A bind of a path inside a flocker volume cannot be
/// rewritten (a volume mount has no sub-path) and is refused. Returns how many were
/// rewritten.
pub fn binds_to_volumes(value: &mut serde_json::Value) -> Result<usize, SpecError> {
    let service = value["Name"].as_str().unwrap_or("(unnamed)").to_owned();
    let Some(mounts) = value
        .pointer_mut("/TaskTemplate/ContainerSpec/Mounts")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return Ok(0);
    };
    let mut rewritten = 0;
    for mount in mounts.iter_mut() {
        let (Some("bind"), Some(source)) = (mount["Type"].as_str(), mount["Source"].as_str())
        else {
            continue;
        };
        let Some(rest) = source
            .strip_prefix(NAMESPACE)
            .and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        let name = rest.trim_end_matches('/');
        if name.contains('/') {
            return Err(SpecError::VolumeName {
                service,
                written: source.to_owned(),
                reason: format!(
                    "a path inside a flocker volume cannot follow a task to its node; mount the whole volume (source={NAMESPACE}/{})",
                    name.split('/').next().unwrap_or(name)
                ),
            });
        }
        let name = name.to_owned();
        let object = mount
            .as_object_mut()
            .expect("a mount with a Type is an object");
        object.remove("BindOptions");
        object.insert("Type".into(), "volume".into());
        object.insert("Source".into(), name.into());
        object.insert(
            "VolumeOptions".into(),
            serde_json::json!({"DriverConfig": {"Name": DRIVER}}),
        );
        rewritten += 1;
    }
    Ok(rewritten)
}

/// Checks the service spec `body` (the JSON of a create or update request).
pub fn check(body: &str) -> Result<(), SpecError> {
    let spec: ServiceSpec =
        serde_json::from_str(body).map_err(|e| SpecError::Json(e.to_string()))?;
    let service = if spec.name.is_empty() {
        "(unnamed)".to_owned()
    } else {
        spec.name.clone()
    };
    for value in spec
        .task_template
        .container_spec
        .env
        .iter()
        .filter_map(|e| e.strip_prefix("WEAVE_CIDR="))
    {
        cidr::parse(&expand(value)).map_err(|e| SpecError::WeaveCidr {
            service: service.clone(),
            value: value.to_owned(),
            reason: e.to_string(),
        })?;
    }
    for source in spec
        .task_template
        .container_spec
        .mounts
        .iter()
        .filter_map(flocker_source)
    {
        let name = expand(source);
        VolumeName::new(&name).map_err(|e| SpecError::VolumeName {
            service: service.clone(),
            written: source.to_owned(),
            reason: e.to_string(),
        })?;
        if !source.contains("{{")
            && let Some(why) = several_writers(&spec)
        {
            return Err(SpecError::SharedVolume {
                service,
                volume: source.to_owned(),
                why,
            });
        }
    }
    Ok(())
}

/// The flocker volume a mount uses, as written: a `volume` mount with the flocker driver, or
/// a bind of `/flocker/NAME` (its first path segment).
fn flocker_source(mount: &Mount) -> Option<&str> {
    match mount.kind.as_str() {
        "volume" => {
            let driver = mount.volume_options.as_ref()?.driver_config.as_ref()?;
            (driver.name == DRIVER).then_some(mount.source.as_str())
        }
        "bind" => {
            let rest = mount.source.strip_prefix(NAMESPACE)?.strip_prefix('/')?;
            Some(rest.split('/').next().unwrap_or(rest))
        }
        _ => None,
    }
}

/// Why more than one task of `spec` may run at once, if they may.
fn several_writers(spec: &ServiceSpec) -> Option<String> {
    if spec.mode.global.is_some() {
        return Some("the service is global (a task on every node)".to_owned());
    }
    let replicas = spec
        .mode
        .replicated
        .as_ref()
        .and_then(|r| r.replicas)
        .unwrap_or(1);
    if replicas > 1 {
        return Some(format!("the service runs {replicas} replicas"));
    }
    if spec
        .update_config
        .as_ref()
        .is_some_and(|u| u.order == "start-first")
    {
        return Some(
            "the service is updated start-first (the new task starts beside the old)".to_owned(),
        );
    }
    None
}

/// `value` with every `{{...}}` template standing for `1`.
fn expand(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => {
                out.push('1');
                rest = &rest[start + end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(replicas: u64, mounts: serde_json::Value, env: &[&str]) -> String {
        json!({
            "Name": "db",
            "TaskTemplate": {"ContainerSpec": {"Image": "busybox", "Env": env, "Mounts": mounts}},
            "Mode": {"Replicated": {"Replicas": replicas}},
        })
        .to_string()
    }

    fn flocker(source: &str) -> serde_json::Value {
        json!([{"Type": "volume", "Source": source, "Target": "/data",
                "VolumeOptions": {"DriverConfig": {"Name": "flocker"}}}])
    }

    #[test]
    fn a_service_with_one_replica_per_volume_passes() {
        check(&spec(1, flocker("pg"), &["WEAVE_CIDR=10.255.0.51/16"])).unwrap();
        check(&spec(
            3,
            flocker("db-{{.Task.Slot}}"),
            &["WEAVE_CIDR=10.255.0.1{{.Task.Slot}}/16"],
        ))
        .unwrap();
        // Volumes of other drivers and plain binds are not ours to judge.
        let other = json!([{"Type": "volume", "Source": "x y", "Target": "/d"},
                           {"Type": "bind", "Source": "/srv", "Target": "/s"}]);
        check(&spec(5, other, &[])).unwrap();
        check(r#"{"Name": "bare"}"#).unwrap();
    }

    #[test]
    fn one_fixed_volume_for_several_tasks_is_refused_with_the_way_out() {
        let e = check(&spec(3, flocker("pg"), &[])).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, SpecError::SharedVolume { .. }), "{text}");
        assert!(text.contains("3 replicas"), "{text}");
        assert!(text.contains("pg-{{.Task.Slot}}"), "{text}");
        let bind = json!([{"Type": "bind", "Source": "/flocker/pg/sub", "Target": "/data"}]);
        let e = check(&spec(2, bind, &[])).unwrap_err();
        assert!(
            matches!(e, SpecError::SharedVolume { ref volume, .. } if volume == "pg"),
            "{e}"
        );
        let global = json!({"Name": "g", "Mode": {"Global": {}},
            "TaskTemplate": {"ContainerSpec": {"Mounts": flocker("pg")}}});
        assert!(
            check(&global.to_string())
                .unwrap_err()
                .to_string()
                .contains("global")
        );
        let start_first = json!({"Name": "s", "UpdateConfig": {"Order": "start-first"},
            "TaskTemplate": {"ContainerSpec": {"Mounts": flocker("pg")}}});
        assert!(
            check(&start_first.to_string())
                .unwrap_err()
                .to_string()
                .contains("start-first")
        );
    }

    #[test]
    fn bad_names_and_addresses_are_refused_naming_them() {
        let e = check(&spec(1, flocker("no/slash"), &[])).unwrap_err();
        assert!(matches!(e, SpecError::VolumeName { .. }), "{e}");
        assert!(e.to_string().contains("\"no/slash\""), "{e}");
        let e = check(&spec(1, json!([]), &["WEAVE_CIDR=10.255.0.300/16"])).unwrap_err();
        assert!(matches!(e, SpecError::WeaveCidr { .. }), "{e}");
        assert!(e.to_string().contains("10.255.0.300/16"), "{e}");
        assert!(matches!(check("{not json"), Err(SpecError::Json(_))));
    }

    #[test]
    fn flocker_binds_become_flocker_volume_mounts_and_others_stay() {
        let mut value = serde_json::from_str::<serde_json::Value>(&spec(
            1,
            json!([
                {"Type": "bind", "Source": "/flocker/pg", "Target": "/data", "ReadOnly": true,
                 "BindOptions": {"Propagation": "rprivate"}},
                {"Type": "bind", "Source": "/srv/static", "Target": "/static"},
                {"Type": "volume", "Source": "x", "Target": "/x"},
            ]),
            &[],
        ))
        .unwrap();
        assert_eq!(binds_to_volumes(&mut value).unwrap(), 1);
        let mounts = &value["TaskTemplate"]["ContainerSpec"]["Mounts"];
        assert_eq!(
            mounts[0],
            json!({"Type": "volume", "Source": "pg", "Target": "/data", "ReadOnly": true,
                   "VolumeOptions": {"DriverConfig": {"Name": "flocker"}}})
        );
        assert_eq!(mounts[1]["Type"], "bind");
        assert_eq!(
            mounts[2],
            json!({"Type": "volume", "Source": "x", "Target": "/x"})
        );
        // What the rewrite makes passes the check.
        check(&value.to_string()).unwrap();
    }

    #[test]
    fn a_bind_inside_a_flocker_volume_is_refused_naming_the_whole_volume() {
        let body = spec(
            1,
            json!([{"Type": "bind", "Source": "/flocker/pg/conf", "Target": "/etc/pg"}]),
            &[],
        );
        let mut value = serde_json::from_str::<serde_json::Value>(&body).unwrap();
        let e = binds_to_volumes(&mut value).unwrap_err();
        assert!(e.to_string().contains("source=/flocker/pg"), "{e}");
    }

    #[test]
    fn templates_stand_for_one() {
        assert_eq!(expand("db-{{.Task.Slot}}"), "db-1");
        assert_eq!(expand("10.0.0.1{{.Task.Slot}}/8"), "10.0.0.11/8");
        assert_eq!(expand("{{.Service.Name}}-{{.Task.Slot}}"), "1-1");
        assert_eq!(expand("open{{"), "open{{");
    }
}
