//! The host firewall's part in the overlay.
//!
//! Frames between containers' veths and the VXLAN device cross the `weave` bridge. With
//! `br_netfilter` loaded (dockerd loads it), bridged IPv4 also goes through the iptables
//! `FORWARD` chain of the host's namespace, whose policy dockerd sets to `DROP`. ARP is not
//! IPv4 and still passes, so the symptom is "the address resolves, pings time out". As Weave
//! did, one rule accepts whatever enters and leaves the bridge; it is added once, before
//! Docker's own rules, and left in place (it matches only the overlay's bridge).

use std::io::ErrorKind;
use std::process::Command;

use super::NetError;

/// Makes sure `iptables -C FORWARD -i BRIDGE -o BRIDGE -j ACCEPT` holds in the calling
/// thread's network namespace. Blocking (runs `iptables`). A host without `iptables` has no
/// iptables rules to pass, so that is not an error.
pub fn accept_bridged(bridge: &str) -> Result<(), NetError> {
    let rule = ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"];
    match iptables("-C", &rule) {
        Ok(0) => return Ok(()),
        // 1: the rule is not there (anything else is a real failure).
        Ok(1) => {}
        Ok(code) => return Err(failed(bridge, format!("iptables -C exited with {code}"))),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            tracing::debug!("no iptables on this host: bridged traffic is not filtered by it");
            return Ok(());
        }
        Err(e) => return Err(failed(bridge, e)),
    }
    match iptables("-I", &rule) {
        Ok(0) => {
            tracing::info!(
                bridge,
                "iptables: FORWARD accepts traffic within the bridge"
            );
            Ok(())
        }
        Ok(code) => Err(failed(bridge, format!("iptables -I exited with {code}"))),
        Err(e) => Err(failed(bridge, e)),
    }
}

/// Runs `iptables -w 5 OP RULE...`, waiting up to 5 s for the xtables lock (dockerd holds
/// it while it writes its rules), and returns the exit code.
fn iptables(op: &str, rule: &[&str]) -> std::io::Result<i32> {
    let out = Command::new("iptables")
        .args(["-w", "5", op])
        .args(rule)
        .output()?;
    if !out.status.success() && out.status.code() != Some(1) {
        tracing::warn!(
            stderr = %String::from_utf8_lossy(&out.stderr).trim(),
            "iptables {op} failed"
        );
    }
    Ok(out.status.code().unwrap_or(-1))
}

fn failed(bridge: &str, detail: impl ToString) -> NetError {
    NetError::Firewall {
        bridge: bridge.to_owned(),
        detail: detail.to_string(),
    }
}
