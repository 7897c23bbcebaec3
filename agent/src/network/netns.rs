//! Network namespace switching: the only place the agent enters another netns.
//!
//! `setns(2)` changes the namespace of the *calling thread* only. Doing it on a tokio worker
//! (or a `spawn_blocking` thread, which is reused) would leave that thread running unrelated
//! tasks inside a container's namespace. So every switch happens on a fresh `std::thread`
//! that does one job and exits; the caller awaits its result over a oneshot channel.
//!
//! Two uses:
//! - [`connect`]: open an rtnetlink socket *inside* a namespace. A netlink socket stays bound
//!   to the namespace it was created in, so the returned [`Handle`] keeps talking to that
//!   namespace from any thread; the connection task runs on the caller's runtime.
//! - [`run_in`]: run a short blocking closure inside a namespace (e.g. write a per-netns
//!   sysctl under `/proc/sys/net`, which resolves against the calling thread's netns).
//!
//! nix's safe `setns` is used: this module has no `unsafe`.

use std::fs::File;
use std::path::PathBuf;

use nix::sched::{CloneFlags, setns};
use rtnetlink::Handle;

use super::NetError;

/// A network namespace to enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Netns {
    /// The namespace of a process, `/proc/PID/ns/net` (a container's init).
    Pid(u32),
    /// A namespace file, e.g. `/run/netns/NAME` made by `ip netns add`.
    Path(PathBuf),
}

impl Netns {
    /// The file that names this namespace.
    pub fn path(&self) -> PathBuf {
        match self {
            Self::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
            Self::Path(p) => p.clone(),
        }
    }
}

impl std::fmt::Display for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pid(pid) => write!(f, "netns of pid {pid}"),
            Self::Path(p) => write!(f, "netns {}", p.display()),
        }
    }
}

/// Run `job` on a fresh thread that first enters `ns`; the thread exits afterwards.
pub async fn run_in<T, F>(ns: &Netns, job: F) -> Result<T, NetError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let target = ns.clone();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            let result = enter(&target).map(|()| job());
            let _ = tx.send(result);
        })
        .map_err(|source| NetError::Netns {
            netns: ns.to_string(),
            source,
        })?;
    rx.await.map_err(|_| NetError::Netns {
        netns: ns.to_string(),
        source: std::io::Error::other("namespace thread panicked"),
    })?
}

/// Open an rtnetlink connection inside `ns`, driven by the current tokio runtime.
pub async fn connect(ns: &Netns) -> Result<Handle, NetError> {
    let runtime = tokio::runtime::Handle::current();
    let handle = run_in(ns, move || {
        // Register the socket with the caller's reactor; it stays in `ns` for its life.
        let _guard = runtime.enter();
        let (connection, handle, _) = rtnetlink::new_connection()?;
        runtime.spawn(connection);
        Ok::<_, std::io::Error>(handle)
    })
    .await?;
    handle.map_err(|source| NetError::Netns {
        netns: ns.to_string(),
        source,
    })
}

/// Open an rtnetlink connection in the agent's own namespace.
pub fn connect_here() -> Result<Handle, NetError> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|source| NetError::Netns {
            netns: "own netns".into(),
            source,
        })?;
    tokio::spawn(connection);
    Ok(handle)
}

fn enter(ns: &Netns) -> Result<(), NetError> {
    let err = |source: std::io::Error| NetError::Netns {
        netns: ns.to_string(),
        source,
    };
    let file = File::open(ns.path()).map_err(err)?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| err(e.into()))
}
