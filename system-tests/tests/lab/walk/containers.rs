//! Container steps: long-lived containers (an address, a volume, a writer, a restart
//! policy, each drawn), short-lived `--rm` ones with an address that ping a long-lived one,
//! and stopping, removing or starting again what runs.

use super::Walk;
use super::host::{acked, docker, dockerd};
use super::model::{Container, VOLUMES, address};
use crate::{stderr, stdout};

/// What a long-lived container runs: it exits at once on SIGTERM.
const IDLE: &str = "trap 'exit 0' TERM; while true; do sleep 0.2; done";

/// What a writer runs: appends a line to `/data/$1`, syncs it, then acknowledges it.
const WRITER: &str = "trap 'exit 0' TERM; i=0; while true; do echo $i >> /data/$1 && sync && \
                      echo \"acked $i\"; i=$((i+1)); sleep 0.2; done";

/// At most this many long-lived containers run at once.
const MAX_RUNNING: usize = 5;

impl Walk {
    /// `docker run -d` on a random node, with an address, a volume (maybe a writer) or a
    /// restart policy, each drawn. Refused, naming the holder, when a running container
    /// holds the address, or one on another node holds the volume.
    pub(super) fn run_long(&mut self) {
        if self.model.running().count() >= MAX_RUNNING {
            return self.stop_rm_or_start();
        }
        let node = self.rng.node();
        let name = format!("wc{}", self.model.next());
        let last = self.rng.chance(60).then(|| self.rng.address());
        let volume = self
            .rng
            .chance(50)
            .then(|| self.rng.pick(&VOLUMES).to_owned());
        let writer = volume.is_some() && self.rng.chance(60);
        let restart = volume.is_none() && self.rng.chance(30);
        self.say(format!(
            "run {name} on node{node}: address {:?}, volume {volume:?}, writer {writer}, restart {restart}",
            last.map(address)
        ));
        let env = last.map(|l| format!("WEAVE_CIDR={}/16", address(l)));
        let bind = volume.as_ref().map(|v| format!("/flocker/{v}:/data"));
        let mut args = vec!["run", "-d", "--name", &name];
        if restart {
            args.extend(["--restart", "always"]);
        }
        if let Some(env) = &env {
            args.extend(["-e", env]);
        }
        if let Some(bind) = &bind {
            args.extend(["-v", bind]);
        }
        args.extend([
            "busybox",
            "sh",
            "-c",
            if writer { WRITER } else { IDLE },
            "sh",
            &name,
        ]);
        let out = docker(node, &args);
        let (ok, err) = (out.status.success(), stderr(&out));
        let volume_holder = volume
            .as_deref()
            .and_then(|v| self.model.holder(v))
            .filter(|c| c.node != node)
            .cloned();
        let address_holder = last.and_then(|l| self.model.address_holder(l)).cloned();
        let ownerless = volume
            .as_ref()
            .and_then(|v| self.model.volumes.get(v))
            .is_some_and(|v| v.owner.is_none());
        // The address is checked first (the weave pre-hook runs before flocker's): with
        // both taken, the refusal names the address's holder.
        if let Some(h) = address_holder.or(volume_holder) {
            let _ = dockerd(node, &["rm", "-f", &name]);
            if ok {
                self.fail(&format!(
                    "{name} started although {} holds what it asked for",
                    h.name
                ));
            }
            return self.expect_named(&err, &h.id, &h.name, h.node);
        }
        if ownerless {
            let _ = dockerd(node, &["rm", "-f", &name]);
            if ok || !err.contains("no owner") {
                self.fail(&format!(
                    "the volume has no owner: expected a refusal saying so: ok={ok}, {err}"
                ));
            }
            return;
        }
        if !ok {
            let _ = dockerd(node, &["rm", "-f", &name]);
            return self.unexpected_error(&format!("docker run {name} on node{node}"), &err);
        }
        if let Some(v) = &volume {
            let v = self.model.volumes.entry(v.clone()).or_default();
            if v.owner != Some(node) {
                v.owner = Some(node);
                v.changed = true;
            }
        }
        self.model.containers.push(Container {
            name,
            id: stdout(&out).trim().to_owned(),
            node,
            address: last,
            volume,
            writer,
            restart,
            running: true,
        });
    }

