//! `flockerctl volume ls|create|set|promote|snapshot|snapshots|clone|backup|restore|inspect|move|rm`
//! (`move` lives in [`super::move_cmd`], `backup` and `restore` in [`super::backup`]).

use std::collections::BTreeMap;

use clap::Subcommand;
use proto::control as pb;
use proto::control::node_api_client::NodeApiClient;
use proto::control::operator_api_client::OperatorApiClient;
use serde_json::{Value, json};
use tonic::transport::Channel;

use control::convert::{age_word, lease_holder, phase_word, replica_word, replication_word};

use super::output::{self, human, opt};
use super::{Ctx, Format, call_failed};

/// Bytes used by volume name, as their owners' agents reported them just now.
type Usage = BTreeMap<String, u64>;

/// The leases held on each volume, by volume name.
type Holders = BTreeMap<String, Vec<pb::Lease>>;

/// Volume verbs.
#[derive(Subcommand, Debug)]
pub enum Verb {
    /// List volumes.
    Ls,
    /// Create a volume.
    Create {
        /// Volume name: a-z, 0-9, '_', '.', '-', up to 63 characters.
        name: String,
        /// Size limit, e.g. 10G, 512M or bytes.
        #[arg(long, value_parser = parse_size)]
        size: Option<u64>,
        /// The node that owns it first.
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        replication: ReplicationArgs,
    },
    /// Change a volume's replication policy.
    Set {
        /// Volume name.
        name: String,
        #[command(flatten)]
        replication: ReplicationArgs,
        /// Stop keeping copies fresh (the copies stay, as stale replicas).
        #[arg(long, conflicts_with_all = ["replicas", "max_lag"])]
        no_replication: bool,
        /// Take a snapshot on the owner this often, e.g. 1h, 15m (at least 1s); the leader
        /// deletes the oldest scheduled ones past --keep (never those taken by hand).
        #[arg(long, value_parser = humantime::parse_duration, requires = "keep")]
        snapshot_every: Option<std::time::Duration>,
        /// How many scheduled snapshots to keep (1 to 1000).
        #[arg(long, requires = "snapshot_every")]
        keep: Option<u32>,
        /// Take no more scheduled snapshots (those taken stay until deleted).
        #[arg(long, conflicts_with = "snapshot_every")]
        no_snapshot_schedule: bool,
    },
    /// Make a replica the owner while the owner is down (its data is the replica's
    /// snapshot: `volume ls` shows its age). The old owner, when back, never mounts the
    /// volume read-write again: its copy is set aside and it becomes a replica.
    Promote {
        /// Volume name.
        name: String,
        /// The replica's node.
        #[arg(long)]
        on: String,
        /// Promote even though the owner is up: what it wrote since the replica's snapshot
        /// is not in the volume (its copy is set aside, not destroyed).
        #[arg(long)]
        force: bool,
    },
    /// Take a snapshot on the volume's owner (kept on every copy, moves included, until
    /// deleted), or with --delete destroy one.
    Snapshot {
        /// Volume name.
        name: String,
        /// Name the snapshot (a-z, 0-9, '_', '.', '-', up to 61 characters); without it the
        /// snapshot is named by the time it was taken.
        #[arg(long)]
        label: Option<String>,
        /// Destroy this snapshot (its name or label) on every copy instead.
        #[arg(long, value_name = "SNAP", conflicts_with = "label")]
        delete: Option<String>,
    },
    /// List a volume's snapshots (those `volume snapshot` took).
    Snapshots {
        /// Volume name.
        name: String,
    },
    /// Make a new volume on the owner from one of a volume's snapshots (a ZFS clone, a copy
    /// on the directory backend); the snapshot cannot be deleted while the clone exists.
    Clone {
        /// The volume and its snapshot (name or label), as NAME@SNAP.
        #[arg(value_parser = parse_at)]
        source: (String, String),
        /// The new volume's name.
        new: String,
    },
    /// Write a backup of a volume into a directory on this machine: a new snapshot streamed
    /// from its owner, in full, or with --incremental since the directory's newest backup.
    Backup {
        /// Volume name.
        name: String,
        /// The directory (created if missing); it holds one volume's chain.
        #[arg(long)]
        to: std::path::PathBuf,
        /// Only what changed since the newest backup in the directory.
        #[arg(long)]
        incremental: bool,
    },
    /// Make a volume from the chain of backups in a directory (checksums checked first);
    /// refused if the volume exists.
    Restore {
        /// The new volume's name.
        name: String,
        /// The backup directory.
        #[arg(long)]
        from: std::path::PathBuf,
        /// The node that gets it; by default the control service chooses one that is up
        /// with the backup's kind of storage.
        #[arg(long)]
        on: Option<String>,
    },
    /// Show one volume.
    Inspect {
        /// Volume name.
        name: String,
    },
    /// Move a volume to another node (copy while in use, then a short handoff).
    Move {
        /// Volume name.
        name: String,
        /// Destination node.
        #[arg(long)]
        to: String,
        /// Stop the containers holding the volume (SIGTERM, SIGKILL after 10 s) instead of
        /// waiting for them; they are not restarted on the target.
        #[arg(long)]
        stop: bool,
    },
    /// Delete a volume no container holds.
    Rm {
        /// Volume name.
        name: String,
    },
}

