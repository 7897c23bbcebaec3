//! How a daemon stops: the signal that asks it to ([`StopSignals`]) and the one design
//! for stopping its tasks ([`Supervisor`]).

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
pub use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Which signal asked the process to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `SIGTERM` (systemd, `docker stop`, `kill`).
    Terminate,
    /// `SIGINT` (Ctrl-C).
    Interrupt,
}

/// The handlers for SIGTERM and SIGINT, installed by [`StopSignals::install`].
///
/// Install them before the daemon announces itself (binds its sockets, tells systemd it is
/// ready): until they exist, a SIGTERM kills the process at once, without its shutdown.
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers now; from here on SIGTERM and SIGINT wait for [`Self::received`].
    ///
    /// # Panics
    ///
    /// If the handlers cannot be installed (no Tokio runtime with signal support).
    pub fn install() -> Self {
        Self {
            term: signal(SignalKind::terminate()).expect("a SIGTERM handler can be installed"),
            int: signal(SignalKind::interrupt()).expect("a SIGINT handler can be installed"),
        }
    }

    /// Resolves at the first SIGTERM or SIGINT since [`Self::install`].
    pub async fn received(mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Terminate,
            _ = self.int.recv() => Signal::Interrupt,
        }
    }
}

/// The one shutdown design of the daemons: every long-running task is spawned on a
/// [`Supervisor`], watches its [`CancellationToken`] and may report a fatal error; the daemon
/// runs until a signal or the first fatal error, then cancels every task, waits up to a
/// grace period for them to finish (listeners stop accepting, connections drain) and
/// abandons the rest (they are aborted when the runtime ends).
pub struct Supervisor<E> {
    token: CancellationToken,
    tasks: TaskTracker,
    failures: mpsc::UnboundedSender<E>,
    failed: mpsc::UnboundedReceiver<E>,
}

impl<E: Send + 'static> Default for Supervisor<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Send + 'static> Supervisor<E> {
    /// A supervisor with no tasks.
    pub fn new() -> Self {
        let (failures, failed) = mpsc::unbounded_channel();
        Self {
            token: CancellationToken::new(),
            tasks: TaskTracker::new(),
            failures,
            failed,
        }
    }

    /// The token every task watches; cancelled when shutting down.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Runs `task` until it ends or the daemon shuts down (then it is dropped at once:
    /// for tasks with nothing to drain).
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let token = self.token.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = task => tracing::debug!(task = name, "task ended"),
                () = token.cancelled() => {}
            }
        });
    }

    /// A handle that spawns more draining tasks on this supervisor from inside its tasks
    /// (an accept loop spawning a task per connection).
    pub fn spawner(&self) -> Spawner {
        Spawner {
            token: self.token.clone(),
            tasks: self.tasks.clone(),
        }
    }

    /// Runs `task`, which watches the token itself (to drain), until it ends; an error it
    /// returns shuts the daemon down and is what [`Supervisor::run`] returns.
    pub fn spawn_fallible(&self, task: impl Future<Output = Result<(), E>> + Send + 'static) {
        let failures = self.failures.clone();
        self.tasks.spawn(async move {
            if let Err(e) = task.await {
                let _ = failures.send(e);
            }
        });
    }

    /// Waits for `stop` (a signal) or the first fatal error, then cancels every task and
    /// waits up to `grace` for them to end.
    pub async fn run(mut self, stop: impl Future<Output = ()>, grace: Duration) -> Result<(), E> {
        let outcome = tokio::select! {
            () = stop => Ok(()),
            Some(e) = self.failed.recv() => Err(e),
        };
        self.token.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.tasks.len(),
                grace = ?grace,
                "tasks still running after the shutdown grace: abandoned"
            );
        }
        // A task that failed while the others stopped: the first error is the one reported.
        match outcome {
            Ok(()) => self.failed.try_recv().map_or(Ok(()), Err),
            Err(e) => Err(e),
        }
    }
}

/// Spawns tasks that a [`Supervisor`] waits for when it stops (within its grace); cloning
/// shares the supervisor.
#[derive(Clone, Debug)]
pub struct Spawner {
    token: CancellationToken,
    tasks: TaskTracker,
}

impl Spawner {
    /// The token the supervisor cancels when shutting down.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Runs `task`, which watches [`Spawner::token`] itself to finish its work and end (a
    /// connection finishing its request); the supervisor waits for it within its grace.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// The race a daemon has with systemd: SIGTERM right after `READY=1`, before the stop
    /// future is first polled. Installed handlers keep that signal for `received`.
    #[tokio::test]
    async fn a_signal_sent_before_anyone_waits_is_kept() {
        let signals = StopSignals::install();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = tokio::time::timeout(Duration::from_secs(5), signals.received()).await;
        assert_eq!(got, Ok(Signal::Terminate));
    }

    #[tokio::test]
    async fn a_stop_cancels_every_task_and_waits_for_the_draining_ones() {
        let s = Supervisor::<String>::new();
        let drained = Arc::new(AtomicBool::new(false));
        s.spawn("forever", std::future::pending());
        let (token, done) = (s.token(), drained.clone());
        s.spawn_fallible(async move {
            token.cancelled().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            done.store(true, Ordering::SeqCst);
            Ok(())
        });
        let r = s.run(async {}, Duration::from_secs(5)).await;
        assert_eq!(r, Ok(()));
        assert!(
            drained.load(Ordering::SeqCst),
            "the draining task was waited for"
        );
    }

    #[tokio::test]
    async fn tasks_spawned_from_a_task_are_drained_too() {
        let s = Supervisor::<String>::new();
        let drained = Arc::new(AtomicBool::new(false));
        let (spawner, done) = (s.spawner(), drained.clone());
        s.spawn("accept loop", async move {
            spawner.spawn({
                let token = spawner.token().clone();
                async move {
                    token.cancelled().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    done.store(true, Ordering::SeqCst);
                }
            });
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        let r = s.run(async {}, Duration::from_secs(5)).await;
        assert_eq!(r, Ok(()));
        assert!(
            drained.load(Ordering::SeqCst),
            "the connection was waited for"
        );
    }

    #[tokio::test]
    async fn the_first_fatal_error_stops_the_rest_and_is_returned() {
        let s = Supervisor::<String>::new();
        let token = s.token();
        s.spawn_fallible(async { Err("identity refused".to_owned()) });
        let r = s.run(std::future::pending(), Duration::from_secs(5)).await;
        assert_eq!(r, Err("identity refused".to_owned()));
        assert!(token.is_cancelled());
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_stop_is_abandoned_after_the_grace() {
        let s = Supervisor::<String>::new();
        s.spawn_fallible(async {
            std::future::pending::<()>().await;
            Ok(())
        });
        let started = std::time::Instant::now();
        let r = s.run(async {}, Duration::from_millis(50)).await;
        assert_eq!(r, Ok(()));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
