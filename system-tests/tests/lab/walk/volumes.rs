//! Volume steps: a write through `docker run --rm` that reads back every record, a move
//! (with or without `--stop`, sometimes to the owner), create and rm.

use super::Walk;
use super::host::{acked, ctl, docker};
use super::model::{VOLUMES, Volume, names};
use crate::{stderr, stdout};

/// Appends `$1` to /data/log, then prints the log, a `--` line and the line count of every
/// writer's file.
const WRITE: &str = "echo \"$1\" >> /data/log && sync && cat /data/log && echo -- && \
                     for f in /data/wc*; do [ -e \"$f\" ] && echo \"$f $(wc -l < \"$f\")\"; done; true";

impl Walk {
    /// `docker run --rm -v /flocker/V:/data` on a random node: appends a record and reads
    /// the whole log back; refused, naming the holder, while a container on another node
    /// holds the volume.
    pub(super) fn write(&mut self) {
        let name = self.rng.pick(&VOLUMES);
        let node = self.rng.node();
        self.write_to(name, node);
    }

    /// [`Walk::write`] of a record to `name` on `node`.
    pub(super) fn write_to(&mut self, name: &str, node: u32) {
        let record = format!("r{}-{}", self.seed % 10_000, self.model.next());
        self.say(format!("write {record} to {name} on node{node}"));
        let bind = format!("/flocker/{name}:/data");
        let args = [
            "run", "--rm", "-v", &bind, "busybox", "sh", "-c", WRITE, "sh", &record,
        ];
        let out = docker(node, &args);
        let (ok, err) = (out.status.success(), stderr(&out));
        let holder = self.model.holder(name).filter(|c| c.node != node).cloned();
        let ownerless = self
            .model
            .volumes
            .get(name)
            .is_some_and(|v| v.owner.is_none());
        if let Some(h) = holder {
            if ok {
                self.fail(&format!(
                    "the write succeeded on node{node} while {} on node{} holds {name}",
                    h.name, h.node
                ));
            }
            return self.expect_named(&err, &h.id, &h.name, h.node);
        }
        if ownerless {
            if ok || !err.contains("no owner") {
                self.fail(&format!(
                    "{name} has no owner: expected a refusal saying so, got ok={ok}: {err}"
                ));
            }
            return;
        }
        if !ok {
            return self.unexpected_error(&format!("the write to {name} on node{node}"), &err);
        }
        self.model
            .written_ms
            .insert(record.clone(), super::host::now_ms());
        let v = self.model.volumes.entry(name.to_owned()).or_default();
        v.records.push(record);
        if v.owner != Some(node) {
            v.owner = Some(node);
            v.changed = true;
        }
        let v = v.clone();
        self.check_log(name, &v, &stdout(&out));
    }

    /// Compares what a write printed (the log, `--`, writers' line counts) with the model.
    pub(super) fn check_log(&self, name: &str, v: &Volume, printed: &str) {
        let (log, counts) = printed.split_once("--\n").unwrap_or((printed, ""));
        let lines: Vec<&str> = log.lines().collect();
        if lines != v.records {
            let missing: Vec<&String> = v
                .records
                .iter()
                .filter(|r| !lines.contains(&r.as_str()))
                .collect();
            self.fail(&format!(
                "{name}'s log differs from the model: missing {missing:?}; read {lines:?}, expected {:?}",
                v.records
            ));
        }
        for (file, at_least) in &v.acked {
            let count = lines_of(counts, file);
            if count < *at_least {
                self.fail(&format!(
                    "{name}: writer {file} acknowledged {at_least} lines, the volume holds {count}"
                ));
            }
        }
    }

    /// Asserts that a refusal names the container (`id` or `name`) and its node.
    pub(super) fn expect_named(&mut self, error: &str, id: &str, name: &str, node: u32) {
        if let Some(dead) = self.model.names_a_dead_container(error) {
            return self.known(
                "2",
                &format!("refused for container {dead}, which does not run: {error}"),
            );
        }
        if !names(error, id, name) || !error.contains(&format!("node{node}")) {
            self.fail(&format!(
                "the refusal does not name the cause ({name} {} on node{node}): {error}",
                &id[..12]
            ));
        }
    }

