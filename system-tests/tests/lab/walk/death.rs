//! The death of a volume's owner (issue 12, item 5): its host cut off the network with its
//! agent and dockerd killed (its disk stays, its containers go on writing into it), a
//! replica promoted on another host, then the host back. What the promotion lost must be
//! exactly the writes acknowledged after the replica's snapshot, and the model follows it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::Walk;
use super::finish::READ;
use super::host::{self, acked, ctl, ctl_json, docker, now_ms, wait_until_whole};
use super::model::NODES;
use crate::{lab, stderr, stdout};
use testkit::wait_until;

/// The max lag the step gives the volume's replica.
const MAX_LAG_MS: u64 = 2_000;

/// Slack between when a write was acknowledged here and when the agent stamped its snapshot
/// (the clocks are one; the stamps are taken a little before or after).
const STAMP_SLACK_MS: u64 = 500;

impl Walk {
    /// A volume's owner dies and its replica is promoted: `volume set --replicas 1 --max-lag
    /// 2s`, a replica fresher than the step's start, sometimes one more write just before
    /// the death (which the promotion may lose), `demos/lab cut K` and kill -9 of K's agent
    /// and dockerd, `volume promote` on the replica's node once K is down, then K back.
    pub(super) fn host_dies(&mut self) {
        let owned: Vec<(String, u32)> = self
            .model
            .volumes
            .iter()
            .filter_map(|(n, v)| v.owner.map(|k| (n.clone(), k)))
            .collect();
        if owned.is_empty() {
            return self.create_volume();
        }
        let (name, k) = owned[self.rng.below(owned.len())].clone();
        let started_ms = now_ms();
        let writers: BTreeMap<String, usize> = self
            .model
            .running()
            .filter(|c| c.writer && c.volume.as_deref() == Some(name.as_str()))
            .map(|c| (c.name.clone(), acked(c.node, &c.name)))
            .collect();
        let set = ctl(&["volume", "set", &name, "--replicas", "1", "--max-lag", "2s"]);
        if !set.status.success() {
            return self
                .unexpected_error(&format!("volume set {name} --replicas 1"), &stderr(&set));
        }
        let fresh = |v: &Value| {
            v["replicas"].as_array().into_iter().flatten().any(|r| {
                r["node"] != format!("node{k}").as_str()
                    && r["diverged"] != true
                    && r["taken_ms"].as_u64().is_some_and(|t| t > started_ms)
            })
        };
        wait_until(
            Duration::from_secs(60),
            &format!("a replica of {name} fresher than the step"),
            || fresh(&ctl_json(&["volume", "inspect", &name])),
        );
        let late = self.rng.chance(50);
        if late {
            self.write_to(&name, k);
        }
        self.say(format!(
            "node{k}, owner of {name} (writers {:?}{}), dies: cut off, agent and dockerd killed",
            writers.keys().collect::<Vec<_>>(),
            if late { ", a write just before" } else { "" }
        ));
        let died_ms = now_ms();
        lab(&["cut", &k.to_string()]);
        lab(&["kill", "agent", &k.to_string()]);
        lab(&["kill", "dockerd", &k.to_string()]);
        host::set_via(*NODES.iter().find(|m| **m != k).unwrap());
        let node = format!("node{k}");
        wait_until(
            Duration::from_secs(60),
            &format!("{node} marked down"),
            || {
                ctl_json(&["node", "ls"])
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|n| n["name"] == node.as_str() && n["up"] == false)
            },
        );
        let v = ctl_json(&["volume", "inspect", &name]);
        let Some(r) = v["replicas"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["node"] != node.as_str() && r["diverged"] != true)
            .max_by_key(|r| r["taken_ms"].as_u64())
            .and_then(|r| {
                r["node"]
                    .as_str()?
                    .strip_prefix("node")?
                    .parse::<u32>()
                    .ok()
            })
        else {
            self.fail(&format!("{name} has no replica to promote: {v}"));
        };
        let doing = format!("{}; promote {name} on node{r}", self.doing);
        self.say(doing.clone());
        let promoted = ctl(&["volume", "promote", &name, "--on", &format!("node{r}")]);
        if !promoted.status.success() {
            self.fail(&format!(
                "promoting {name} on node{r} while its owner {node} is down: {}",
                stderr(&promoted)
            ));
        }
        self.account_for_promotion(&name, k, r, died_ms, &writers);