/// `--replicas N [--max-lag D]`: the leader keeps N read-only copies on other nodes, each at
/// most D behind the owner's writes.
#[derive(clap::Args, Debug)]
pub struct ReplicationArgs {
    /// Read-only copies to keep on other nodes (1 to 8), refreshed by the leader.
    #[arg(long)]
    replicas: Option<u32>,
    /// How far behind the owner's writes a copy may fall, e.g. 10s, 1m (at least 1s).
    #[arg(long, value_parser = humantime::parse_duration, requires = "replicas")]
    max_lag: Option<std::time::Duration>,
    /// Promote the freshest replica on its own once the owner has been down this long,
    /// e.g. 30s (at least 1s); without it only `volume promote` does.
    #[arg(long, value_parser = humantime::parse_duration, requires = "replicas")]
    promote_after: Option<std::time::Duration>,
}

/// The lag a policy gets when `--max-lag` is not given.
const DEFAULT_MAX_LAG: std::time::Duration = std::time::Duration::from_secs(10);

impl ReplicationArgs {
    /// The policy asked for, `None` without `--replicas`.
    fn policy(&self) -> Option<pb::Replication> {
        self.replicas.map(|copies| pb::Replication {
            copies,
            max_lag_ms: self.max_lag.unwrap_or(DEFAULT_MAX_LAG).as_millis() as u64,
            promote_after_ms: self.promote_after.map(|d| d.as_millis() as u64),
        })
    }
}

/// Parses `NAME@SNAP`.
fn parse_at(s: &str) -> Result<(String, String), String> {
    match s.split_once('@') {
        Some((name, snap)) if !name.is_empty() && !snap.is_empty() => {
            Ok((name.to_owned(), snap.to_owned()))
        }
        _ => Err(format!(
            "{s:?}: name the volume and its snapshot as NAME@SNAP (list them with `flockerctl volume snapshots NAME`)"
        )),
    }
}

