//! Fault steps: SIGKILL and restart of an agent, of a control member (the leader half the
//! time, with one ordinary step taken while it is down) and of a dockerd.

use std::time::Duration;

use super::Walk;
use super::host::{self, acked, wait_until_whole};
use super::model::NODES;
use crate::lab;
use testkit::wait_until;

/// The steps that may be taken while a control member is down.
const WHILE_DOWN: [&str; 6] = [
    "write",
    "move",
    "run",
    "run --rm",
    "stop/rm/start",
    "volume create",
];

impl Walk {
    /// `demos/lab kill agent K` (SIGKILL), then `start agent K`; the node's containers keep
    /// running, and the agent takes up their leases and addresses again.
    pub(super) fn kill_agent(&mut self) {
        let k = self.rng.node();
        self.say(format!("kill -9 and restart node{k}'s agent"));
        lab(&["kill", "agent", &k.to_string()]);
        lab(&["start", "agent", &k.to_string()]);
        wait_until_whole();
        self.deep = true;
    }

    /// `demos/lab kill member K` (the leader half the time), one ordinary step while it is
    /// down (through a member that runs), then `start member K`.
    pub(super) fn kill_member(&mut self) {
        let leader = host::leader() as u32;
        let k = if self.rng.chance(50) {
            leader
        } else {
            self.rng.node()
        };
        let kind = self.rng.pick(&WHILE_DOWN);
        let role = if k == leader {
            "the leader"
        } else {
            "a follower"
        };
        self.say(format!("kill -9 member {k} ({role}), {kind}, restart it"));
        let doing = self.doing.clone();
        lab(&["kill", "member", &k.to_string()]);
        host::set_via(*NODES.iter().find(|m| **m != k).unwrap());
        wait_until(
            Duration::from_secs(30),
            "a leader among the other members",
            || host::leader_or_none().is_some_and(|l| l != u64::from(k)),
        );
        self.take(kind, false);
        let inner = self.doing.clone();
        lab(&["start", "member", &k.to_string()]);
        host::set_via(1);
        wait_until_whole();
        self.say(format!("{doing}: {inner}"));
    }

    /// `demos/lab kill dockerd K` (SIGKILL), then `start dockerd K`: the node's containers
    /// stop, and those with `--restart always` start again.
    pub(super) fn restart_dockerd(&mut self) {
        let k = self.rng.node();
        self.say(format!("kill -9 and restart node{k}'s dockerd"));
        lab(&["kill", "dockerd", &k.to_string()]);
        lab(&["start", "dockerd", &k.to_string()]);
        self.dockerd_restarted(k, None);
        wait_until_whole();
        self.deep = true;
    }

    /// The model after node k's dockerd was killed and started again: its containers stopped
    /// but those with `--restart always`, and each writer that stopped acknowledged what its
    /// log says. Containers holding `lost` (a volume promoted elsewhere meanwhile) stop
    /// whatever their policy (k's agent kills them), their acknowledged lines not counted.
    pub(super) fn dockerd_restarted(&mut self, k: u32, lost: Option<&str>) {
        let on_k: Vec<usize> = (0..self.model.containers.len())
            .filter(|i| self.model.containers[*i].node == k)
            .collect();
        for i in on_k {
            let c = self.model.containers[i].clone();
            let holds_lost = lost.is_some() && c.volume.as_deref() == lost;
            if c.running && c.writer && !c.restart && !holds_lost {
                let n = acked(k, &c.name);
                let v = self
                    .model
                    .volumes
                    .get_mut(c.volume.as_ref().unwrap())
                    .unwrap();
                v.acked.insert(c.name.clone(), n);
            }
            self.model.containers[i].running = c.restart && !holds_lost;
        }
    }
}
