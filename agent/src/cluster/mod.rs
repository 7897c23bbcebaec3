//! The agent's one session with the cluster: a control connection shared by every part
//! ([`Control`], failing over between members) and one watch stream of the control
//! service's changes, kept as a [`ClusterView`] that every part follows through a
//! `tokio::sync::watch::Receiver` ([`Cluster::view`]).
//!
//! Before, each part connected on its own (a TLS handshake per fenced mount) and three of
//! them opened their own watch stream; now there is one connection and one stream per agent.

mod control;
mod view;

pub use control::{CALL_ATTEMPTS, Control};
pub use view::{ClusterView, follow};

use std::time::Duration;

use tokio::sync::watch;

use crate::config::AgentConfig;
use crate::fencing::SelfFence;

/// The session: the shared connection and the view its watch stream keeps.
#[derive(Clone)]
pub struct Cluster {
    node: String,
    control: Control,
    fence: SelfFence,
    view: watch::Receiver<ClusterView>,
    publish: watch::Sender<ClusterView>,
}

impl Cluster {
    /// The session of node `node` over `control`, fenced after `fence_after` without an
    /// answer; the view stays empty until [`Cluster::follow`] runs.
    pub fn new(node: impl Into<String>, control: Control, fence_after: Duration) -> Self {
        let (publish, view) = watch::channel(ClusterView::default());
        Self {
            node: node.into(),
            control,
            fence: SelfFence::new(fence_after),
            view,
            publish,
        }
    }

    /// The session of the agent `config` describes: its node, its members, its certificate.
    pub fn of(config: &AgentConfig) -> Self {
        Self::new(
            config.node.clone(),
            Control::new(config.controls.clone(), config.tls.clone()),
            config.fence_after,
        )
    }

    /// The shared control connection.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Whether the control service answers this agent ([`crate::fencing`]).
    pub fn fence(&self) -> &SelfFence {
        &self.fence
    }

    /// The cluster as the watch stream last showed it; `changed()` wakes at each change.
    pub fn view(&self) -> watch::Receiver<ClusterView> {
        self.view.clone()
    }

    /// Follows the control service's change stream, keeping the view, until the identity
    /// is refused (fatal) or the future is dropped; see [`follow`].
    pub async fn follow(&self) -> Result<(), crate::membership::AgentError> {
        follow(&self.node, &self.control, &self.publish).await
    }
}