    /// `docker run --rm` with an address on a random node, pinging a long-lived
    /// container's address when one runs; refused, naming the holder, when a running
    /// container holds the address.
    pub(super) fn run_short(&mut self) {
        let node = self.rng.node();
        let name = format!("ws{}", self.model.next());
        let last = self.rng.address();
        let targets: Vec<(String, u8)> = self
            .model
            .running()
            .filter_map(|c| Some((c.name.clone(), c.address?)))
            .filter(|(_, a)| *a != last)
            .collect();
        let target = (!targets.is_empty()).then(|| targets[self.rng.below(targets.len())].clone());
        self.say(format!(
            "run --rm {name} on node{node} with {}, pinging {target:?}",
            address(last)
        ));
        let cidfile = std::env::temp_dir().join(format!("walk-{}-{name}.cid", std::process::id()));
        let cid = cidfile.to_str().unwrap().to_owned();
        let env = format!("WEAVE_CIDR={}/16", address(last));
        let ping = target.as_ref().map(|(_, a)| address(*a));
        let mut args = vec![
            "run",
            "--rm",
            "--name",
            &name,
            "--cidfile",
            &cid,
            "-e",
            &env,
            "busybox",
        ];
        match &ping {
            Some(a) => args.extend(["ping", "-c", "1", "-W", "5", a]),
            None => args.push("true"),
        }
        let out = docker(node, &args);
        let id = std::fs::read_to_string(&cidfile).unwrap_or_default();
        let _ = std::fs::remove_file(&cidfile);
        if !id.is_empty() {
            self.model.gone.insert(id.trim().to_owned(), name.clone());
        }
        // 125-127: docker itself failed; another code is the command's own (a lost ping).
        let ran = !matches!(out.status.code(), Some(125..=127) | None);
        let (ok, err) = (out.status.success(), stderr(&out));
        if let Some(h) = self.model.address_holder(last).cloned() {
            let _ = dockerd(node, &["rm", "-f", &name]);
            if ok {
                self.fail(&format!(
                    "{name} ran with {} while {} holds it",
                    address(last),
                    h.name
                ));
            }
            return self.expect_named(&err, &h.id, &h.name, h.node);
        }
        if !ran {
            let _ = dockerd(node, &["rm", "-f", &name]);
            return self.unexpected_error(&format!("docker run --rm {name} on node{node}"), &err);
        }
        match target {
            Some((target, a)) if !stdout(&out).contains("1 packets received") => {
                let holder = super::host::ctl(&["ip", "ls"]);
                self.fail(&format!(
                    "{name} on node{node} got no answer from {target} at {}: {}{err}; ip ls: {}",
                    address(a),
                    stdout(&out),
                    stdout(&holder)
                ));
            }
            None if !ok => self.fail(&format!(
                "{name} on node{node} exited with {:?}: {err}",
                out.status
            )),
            _ => {}
        }
    }

    /// Stops or removes a running container (one with a restart policy is only ever
    /// removed), or starts a stopped one without a volume again, or removes it.
    pub(super) fn stop_rm_or_start(&mut self) {
        if self.model.containers.is_empty() {
            return self.run_long();
        }
        let i = self.rng.below(self.model.containers.len());
        let c = self.model.containers[i].clone();
        let verb = match (c.running, c.restart, c.volume.is_some()) {
            (true, false, _) if self.rng.chance(50) => "stop",
            (true, ..) => "rm",
            (false, _, false) if self.rng.chance(50) => "start",
            (false, ..) => "rm",
        };
        self.say(format!("{verb} {} on node{}", c.name, c.node));
        if c.running && c.writer {
            self.docker_ok(c.node, &["stop", "-t", "5", &c.name]);
            let n = acked(c.node, &c.name);
            let v = self
                .model
                .volumes
                .entry(c.volume.clone().unwrap())
                .or_default();
            v.acked.insert(c.name.clone(), n);
        }
        match verb {
            "stop" => {
                self.docker_ok(c.node, &["stop", "-t", "5", &c.name]);
                self.model.containers[i].running = false;
            }
            "rm" => {
                self.docker_ok(c.node, &["rm", "-f", &c.name]);
                self.model.containers.remove(i);
            }
            _ => self.start_again(i),
        }
    }

    /// `docker start` of a stopped container: it claims its address again, refused
    /// (naming the holder) when another running container took it meanwhile.
    fn start_again(&mut self, i: usize) {
        let c = self.model.containers[i].clone();
        let out = docker(c.node, &["start", &c.name]);
        let (ok, err) = (out.status.success(), stderr(&out));
        if let Some(h) = c
            .address
            .and_then(|a| self.model.address_holder(a))
            .cloned()
        {
            if ok {
                self.fail(&format!(
                    "{} started while {} holds its address",
                    c.name, h.name
                ));
            }
            return self.expect_named(&err, &h.id, &h.name, h.node);
        }
        if !ok {
            return self.unexpected_error(&format!("docker start {}", c.name), &err);
        }
        self.model.containers[i].running = true;
    }

    /// `docker ARGS` through node's agent, which must succeed: a step's own housekeeping.
    fn docker_ok(&mut self, node: u32, args: &[&str]) {
        let out = docker(node, args);
        if !out.status.success() {
            self.unexpected_error(&format!("docker {args:?} on node{node}"), &stderr(&out));
        }
    }
}
