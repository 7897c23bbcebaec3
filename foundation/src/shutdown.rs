//! The one way a daemon learns it should stop.

use tokio::signal::unix::{SignalKind, signal};

/// Which signal asked the process to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `SIGTERM` (systemd, `docker stop`, `kill`).
    Terminate,
    /// `SIGINT` (Ctrl-C).
    Interrupt,
}

/// Resolves at the first SIGTERM or SIGINT.
///
/// # Panics
///
/// If the handlers cannot be installed (no Tokio runtime with signal support).
pub async fn signal_received() -> Signal {
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler can be installed");
    let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler can be installed");
    tokio::select! {
        _ = term.recv() => Signal::Terminate,
        _ = int.recv() => Signal::Interrupt,
    }
}
