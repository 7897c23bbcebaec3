//! The status page as HTML: one function per section, the page around them, escaping. The
//! same section HTML is the first page load and each live update (the script swaps the
//! section with the same `id`), so there is one rendering path.

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use proto::control as pb;

use super::view::{View, under_way};
use crate::convert::{
    human_bytes, lease_holder, member_state_word, phase_word, replica_word, replication_word,
    volume_state_word,
};

/// The page's sections, by element id, in page order.
pub const SECTIONS: [&str; 5] = ["cluster", "nodes", "moves", "volumes", "addresses"];

/// Every section of `view`, rendered, in [`SECTIONS`] order.
pub fn sections(view: &View) -> Vec<(&'static str, String)> {
    vec![
        ("cluster", cluster(view)),
        ("nodes", nodes(view)),
        ("moves", moves(view)),
        ("volumes", volumes(view)),
        ("addresses", addresses(view)),
    ]
}

/// The whole page around `sections`: the style, the sections and the live-update script.
pub fn page(sections: &[(&'static str, String)]) -> String {
    let mut html = String::from(HEAD);
    for (_, section) in sections {
        html.push_str(section);
        html.push('\n');
    }
    html.push_str(TAIL);
    html
}

/// `s` safe in HTML text and in quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How far a move under way is: bytes sent of the volume's used bytes, in percent (at most
/// 100), when its size is known.
pub fn percent(m: &pb::Migration, total: Option<u64>) -> Option<u64> {
    if m.phase() == pb::MovePhase::Done {
        return Some(100);
    }
    let total = total.filter(|t| *t > 0)?;
    Some((m.bytes_sent.saturating_mul(100) / total).min(100))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn utc(ms: Option<u64>) -> String {
    opt(ms.map(|ms| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms))))
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// A table: escaped headers, rows of cells already HTML (each `(attributes, cells)`).
fn table(headers: &[&str], rows: &[(String, Vec<String>)], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\">{}</p>", escape(empty));
    }
    let mut html = String::from("<table><thead><tr>");
    for h in headers {
        let _ = write!(html, "<th>{}</th>", escape(h));
    }
    html.push_str("</tr></thead><tbody>\n");
    for (attributes, cells) in rows {
        let _ = write!(html, "<tr{attributes}>");
        for cell in cells {
            let _ = write!(html, "<td>{cell}</td>");
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody></table>");
    html
}

fn badge(word: &str, good: bool) -> String {
    let class = if good { "ok" } else { "bad" };
    format!("<span class=\"badge {class}\">{}</span>", escape(word))
}

fn cluster(view: &View) -> String {
    let mut html = format!(
        "<section id=\"cluster\" data-index=\"{}\"><h2>Control members</h2>",
        view.index
    );
    if let Some(problem) = &view.problem {
        let _ = write!(html, "<p class=\"problem\">{}</p>", escape(problem));
    }
    let Some(s) = &view.cluster else {
        html.push_str("<p class=\"empty\">waiting for the control service</p></section>");
        return html;
    };
    let _ = write!(
        html,
        "<p class=\"summary\">leader <b>{}</b> · term <b>{}</b> · commit index <b>{}</b> · last change watched <b>{}</b></p>",
        opt(s.leader),
        s.term,
        s.commit_index,
        view.index
    );
    let rows: Vec<(String, Vec<String>)> = s
        .members
        .iter()
        .map(|m| {
            let state = member_state_word(m.state());
            let good = m.up && m.state() != pb::MemberState::Unreachable;
            (
                format!(" data-member=\"{}\"", m.id),
                vec![
                    m.id.to_string(),
                    escape(&m.address),
                    if m.voter { "voter" } else { "learner" }.into(),
                    badge(state, good),
                    m.term.to_string(),
                    opt(m.last_log_index),
                    opt(m.last_applied),
                ],
            )
        })
        .collect();
    html.push_str(&table(
        &[
            "ID", "Address", "Role", "State", "Term", "Last log", "Applied",
        ],
        &rows,
        "no members",
    ));
    html.push_str("</section>");
    html
}

fn nodes(view: &View) -> String {
    let rows: Vec<(String, Vec<String>)> = view
        .nodes
        .values()
        .map(|n| {
            (
                format!(" data-node=\"{}\"", escape(&n.name)),
                vec![
                    escape(&n.name),
                    badge(if n.up { "up" } else { "down" }, n.up),
                    escape(&n.address),
                    escape(&n.storage),
                    format!(
                        "{} ago",
                        seconds(view.now_ms.saturating_sub(n.last_heartbeat_ms))
                    ),
                ],
            )
        })
        .collect();
    format!(
        "<section id=\"nodes\"><h2>Nodes</h2>{}</section>",
        table(
            &["Name", "State", "Address", "Storage", "Last heartbeat"],
            &rows,
            "no agent has registered",
        )
    )
}

fn progress(m: &pb::Migration, total: Option<u64>) -> String {
    let sent = human_bytes(m.bytes_sent);
    match (percent(m, total), total) {
        (Some(p), Some(total)) => format!(
            "<progress max=\"{total}\" value=\"{}\" data-percent=\"{p}\"></progress> <span class=\"bytes\">{sent} of {} ({p}%)</span>",
            m.bytes_sent.min(total),
            human_bytes(total),
        ),
        _ => format!("<progress></progress> <span class=\"bytes\">{sent} sent</span>"),
    }
}

fn from_to(m: &pb::Migration) -> String {
    // A volume's first owner is given by a move from nowhere.
    let from = if m.from == m.to { "-" } else { &m.from };
    format!("{} → {}", escape(from), escape(&m.to))
}

fn moves(view: &View) -> String {
    let mut now: Vec<&pb::Migration> = view.moves.values().filter(|m| under_way(m)).collect();
    now.sort_by_key(|m| m.id);
    let rows: Vec<(String, Vec<String>)> = now
        .iter()
        .map(|m| {
            let phase = phase_word(m.phase());
            let elapsed = m.started_ms.map(|s| seconds(view.now_ms.saturating_sub(s)));
            (
                format!(
                    " data-move=\"{}\" data-volume=\"{}\" data-phase=\"{phase}\"",
                    m.id,
                    escape(&m.volume)
                ),
                vec![
                    m.id.to_string(),
                    escape(&m.volume),
                    from_to(m),
                    format!("<span class=\"phase {phase}\">{phase}</span>"),
                    progress(m, view.usage.get(&m.volume).copied()),
                    m.rounds.to_string(),
                    opt(elapsed),
                ],
            )
        })
        .collect();
    let mut done: Vec<&pb::Migration> = view.moves.values().filter(|m| !under_way(m)).collect();
    done.sort_by_key(|m| std::cmp::Reverse(m.id));
    let recent: Vec<(String, Vec<String>)> = done
        .iter()
        .map(|m| {
            let result = match (m.phase(), &m.error) {
                (pb::MovePhase::Failed, Some(e)) => format!("failed: {e}"),
                (phase, _) => phase_word(phase).to_owned(),
            };
            let good = m.phase() == pb::MovePhase::Done;
            (
                format!(" data-move=\"{}\"", m.id),
                vec![
                    m.id.to_string(),
                    escape(&m.volume),
                    from_to(m),
                    badge(&result, good),
                    human_bytes(m.bytes_sent),
                    m.rounds.to_string(),
                    opt(m.downtime_ms.map(seconds)),
                    utc(m.ended_ms),
                ],
            )
        })
        .collect();
    format!(
        "<section id=\"moves\"><h2>Moves under way</h2>{}<h3>Recent moves</h3>{}</section>",
        table(
            &[
                "ID",
                "Volume",
                "From → to",
                "Phase",
                "Progress",
                "Rounds",
                "Running for"
            ],
            &rows,
            "none",
        ),
        table(
            &[
                "ID",
                "Volume",
                "From → to",
                "Result",
                "Sent",
                "Rounds",
                "Downtime",
                "Ended"
            ],
            &recent,
            "none",
        )
    )
}

fn volumes(view: &View) -> String {
    let rows: Vec<(String, Vec<String>)> = view
        .volumes
        .values()
        .map(|v| {
            let holders: Vec<String> = view.holders(&v.name).map(lease_holder).collect();
            let replicas: Vec<String> = v
                .replicas
                .iter()
                .map(|r| replica_word(r, view.now_ms))
                .collect();
            (
                format!(
                    " data-volume=\"{}\" data-owner=\"{}\"",
                    escape(&v.name),
                    escape(v.owner.as_deref().unwrap_or(""))
                ),
                vec![
                    escape(&v.name),
                    escape(&opt(v.owner.as_deref())),
                    v.epoch.to_string(),
                    escape(&volume_state_word(v)),
                    opt(view.usage.get(&v.name).copied().map(human_bytes)),
                    opt(v.size_limit.map(human_bytes)),
                    escape(&if replicas.is_empty() {
                        "-".to_owned()
                    } else {
                        replicas.join(", ")
                    }),
                    escape(&replication_word(v.replication.as_ref())),
                    escape(&if holders.is_empty() {
                        "-".to_owned()
                    } else {
                        holders.join(", ")
                    }),
                ],
            )
        })
        .collect();
    format!(
        "<section id=\"volumes\"><h2>Volumes</h2>{}</section>",
        table(
            &[
                "Name",
                "Owner",
                "Epoch",
                "State",
                "Used",
                "Size limit",
                "Replicas (age)",
                "Replication",
                "Held by"
            ],
            &rows,
            "no volumes",
        )
    )
}

fn addresses(view: &View) -> String {
    let pools: Vec<(String, Vec<String>)> = view
        .pools
        .values()
        .map(|p| {
            let allocated = view
                .allocations
                .values()
                .filter(|a| a.pool == p.cidr)
                .count();
            (
                String::new(),
                vec![escape(&p.cidr), allocated.to_string(), p.size.to_string()],
            )
        })
        .collect();
    let rows: Vec<(String, Vec<String>)> = view
        .allocations
        .values()
        .map(|a| {
            (
                format!(" data-address=\"{}\"", escape(&a.address)),
                vec![
                    escape(&a.address),
                    escape(&a.container_name),
                    escape(&a.container_id.chars().take(12).collect::<String>()),
                    escape(&a.node),
                    if a.running { "running" } else { "stopped" }.into(),
                ],
            )
        })
        .collect();
    format!(
        "<section id=\"addresses\"><h2>Address pools</h2>{}<h3>Allocations</h3>{}</section>",
        table(&["Pool", "Allocated", "Size"], &pools, "no pools"),
        table(
            &["Address", "Container", "ID", "Node", "State"],
            &rows,
            "none"
        )
    )
}

const HEAD: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Flocker cluster status</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.4em; margin: 0 0 .5em; } h2 { font-size: 1.15em; margin: 1.2em 0 .4em; }
h3 { font-size: 1em; margin: .8em 0 .3em; color: #555; }
table { border-collapse: collapse; background: #fff; min-width: 40em; }
th, td { text-align: left; padding: .25em .7em; border-bottom: 1px solid #e3e3e3; vertical-align: middle; }
th { background: #f0f0f0; font-weight: 600; }
.badge { padding: 0 .45em; border-radius: .6em; font-size: .9em; }
.ok { background: #d7f5dd; color: #135c22; } .bad { background: #fbd9d9; color: #8a1616; }
.phase { font-weight: 600; } .phase.copying { color: #1a5fb4; } .phase.handoff { color: #c64600; }
progress { width: 14em; height: 1em; vertical-align: middle; }
.problem { background: #fff3cd; border: 1px solid #e0c060; padding: .4em .7em; }
.empty { color: #888; font-style: italic; }
#live { font-size: .85em; color: #888; margin-left: 1em; font-weight: normal; }
body[data-live="open"] #live { color: #2a7d3a; }
</style></head>
<body data-live="loading">
<h1>Flocker cluster<span id="live">live updates: <span id="live-state">connecting</span></span></h1>
"#;

const TAIL: &str = r#"<script>
(function () {
  "use strict";
  var body = document.body, state = document.getElementById("live-state"), updates = 0;
  function live(word) { body.setAttribute("data-live", word); state.textContent = word === "open" ? "on" : word; }
  if (!window.EventSource) { live("unsupported"); return; }
  var events = new EventSource("events");
  events.onopen = function () { live("open"); };
  events.onerror = function () { live("reconnecting"); };
  ["cluster", "nodes", "moves", "volumes", "addresses"].forEach(function (id) {
    events.addEventListener(id, function (e) {
      var old = document.getElementById(id), t = document.createElement("template");
      t.innerHTML = e.data;
      var fresh = t.content.firstElementChild;
      if (!old || !fresh || fresh.id !== id) { return; }
      fresh.setAttribute("data-live", "1");
      old.replaceWith(fresh);
      updates += 1;
      body.setAttribute("data-updates", String(updates));
    });
  });
})();
</script>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use proto::control::watch_event::Object;

    fn event(index: u64, object: Object) -> pb::WatchEvent {
        pb::WatchEvent {
            index,
            deleted: false,
            key: String::new(),
            object: Some(object),
        }
    }

    /// A cluster with volume `db` owned by host-a, 40 MiB used, moving to host-b.
    fn moving() -> View {
        let mut view = View {
            now_ms: 1_800_000_010_000,
            ..View::default()
        };
        view.apply(event(
            3,
            Object::Volume(pb::Volume {
                name: "db".into(),
                owner: Some("host-a".into()),
                epoch: 1,
                replicas: vec![pb::Replica {
                    node: "host-c".into(),
                    snapshot: "s1".into(),
                    taken_ms: Some(1_800_000_006_000),
                    diverged: false,
                }],
                replication: Some(pb::Replication {
                    copies: 1,
                    max_lag_ms: 10_000,
                    promote_after_ms: None,
                }),
                ..Default::default()
            }),
        ));
        view.apply(event(
            4,
            Object::Node(pb::Node {
                name: "host-a".into(),
                up: true,
                last_heartbeat_ms: 1_800_000_008_500,
                ..Default::default()
            }),
        ));
        view.usage.insert("db".into(), 40 << 20);
        view.apply(event(
            5,
            Object::Migration(pb::Migration {
                id: 7,
                volume: "db".into(),
                from: "host-a".into(),
                to: "host-b".into(),
                phase: pb::MovePhase::Copying.into(),
                bytes_sent: 10 << 20,
                rounds: 0,
                started_ms: Some(1_800_000_000_000),
                ..Default::default()
            }),
        ));
        view
    }

    #[test]
    fn a_move_under_way_shows_its_volume_owner_phase_and_progress() {
        let view = moving();
        let html = page(&sections(&view));
        assert!(
            html.contains(r#"data-volume="db" data-owner="host-a""#),
            "{html}"
        );
        assert!(html.contains("moving to host-b (copying)"), "{html}");
        assert!(
            html.contains(r#"data-move="7" data-volume="db" data-phase="copying""#),
            "{html}"
        );
        let bar = format!(
            r#"<progress max="{}" value="{}" data-percent="25"></progress>"#,
            40 << 20,
            10 << 20
        );
        assert!(html.contains(&bar), "{html}");
        assert!(html.contains("10.0 MiB of 40.0 MiB (25%)"), "{html}");
        assert!(html.contains("host-a → host-b"), "{html}");
        assert!(html.contains("1.5 s ago"), "heartbeat age: {html}");
        assert!(html.contains("host-c(4s)"), "replica and its age: {html}");
        assert!(html.contains("1 replica, max lag 10s"), "policy: {html}");
        assert!(html.contains(r#"data-index="5""#), "{html}");
        assert!(html.contains("new EventSource(\"events\")"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing loaded from elsewhere"
        );
    }

    #[test]
    fn an_unknown_size_gives_an_indeterminate_bar_and_a_finished_move_is_recent() {
        let mut view = moving();
        view.usage.clear();
        let html = moves(&view);
        assert!(
            html.contains("<progress></progress> <span class=\"bytes\">10.0 MiB sent"),
            "{html}"
        );
        view.apply(event(
            9,
            Object::Migration(pb::Migration {
                id: 7,
                volume: "db".into(),
                from: "host-a".into(),
                to: "host-b".into(),
                phase: pb::MovePhase::Done.into(),
                bytes_sent: 41 << 20,
                downtime_ms: Some(1250),
                ..Default::default()
            }),
        ));
        let html = moves(&view);
        assert!(!html.contains("<progress"), "{html}");
        assert!(
            html.contains("1.2 s") || html.contains("1.3 s"),
            "downtime: {html}"
        );
        assert!(volumes(&view).contains(">ready<"), "{}", volumes(&view));
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
        let mut view = View::default();
        view.apply(event(
            1,
            Object::Allocation(pb::Allocation {
                address: "10.255.0.2".into(),
                container_name: "<img src=x onerror=alert(1)>".into(),
                node: "a\"b".into(),
                ..Default::default()
            }),
        ));
        view.problem = Some("<b>down</b>".into());
        let html = page(&sections(&view));
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(
            html.contains("a&quot;b") && html.contains("&lt;b&gt;down"),
            "{html}"
        );
    }

    #[test]
    fn only_the_newest_finished_moves_are_kept_and_deletes_apply() {
        let mut view = View::default();
        for id in 1..=30 {
            view.apply(event(
                id,
                Object::Migration(pb::Migration {
                    id,
                    volume: "v".into(),
                    phase: pb::MovePhase::Failed.into(),
                    ..Default::default()
                }),
            ));
        }
        assert_eq!(view.moves.len(), super::super::view::RECENT_MOVES);
        assert_eq!(view.moves.keys().next(), Some(&11));
        let mut gone = event(
            31,
            Object::Volume(pb::Volume {
                name: "v".into(),
                ..Default::default()
            }),
        );
        view.apply(gone.clone());
        assert!(view.volumes.contains_key("v"));
        gone.deleted = true;
        view.apply(gone);
        assert!(view.volumes.is_empty());
        assert_eq!(view.index, 31);
    }
}