        lab(&["heal", &k.to_string()]);
        lab(&["start", "dockerd", &k.to_string()]);
        lab(&["start", "agent", &k.to_string()]);
        self.dockerd_restarted(k, Some(&name));
        host::set_via(1);
        wait_until_whole();
        self.say(format!("{doing}; node{k} back"));
        self.deep = true;
    }

    /// Reads the promoted copy on node `r` and holds it to the promotion's word: the log is
    /// the model's up to the last record acknowledged before the replica's snapshot (every
    /// one of them there, any record missing acknowledged after it), the snapshot within the
    /// max lag of the death, each writer's file at least as long as when the step began.
    /// The model becomes what was kept.
    fn account_for_promotion(
        &mut self,
        name: &str,
        k: u32,
        r: u32,
        died_ms: u64,
        writers: &BTreeMap<String, usize>,
    ) {
        let v = ctl_json(&["volume", "inspect", name]);
        let promotion = v["promotions"].as_array().and_then(|p| p.last()).cloned();
        let Some(taken_ms) = promotion.as_ref().and_then(|p| p["taken_ms"].as_u64()) else {
            self.fail(&format!(
                "the promotion of {name} records no snapshot time: {v}"
            ));
        };
        if promotion.as_ref().map(|p| &p["from"]) != Some(&Value::from(format!("node{k}"))) {
            self.fail(&format!(
                "the promotion of {name} is not recorded from node{k}: {v}"
            ));
        }
        if died_ms.saturating_sub(taken_ms) > MAX_LAG_MS + 3_000 {
            self.fail(&format!(
                "{name}'s promoted snapshot is {} ms older than the death, beyond the max lag ({MAX_LAG_MS} ms)",
                died_ms - taken_ms
            ));
        }
        let bind = format!("/flocker/{name}:/data");
        let out = docker(
            r,
            &["run", "--rm", "-v", &bind, "busybox", "sh", "-c", READ],
        );
        if !out.status.success() {
            return self.unexpected_error(&format!("reading {name} on node{r}"), &stderr(&out));
        }
        let printed = stdout(&out);
        let (log, counts) = printed.split_once("--\n").unwrap_or((&printed, ""));
        let lines: Vec<String> = log.lines().map(str::to_owned).collect();
        let model = self.model.volumes[name].clone();
        if !model.records.starts_with(&lines) {
            self.fail(&format!(
                "{name}'s promoted log is not a prefix of what was written: read {lines:?}, written {:?}",
                model.records
            ));
        }
        for lost in &model.records[lines.len()..] {
            let at = self.model.written_ms.get(lost).copied().unwrap_or(0);
            if at + STAMP_SLACK_MS < taken_ms {
                self.fail(&format!(
                    "{name}: record {lost}, acknowledged at {at}, before the promoted snapshot of {taken_ms}, is lost"
                ));
            }
        }
        let v = self.model.volumes.get_mut(name).unwrap();
        v.records = lines;
        v.owner = Some(r);
        v.changed = true;
        for (writer, before) in writers {
            let count = super::volumes::lines_of(counts, writer);
            if count < *before {
                self.fail(&format!(
                    "{name}: writer {writer} had {before} lines acknowledged before the replica's snapshot; the promoted copy holds {count}"
                ));
            }
            self.model
                .volumes
                .get_mut(name)
                .unwrap()
                .acked
                .insert(writer.clone(), count);
        }
    }
}