/// Parses `10G`, `512M`, `4K` or a plain number of bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, unit) = s.trim().split_at(
        s.trim()
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(s.trim().len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a size like 10G, 512M or 1048576"))?;
    let mult: u64 = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use K, M, G or T")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// What the owners' agents say the volumes use; empty (every volume `-`) if the member
/// cannot tell, so a listing never fails for want of usage.
async fn usage(channel: Channel) -> Usage {
    match OperatorApiClient::new(channel)
        .volume_usage(pb::Empty {})
        .await
    {
        Ok(list) => list
            .into_inner()
            .volumes
            .into_iter()
            .map(|u| (u.volume, u.used_bytes))
            .collect(),
        Err(_) => Usage::new(),
    }
}

/// Every lease, by volume.
async fn holders(c: &mut NodeApiClient<Channel>) -> Result<Holders, tonic::Status> {
    let leases = c.list_leases(pb::Empty {}).await?.into_inner().leases;
    let mut by_volume = Holders::new();
    for lease in leases {
        by_volume
            .entry(lease.volume.clone())
            .or_default()
            .push(lease);
    }
    Ok(by_volume)
}

/// The `HELD BY` cell: each holder, `-` when none.
fn held_by(leases: &[pb::Lease]) -> String {
    if leases.is_empty() {
        return "-".to_owned();
    }
    leases
        .iter()
        .map(lease_holder)
        .collect::<Vec<_>>()
        .join(",")
}

/// A move's outcome, as printed: `done`, `failed: ERROR`, or the phase under way.
fn move_result(m: &pb::Migration) -> String {
    match (m.phase(), &m.error) {
        (pb::MovePhase::Failed, Some(error)) => format!("failed: {error}"),
        (phase, _) => phase_word(phase).to_owned(),
    }
}

/// Milliseconds since the Unix epoch as a UTC time, `-` when unknown.
fn utc(ms: Option<u64>) -> String {
    opt(ms.map(|ms| {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        humantime::format_rfc3339_seconds(at)
    }))
}

/// Milliseconds as a duration (`1s 250ms`), `-` when unknown.
fn duration(ms: Option<u64>) -> String {
    opt(ms.map(|ms| humantime::format_duration(std::time::Duration::from_millis(ms))))
}

/// A promotion, for people: who, when, and what the volume's data is as of.
fn promotion_text(p: &pb::Promotion) -> String {
    let how = match (p.automatic, p.forced) {
        (true, _) => "automatically",
        (false, true) => "by force",
        (false, false) => "by an operator",
    };
    let lost = match p.taken_ms {
        Some(t) => format!(
            "its data is as of {} ({} before the promotion): what {} wrote after that is not in it",
            utc(Some(t)),
            age_word(p.at_ms.saturating_sub(t)),
            p.from
        ),
        None => format!(
            "the age of its data is unknown; what {} wrote after it is not in it",
            p.from
        ),
    };
    format!(
        "{} promoted {how} at {} (epoch {}), {} being down: {lost}; {}'s copy is set aside when it is back",
        p.to,
        utc(Some(p.at_ms)),
        p.epoch,
        p.from,
        p.from
    )
}

/// Now, milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One row of the MOVES table.
fn move_row(m: &pb::Migration) -> Vec<String> {
    // A volume's first owner is given by a move from nowhere.
    let from = if m.from == m.to { "-" } else { &m.from };
    vec![
        format!("  {}", m.id),
        format!("{from} -> {}", m.to),
        utc(m.started_ms),
        m.rounds.to_string(),
        human(m.bytes_sent),
        duration(m.downtime_ms),
        move_result(m),
    ]
}

fn lease_json(l: &pb::Lease) -> Value {
    json!({
        "node": l.node, "container_id": l.container_id, "container_name": l.container_name,
        "service": l.service, "task": l.task,
    })
}

fn move_json(m: &pb::Migration) -> Value {
    json!({
        "id": m.id, "from": m.from, "to": m.to, "phase": phase_word(m.phase()),
        "result": move_result(m), "error": m.error, "rounds": m.rounds, "bytes_sent": m.bytes_sent,
        "started_ms": m.started_ms, "handoff_ms": m.handoff_ms, "ended_ms": m.ended_ms,
        "downtime_ms": m.downtime_ms,
    })
}

fn to_json(v: &pb::Volume, usage: &Usage, holders: &Holders) -> Value {
    let leases = holders.get(&v.name).map_or(&[][..], Vec::as_slice);
    json!({
        "name": v.name, "id": v.id, "size_limit": v.size_limit, "owner": v.owner,
        "epoch": v.epoch, "state": output::volume_state(v), "created_ms": v.created_ms, "metadata": v.metadata,
        "used_bytes": usage.get(&v.name),
        "replicas": v.replicas.iter().map(|r| json!({"node": r.node, "snapshot": r.snapshot, "taken_ms": r.taken_ms, "diverged": r.diverged})).collect::<Vec<_>>(),
        "replication": v.replication.map(|r| json!({"copies": r.copies, "max_lag_ms": r.max_lag_ms, "promote_after_ms": r.promote_after_ms})),
        "promotions": v.promotions.iter().map(|p| json!({
            "at_ms": p.at_ms, "from": p.from, "to": p.to, "epoch": p.epoch, "snapshot": p.snapshot,
            "taken_ms": p.taken_ms, "forced": p.forced, "automatic": p.automatic,
        })).collect::<Vec<_>>(),
        "held_by": leases.iter().map(lease_json).collect::<Vec<_>>(),
        "snapshots": v.snapshots.iter().map(snapshot_json).collect::<Vec<_>>(),
        "origin": v.origin.as_ref().map(|o| json!({"volume": o.volume, "snapshot": o.snapshot})),
        "snapshot_schedule": v.snapshot_schedule.map(|s| json!({"every_ms": s.every_ms, "keep": s.keep})),
    })
}

fn snapshot_json(s: &pb::UserSnapshot) -> Value {
    json!({
        "name": s.name, "label": s.label, "taken_ms": s.taken_ms, "epoch": s.epoch, "node": s.node,
        "scheduled": s.scheduled,
    })
}

/// The rows of a volume's snapshots table: name, label, when, epoch and owner then.
fn snapshot_rows(snapshots: &[pb::UserSnapshot], indent: &str) -> Vec<Vec<String>> {
    snapshots
        .iter()
        .map(|s| {
            vec![
                format!("{indent}{}", s.name),
                if s.scheduled {
                    "(scheduled)".to_owned()
                } else {
                    opt(s.label.clone())
                },
                utc(Some(s.taken_ms)),
                s.epoch.to_string(),
                s.node.clone(),
            ]
        })
        .collect()
}

const SNAPSHOT_HEADERS: [&str; 5] = ["NAME", "LABEL", "TAKEN", "EPOCH", "NODE"];

/// One volume in detail, for people (`volume inspect` without `-o json`).
fn describe(v: &pb::Volume, usage: &Usage, holders: &Holders) {
    let leases = holders.get(&v.name).map_or(&[][..], Vec::as_slice);
    let created = std::time::UNIX_EPOCH + std::time::Duration::from_millis(v.created_ms);
    let owner = match &v.owner {
        Some(owner) => format!("{owner} (epoch {})", v.epoch),
        None => "- (none yet: `flockerctl volume move NAME --to NODE` gives it one)".to_owned(),
    };
    output::fields(&[
        ("Name", v.name.clone()),
        ("ID", v.id.to_string()),
        ("Owner", owner),
        ("State", output::volume_state(v)),
        ("Held by", held_by(leases)),
        ("Used", opt(usage.get(&v.name).copied().map(human))),
        ("Size limit", opt(v.size_limit.map(human))),
        ("Replication", replication_word(v.replication.as_ref())),
        (
            "Snapshots every",
            opt(v.snapshot_schedule.map(|s| {
                format!(
                    "{}, keeping {}",
                    humantime::format_duration(std::time::Duration::from_millis(s.every_ms)),
                    s.keep
                )
            })),
        ),
        (
            "Clone of",
            opt(v
                .origin
                .as_ref()
                .map(|o| format!("{}@{}", o.volume, o.snapshot))),
        ),
        (
            "Created",
            humantime::format_rfc3339_seconds(created).to_string(),
        ),
    ]);
    println!("Replicas:");
    if v.replicas.is_empty() {
        println!("  (none)");
    } else {
        let now = now_ms();
        let rows: Vec<Vec<String>> = v
            .replicas
            .iter()
            .map(|r| {
                let age = r.taken_ms.map(|t| age_word(now.saturating_sub(t)));
                vec![
                    format!("  {}", r.node),
                    r.snapshot.clone(),
                    utc(r.taken_ms),
                    opt(age),
                ]
            })
            .collect();
        output::table(&["  NODE", "SNAPSHOT", "TAKEN", "AGE"], &rows);
    }
    println!("Snapshots:");
    if v.snapshots.is_empty() {
        println!("  (none)");
    } else {
        let mut headers = SNAPSHOT_HEADERS;
        headers[0] = "  NAME";
        output::table(&headers, &snapshot_rows(&v.snapshots, "  "));
    }
    if !v.promotions.is_empty() {
        println!("Promotions:");
        for p in &v.promotions {
            println!("  {}", promotion_text(p));
        }
    }
    if !v.metadata.is_empty() {
        println!("Metadata:");
        for (key, value) in &v.metadata {
            println!("  {key}={value}");
        }
    }
    println!("Moves:");
    if v.moves.is_empty() {
        println!("  (none)");
    } else {
        let rows: Vec<Vec<String>> = v.moves.iter().map(move_row).collect();
        let headers = [
            "  ID",
            "FROM -> TO",
            "STARTED",
            "ROUNDS",
            "BYTES",
            "DOWNTIME",
            "RESULT",
        ];
        output::table(&headers, &rows);
    }
}

fn print(vols: &[pb::Volume], usage: &Usage, holders: &Holders, format: Format) {
    match format {
        Format::Json => output::json(&Value::Array(
            vols.iter().map(|v| to_json(v, usage, holders)).collect(),
        )),
        Format::Table => {
            let now = now_ms();
            let rows: Vec<Vec<String>> = vols
                .iter()
                .map(|v| {
                    vec![
                        v.name.clone(),
                        v.id.to_string(),
                        opt(v.owner.clone()),
                        v.epoch.to_string(),
                        output::volume_state(v),
                        opt(usage.get(&v.name).copied().map(human)),
                        opt(v.size_limit.map(human)),
                        v.replicas
                            .iter()
                            .map(|r| replica_word(r, now))
                            .collect::<Vec<_>>()
                            .join(","),
                        held_by(holders.get(&v.name).map_or(&[], Vec::as_slice)),
                    ]
                })
                .collect();
            output::table(
                &[
                    "NAME",
                    "ID",
                    "OWNER",
                    "EPOCH",
                    "STATE",
                    "USED",
                    "SIZE LIMIT",
                    "REPLICAS",
                    "HELD BY",
                ],
                &rows,
            );
        }
    }
}

/// Runs a volume verb.
pub async fn run(verb: Verb, ctx: &Ctx) -> anyhow::Result<()> {
    let verb = match verb {
        Verb::Move { name, to, stop } => return super::move_cmd::run(ctx, name, to, stop).await,
        Verb::Backup {
            name,
            to,
            incremental,
        } => return super::backup::backup(ctx, name, to, incremental).await,
        Verb::Restore { name, from, on } => {
            return super::backup::restore(ctx, name, from, on).await;
        }
        other => other,
    };
    let channel: Channel = ctx.client().await?;
    let mut c = NodeApiClient::new(channel.clone());
    match verb {
        Verb::Ls => {
            let vols = c
                .list_volumes(pb::Empty {})
                .await
                .map_err(call_failed)?
                .into_inner()
                .volumes;
            let holders = holders(&mut c).await.map_err(call_failed)?;
            let usage = usage(channel).await;
            print(&vols, &usage, &holders, ctx.format);
        }
        Verb::Create {
            name,
            size,
            owner,
            replication,
        } => {
            let req = pb::CreateVolumeRequest {
                name,
                size_limit: size,
                owner,
                metadata: Default::default(),
                replication: replication.policy(),
            };
            let v = c
                .create_volume(req)
                .await
                .map_err(call_failed)?
                .into_inner();
            print(&[v], &Usage::new(), &Holders::new(), ctx.format);
        }
        Verb::Set {
            name,
            replication,
            no_replication,
            snapshot_every,
            keep,
            no_snapshot_schedule,
        } => {
            let policy = replication.policy();
            let schedule = snapshot_every
                .zip(keep)
                .map(|(every, keep)| pb::SnapshotSchedule {
                    every_ms: every.as_millis() as u64,
                    keep,
                });
            let replication_set = policy.is_some() || no_replication;
            let schedule_set = schedule.is_some() || no_snapshot_schedule;
            if !replication_set && !schedule_set {
                anyhow::bail!(
                    "say what to set: --replicas N [--max-lag D] or --no-replication, \
                     --snapshot-every D --keep N or --no-snapshot-schedule"
                );
            }
            let mut operator = OperatorApiClient::new(channel);
            let mut v = None;
            if replication_set {
                let req = pb::SetReplicationRequest {
                    name: name.clone(),
                    replication: policy,
                };
                v = Some(operator.set_replication(req).await.map_err(call_failed)?);
            }
            if schedule_set {
                let req = pb::SetSnapshotScheduleRequest { name, schedule };
                v = Some(
                    operator
                        .set_snapshot_schedule(req)
                        .await
                        .map_err(call_failed)?,
                );
            }
            let v = v.expect("one of them was set").into_inner();
            print(&[v], &Usage::new(), &Holders::new(), ctx.format);
        }
        Verb::Promote { name, on, force } => {
            let req = pb::PromoteVolumeRequest {
                name,
                node: on,
                force,
            };
            let v = OperatorApiClient::new(channel)
                .promote_volume(req)
                .await
                .map_err(call_failed)?
                .into_inner();
            match (ctx.format, v.promotions.last()) {
                (Format::Table, Some(p)) => println!("{}", promotion_text(p)),
                _ => print(&[v], &Usage::new(), &Holders::new(), ctx.format),
            }
        }
        Verb::Snapshot {
            name,
            label,
            delete: None,
        } => {
            let s = OperatorApiClient::new(channel)
                .snapshot_volume(pb::SnapshotVolumeRequest { name, label })
                .await
                .map_err(call_failed)?
                .into_inner();
            match ctx.format {
                Format::Json => output::json(&snapshot_json(&s)),
                Format::Table => println!(
                    "snapshot {} taken on {} at {} (epoch {})",
                    s.name,
                    s.node,
                    utc(Some(s.taken_ms)),
                    s.epoch
                ),
            }
        }
        Verb::Snapshot {
            name,
            delete: Some(snapshot),
            ..
        } => {
            let req = pb::DeleteSnapshotRequest {
                name: name.clone(),
                snapshot: snapshot.clone(),
            };
            let v = OperatorApiClient::new(channel)
                .delete_snapshot(req)
                .await
                .map_err(call_failed)?
                .into_inner();
            match ctx.format {
                Format::Json => output::json(&to_json(&v, &Usage::new(), &Holders::new())),
                Format::Table => println!("deleted snapshot {snapshot} of volume {name}"),
            }
        }
        Verb::Clone {
            source: (name, snapshot),
            new,
        } => {
            let req = pb::CloneVolumeRequest {
                name,
                snapshot,
                clone: new,
            };
            let v = OperatorApiClient::new(channel)
                .clone_volume(req)
                .await
                .map_err(call_failed)?
                .into_inner();
            print(&[v], &Usage::new(), &Holders::new(), ctx.format);
        }
        Verb::Snapshots { name } => {
            let v = c
                .get_volume(pb::VolumeName { name })
                .await
                .map_err(call_failed)?
                .into_inner();
            match ctx.format {
                Format::Json => output::json(&Value::Array(
                    v.snapshots.iter().map(snapshot_json).collect(),
                )),
                Format::Table => output::table(&SNAPSHOT_HEADERS, &snapshot_rows(&v.snapshots, "")),
            }
        }
        Verb::Inspect { name } => {
            let v = c
                .get_volume(pb::VolumeName { name })
                .await
                .map_err(call_failed)?
                .into_inner();
            let holders = holders(&mut c).await.map_err(call_failed)?;
            let usage = usage(channel).await;
            match ctx.format {
                Format::Json => {
                    let mut json = to_json(&v, &usage, &holders);
                    json["moves"] = v.moves.iter().map(move_json).collect();
                    output::json(&json);
                }
                Format::Table => describe(&v, &usage, &holders),
            }
        }
        Verb::Move { .. } | Verb::Backup { .. } | Verb::Restore { .. } => {
            unreachable!("handled above")
        }
        Verb::Rm { name } => {
            let v = c
                .delete_volume(pb::VolumeName { name })
                .await
                .map_err(call_failed)?
                .into_inner();
            match ctx.format {
                Format::Json => output::json(&to_json(&v, &Usage::new(), &Holders::new())),
                Format::Table => println!("deleted volume {}", v.name),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_named_by_task_else_container_name_else_short_id() {
        let lease = |id: &str, name: Option<&str>, task: Option<&str>| pb::Lease {
            volume: "db".into(),
            node: "host-a".into(),
            container_id: id.into(),
            container_name: name.map(Into::into),
            service: task.map(|_| "db".into()),
            task: task.map(Into::into),
        };
        let leases = [
            lease("c1", Some("db.1.k2j3"), Some("db.1.k2j3")),
            lease("c2", Some("web"), None),
            lease("0123456789abcdef", None, None),
        ];
        assert_eq!(
            held_by(&leases),
            "db.1.k2j3@host-a,web@host-a,0123456789ab@host-a"
        );
        assert_eq!(held_by(&[]), "-");
    }

    #[test]
    fn a_move_row_says_when_how_much_how_long_and_how_it_ended() {
        let mut m = pb::Migration {
            id: 7,
            from: "a".into(),
            to: "b".into(),
            phase: pb::MovePhase::Done.into(),
            bytes_sent: 3 << 20,
            rounds: 2,
            started_ms: Some(1_800_000_000_000),
            handoff_ms: Some(1_800_000_004_000),
            ended_ms: Some(1_800_000_005_250),
            downtime_ms: Some(1250),
            ..Default::default()
        };
        let row = [
            "  7",
            "a -> b",
            "2027-01-15T08:00:00Z",
            "2",
            "3.0 MiB",
            "1s 250ms",
            "done",
        ];
        assert_eq!(move_row(&m), row);
        m.set_phase(pb::MovePhase::Failed);
        m.error = Some("disk full".into());
        assert_eq!(move_row(&m)[6], "failed: disk full");
        let under_way = pb::Migration {
            from: "b".into(),
            to: "b".into(),
            phase: pb::MovePhase::Copying.into(),
            ..Default::default()
        };
        let row = move_row(&under_way);
        assert_eq!(
            (&*row[1], &*row[2], &*row[5], &*row[6]),
            ("- -> b", "-", "-", "copying")
        );
    }

    #[test]
    fn a_clone_names_its_source_as_name_at_snap() {
        assert_eq!(parse_at("db@v1"), Ok(("db".into(), "v1".into())));
        assert_eq!(parse_at("db@u-17"), Ok(("db".into(), "u-17".into())));
        for bad in ["db", "@v1", "db@", ""] {
            assert!(parse_at(bad).unwrap_err().contains("NAME@SNAP"), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("10G"), Ok(10 << 30));
        assert_eq!(super::parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(super::parse_size("100"), Ok(100));
        assert!(super::parse_size("ten").is_err());
        assert!(super::parse_size("1X").is_err());
    }
}
