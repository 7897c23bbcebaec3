//! `flockerctl cluster status|add-member|remove-member`.

use clap::Subcommand;
use proto::control as pb;
use proto::control::operator_api_client::OperatorApiClient;
use serde_json::json;
use tonic::transport::Channel;

use super::output::{self, opt};
use super::{Ctx, Format, call_failed};

/// Cluster verbs.
#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Members, leader, term, commit index and who is up.
    Status,
    /// Add a member (start it first with `flocker-control --join`).
    AddMember {
        /// The new member's id.
        #[arg(long)]
        id: u64,
        /// The address it listens on, HOST:PORT.
        #[arg(long)]
        address: String,
    },
    /// Remove a member (e.g. a dead one) from the voters.
    RemoveMember {
        /// The member's id.
        #[arg(long)]
        id: u64,
    },
}

/// Runs a cluster verb.
pub async fn run(verb: Verb, ctx: &Ctx) -> anyhow::Result<()> {
    let mut c: OperatorApiClient<Channel> = ctx.client().await?;
    let status = match verb {
        Verb::Status => c.status(pb::Empty {}).await,
        Verb::AddMember { id, address } => c.add_member(pb::AddMemberRequest { id, address }).await,
        Verb::RemoveMember { id } => c.remove_member(pb::RemoveMemberRequest { id }).await,
    }
    .map_err(call_failed)?
    .into_inner();
    print(&status, ctx.format);
    Ok(())
}

fn print(s: &pb::ClusterStatus, format: Format) {
    match format {
        Format::Json => output::json(&json!({
            "leader": s.leader,
            "term": s.term,
            "commit_index": s.commit_index,
            "members": s.members.iter().map(|m| json!({
                "id": m.id, "address": m.address, "voter": m.voter, "up": m.up,
                "state": output::member_state(m.state()), "term": m.term, "last_log_index": m.last_log_index,
                "last_applied": m.last_applied, "snapshot_index": m.snapshot_index,
            })).collect::<Vec<_>>(),
        })),
        Format::Table => {
            println!(
                "leader: {}  term: {}  commit index: {}",
                opt(s.leader),
                s.term,
                s.commit_index
            );
            let rows: Vec<Vec<String>> = s
                .members
                .iter()
                .map(|m| {
                    vec![
                        m.id.to_string(),
                        m.address.clone(),
                        if m.voter { "voter" } else { "learner" }.into(),
                        if m.up { "up" } else { "down" }.into(),
                        output::member_state(m.state()).to_owned(),
                        opt(m.last_log_index),
                        opt(m.last_applied),
                    ]
                })
                .collect();
            output::table(
                &[
                    "ID", "ADDRESS", "ROLE", "UP", "STATE", "LAST LOG", "APPLIED",
                ],
                &rows,
            );
        }
    }
}
