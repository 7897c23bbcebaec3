//! The invariants that hold after every step: the volumes are the model's with their epochs
//! never going back; the containers run as the model says; no address is held by a
//! container that does not run, and every running container holds its own; the pools keep
//! the retention rule; no copy but the owner's can be written.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Walk;
use super::host::{self, ctl_json, dockerd, pools, rw_mounts};
use super::model::{NODES, VOLUMES, address};
use super::retention::{self, Recorded};
use crate::stdout;

/// How long the lab may take to settle after a step (a `die` event reaching the control
/// service, a dockerd restarting containers, a move's clean-up after its `done`).
const SETTLE: Duration = Duration::from_secs(20);

/// Polls `probe` until it finds nothing wrong or [`SETTLE`] passes; what is still wrong.
fn settled<T>(mut probe: impl FnMut() -> Vec<T>) -> Vec<T> {
    let start = Instant::now();
    loop {
        let wrong = probe();
        if wrong.is_empty() || start.elapsed() > SETTLE {
            return wrong;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

impl Walk {
    /// Checks every invariant; a breach fails the walk (or is reported, for known bugs).
    pub(super) fn check(&mut self) {
        let recorded = self.check_volumes();
        self.check_containers();
        self.check_addresses();
        self.check_retention();
        self.check_single_writer(&recorded);
        if std::mem::take(&mut self.deep) {
            self.check_interfaces();
        }
    }

    /// The control service's volumes against the model: the same walk volumes, owners as
    /// expected, an epoch that goes up exactly when the owner changed. Returns all records.
    fn check_volumes(&mut self) -> Vec<Value> {
        let all = ctl_json(&["volume", "ls"]);
        let all = all.as_array().cloned().unwrap_or_default();
        for name in VOLUMES {
            let record = all.iter().find(|v| v["name"] == name);
            let Some(model) = self.model.volumes.get_mut(name) else {
                if let Some(r) = record {
                    self.fail(&format!("{name} exists but the model has none: {r}"));
                }
                continue;
            };
            let Some(r) = record else {
                self.fail(&format!("{name} is missing from `volume ls`"));
            };
            let owner = r["owner"].as_str().map(str::to_owned);
            let expected = model.owner.map(|k| format!("node{k}"));
            let epoch = r["epoch"].as_u64().unwrap_or(0);
            let (last, changed) = (model.epoch, model.changed);
            model.epoch = epoch;
            model.changed = false;
            if owner != expected {
                self.fail(&format!(
                    "{name}: owner {owner:?}, the model expects {expected:?}"
                ));
            }
            if epoch < last {
                self.fail(&format!("{name}: epoch went back from {last} to {epoch}"));
            }
            if changed && epoch == last {
                self.fail(&format!(
                    "{name}: the owner changed but the epoch stayed {epoch}"
                ));
            }
            if !changed && epoch != last {
                self.fail(&format!(
                    "{name}: epoch {last} -> {epoch} without a change of owner"
                ));
            }
        }
        all
    }

    /// Each container of the model runs exactly when the model says, on its node.
    fn check_containers(&mut self) {
        let model = self.model.containers.clone();
        let wrong = settled(|| {
            let states: Vec<String> = NODES
                .iter()
                .map(|k| {
                    let f = "{{.ID}} {{.State}}";
                    stdout(&dockerd(*k, &["ps", "-a", "--no-trunc", "--format", f]))
                })
                .collect();
            model
                .iter()
                .filter_map(|c| {
                    let listing = &states[(c.node - 1) as usize];
                    let state = listing
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{} ", c.id)))
                        .unwrap_or("absent");
                    let runs = state == "running";
                    (runs != c.running).then(|| {
                        format!(
                            "{} on node{}: {state}, the model says running={}",
                            c.name, c.node, c.running
                        )
                    })
                })
                .collect()
        });
        if !wrong.is_empty() {
            self.fail(&format!("containers differ from the model: {wrong:?}"));
        }
    }

    /// No walk address is `running` for a container that does not run on that node, and
    /// each running container of the model holds its own address.
    fn check_addresses(&mut self) {
        let model = self.model.containers.clone();
        let wrong = settled(|| {
            let ips = ctl_json(&["ip", "ls"]);
            let allocations = ips["allocations"].as_array().cloned().unwrap_or_default();
            let running: Vec<BTreeSet<String>> =
                NODES.iter().map(|k| host::running_ids(*k)).collect();
            let mut wrong = Vec::new();
            for a in allocations.iter().filter(|a| a["running"] == true) {
                let node = a["node"].as_str().unwrap_or_default();
                let runs = node
                    .strip_prefix("node")
                    .and_then(|k| k.parse::<usize>().ok())
                    .and_then(|k| running.get(k - 1))
                    .is_some_and(|ids| {
                        ids.contains(a["container_id"].as_str().unwrap_or_default())
                    });
                if !runs {
                    wrong.push((
                        a["container_name"].as_str().unwrap_or_default().to_owned(),
                        a.to_string(),
                    ));
                }
            }
            for c in model.iter().filter(|c| c.running) {
                let Some(last) = c.address else { continue };
                let held = allocations.iter().any(|a| {
                    a["address"] == address(last).as_str()
                        && a["container_id"] == c.id.as_str()
                        && a["node"] == format!("node{}", c.node).as_str()
                        && a["running"] == true
                });
                if !held {
                    wrong.push((
                        c.name.clone(),
                        format!("{} does not hold {} as running", c.name, address(last)),
                    ));
                }
            }
            wrong
        });
        for (name, what) in wrong {
            if name.starts_with("ws") {
                self.known(
                    "2",
                    &format!("the address of {name}, which exited, stays running: {what}"),
                );
            } else {
                self.fail(&format!("an address does not follow its container: {what}"));
            }
        }
    }

    /// The retention rule over every pool (see [`retention`]).
    fn check_retention(&mut self) {
        let breaches = settled(|| {
            let now = ctl_json(&["volume", "ls"]);
            let records: Vec<Recorded> = now
                .as_array()
                .into_iter()
                .flatten()
                .map(Recorded::from_json)
                .collect();
            retention::violations(&records, &pools())
        });
        for b in breaches {
            let bug = if b.contains("no such volume is recorded") {
                "rm"
            } else {
                "1"
            };
            self.known(bug, &b);
        }
    }

    /// No dataset but the owner's can be written: a probe file in every other mounted copy
    /// (a replica's, a copy set aside after a promotion) must fail with a read-only error.
    fn check_single_writer(&mut self, recorded: &[Value]) {
        let mounts = rw_mounts();
        for (k, dataset, target) in &mounts {
            if !retention::is_set_aside(dataset) {
                continue;
            }
            let probe = format!("{target}/.walk-probe");
            if std::fs::write(&probe, b"x").is_ok() {
                let _ = std::fs::remove_file(&probe);
                self.fail(&format!(
                    "node{k}'s copy {dataset}, set aside, can be written"
                ));
            }
        }
        for v in recorded {
            let name = v["name"].as_str().unwrap_or_default();
            for (k, volume, target) in &mounts {
                if volume != name || v["owner"] == format!("node{k}").as_str() {
                    continue;
                }
                let probe = format!("{target}/.walk-probe");
                if std::fs::write(&probe, b"x").is_ok() {
                    let _ = std::fs::remove_file(&probe);
                    self.fail(&format!(
                        "node{k}'s copy of {name} can be written, but {} owns it",
                        v["owner"]
                    ));
                }
            }
        }
    }

    /// After a restart: each running container with an address has it on `ethwe`.
    fn check_interfaces(&mut self) {
        let model = self.model.containers.clone();
        for c in model.iter().filter(|c| c.running) {
            let Some(last) = c.address else { continue };
            let shows = |c: &super::model::Container| {
                let out = dockerd(
                    c.node,
                    &["exec", &c.name, "ip", "-4", "-o", "addr", "show", "ethwe"],
                );
                stdout(&out).contains(&format!("{}/", address(last)))
            };
            if settled(|| if shows(c) { vec![] } else { vec![()] }).len() == 1 {
                self.fail(&format!(
                    "{} on node{} runs without {} on ethwe",
                    c.name,
                    c.node,
                    address(last)
                ));
            }
        }
    }
}