    /// `flockerctl volume move V --to K [--stop]`.
    pub(super) fn move_volume(&mut self) {
        let Some(name) = self.existing_volume() else {
            return self.create_volume();
        };
        let to = self.rng.node();
        let stop = self.rng.chance(50);
        let v = self.model.volumes[&name].clone();
        let holders: Vec<_> = self
            .model
            .running()
            .filter(|c| c.volume.as_deref() == Some(name.as_str()))
            .cloned()
            .collect();
        let writers: Vec<&str> = holders
            .iter()
            .filter(|c| c.writer)
            .map(|c| c.name.as_str())
            .collect();
        self.say(format!(
            "move {name} (owner {:?}, holders {:?}, writers {writers:?}) to node{to}{}",
            v.owner,
            holders.iter().map(|c| &c.name).collect::<Vec<_>>(),
            if stop { " --stop" } else { "" }
        ));
        let target = format!("node{to}");
        let mut args = vec!["volume", "move", &name, "--to", &target];
        if stop {
            args.push("--stop");
        }
        let out = ctl(&args);
        let (ok, err) = (out.status.success(), stderr(&out));
        if v.owner == Some(to) {
            if !ok && !err.contains(&format!("already on node \"{target}\"")) {
                self.fail(&format!(
                    "a move to the owner must say it is already there: {err}"
                ));
            }
            return;
        }
        if let (Some(h), false) = (holders.first(), stop) {
            if ok {
                self.fail(&format!("the move succeeded while {} holds {name}", h.name));
            }
            return self.expect_named(&err, &h.id, &h.name, h.node);
        }
        if !ok {
            return self.unexpected_error(&format!("the move of {name} to {target}"), &err);
        }
        for h in &holders {
            let c = self.model.container_mut(&h.name);
            c.running = false;
            if h.writer {
                let n = acked(h.node, &h.name);
                let v = self.model.volumes.get_mut(&name).unwrap();
                v.acked.insert(h.name.clone(), n);
            }
        }
        let v = self.model.volumes.get_mut(&name).unwrap();
        v.owner = Some(to);
        v.changed = true;
    }

    /// A volume of the model, if there is one.
    fn existing_volume(&mut self) -> Option<String> {
        let names: Vec<String> = self.model.volumes.keys().cloned().collect();
        (!names.is_empty()).then(|| names[self.rng.below(names.len())].clone())
    }

    /// `flockerctl volume create V [--owner nodeK]`: refused when V exists.
    pub(super) fn create_volume(&mut self) {
        let name = self.rng.pick(&VOLUMES);
        let owner = self.rng.chance(75).then(|| self.rng.node());
        self.say(format!("volume create {name} owner {owner:?}"));
        let owner_name = owner.map(|k| format!("node{k}"));
        let mut args = vec!["volume", "create", name];
        if let Some(o) = &owner_name {
            args.extend(["--owner", o]);
        }
        let out = ctl(&args);
        let (ok, err) = (out.status.success(), stderr(&out));
        if self.model.volumes.contains_key(name) {
            if ok || !err.contains("already exists") {
                self.fail(&format!("creating an existing volume: ok={ok}, {err}"));
            }
            return;
        }
        if !ok {
            return self.unexpected_error(&format!("volume create {name}"), &err);
        }
        let v = Volume {
            owner,
            changed: owner.is_some(),
            ..Volume::default()
        };
        self.model.volumes.insert(name.to_owned(), v);
    }

    /// `flockerctl volume rm V`: refused, naming the holder, while a container holds it.
    pub(super) fn remove_volume(&mut self) {
        let name = self.rng.pick(&VOLUMES);
        self.say(format!("volume rm {name}"));
        let out = ctl(&["volume", "rm", name]);
        let (ok, err) = (out.status.success(), stderr(&out));
        if let Some(h) = self.model.holder(name).cloned() {
            if ok {
                self.fail(&format!("volume rm succeeded while {} holds it", h.name));
            }
            if let Some(dead) = self.model.names_a_dead_container(&err) {
                return self.known(
                    "2",
                    &format!("refused for {dead}, which does not run: {err}"),
                );
            }
            if !names(&err, &h.id, &h.name) {
                self.fail(&format!(
                    "the refusal does not name the holder {}: {err}",
                    h.name
                ));
            }
            return;
        }
        if !self.model.volumes.contains_key(name) {
            if ok || !err.contains("no volume named") {
                self.fail(&format!("removing an absent volume: ok={ok}, {err}"));
            }
            return;
        }
        if !ok {
            return self.unexpected_error(&format!("volume rm {name}"), &err);
        }
        self.model.volumes.remove(name);
    }
}

/// The line count a read printed for writer `file` (`/data/FILE N`), 0 when it printed none.
pub(super) fn lines_of(counts: &str, file: &str) -> usize {
    counts
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("/data/{file} "))?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
