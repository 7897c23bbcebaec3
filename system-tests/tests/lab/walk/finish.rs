//! The end of a walk: every volume's data read back on its owner against the model, then
//! everything the walk made removed, so that the next walk starts from an empty lab.

use std::time::Duration;

use super::Walk;
use super::host::docker;
use super::model::{NODES, VOLUMES};
use crate::{run, stderr, stdout};
use testkit::wait_until;

/// Prints the log, a `--` line and the line count of every writer's file.
pub(super) const READ: &str = "cat /data/log 2>/dev/null; echo --; \
                    for f in /data/wc*; do [ -e \"$f\" ] && echo \"$f $(wc -l < \"$f\")\"; done; true";

impl Walk {
    /// Reads every volume on its owner, removes every container and volume of the walk,
    /// and checks the invariants over the emptied lab.
    pub(super) fn finish(&mut self) {
        let volumes = self.model.volumes.clone();
        for (name, v) in &volumes {
            let Some(owner) = v.owner else { continue };
            self.say(format!("read {name} on its owner node{owner}"));
            let bind = format!("/flocker/{name}:/data");
            let out = docker(
                owner,
                &["run", "--rm", "-v", &bind, "busybox", "sh", "-c", READ],
            );
            if !out.status.success() {
                self.unexpected_error(&format!("reading {name} on node{owner}"), &stderr(&out));
                continue;
            }
            self.check_log(name, v, &stdout(&out));
        }
        self.say("remove every container and volume of the walk".into());
        for c in std::mem::take(&mut self.model.containers) {
            let out = docker(c.node, &["rm", "-f", &c.name]);
            if !out.status.success() {
                self.fail(&format!(
                    "docker rm -f {} on node{}: {}",
                    c.name,
                    c.node,
                    stderr(&out)
                ));
            }
        }
        for name in volumes.keys() {
            let out = super::host::ctl(&["volume", "rm", name]);
            if out.status.success() {
                self.model.volumes.remove(name);
            } else {
                self.unexpected_error(&format!("volume rm {name} at the end"), &stderr(&out));
            }
        }
        self.check();
        // With `LAB_WALK_KNOWN_BUGS=report` a removed volume's datasets may be left: they
        // go, so that the next walk's volumes of the same names start empty.
        // Copies set aside by promotions (`V:diverged-eN`) are the operator's to destroy:
        // the walk is that operator, so that the next walk's promotions start afresh.
        for k in NODES {
            let pool = format!("lab{k}");
            let listing = stdout(&run("zfs", &["list", "-H", "-o", "name", "-r", &pool]));
            let set_aside = listing.lines().filter(|d| {
                d.strip_prefix(&format!("{pool}/"))
                    .is_some_and(super::retention::is_set_aside)
            });
            for dataset in set_aside {
                let out = run("zfs", &["destroy", "-r", dataset]);
                assert!(
                    out.status.success(),
                    "zfs destroy {dataset}: {}",
                    stderr(&out)
                );
            }
            for name in VOLUMES {
                let dataset = format!("lab{k}/{name}");
                if run("zfs", &["list", "-H", &dataset]).status.success() {
                    wait_until(
                        Duration::from_secs(20),
                        &format!("zfs destroy {dataset}"),
                        || {
                            let _ = run("zfs", &["unmount", "-f", &dataset]);
                            run("zfs", &["destroy", "-r", &dataset]).status.success()
                        },
                    );
                }
            }
        }
    }
}
