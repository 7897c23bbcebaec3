//! Where the proxy listens (`unix:///path`, `tcp://host:port`) and where Docker is
//! (`unix:///path`), parsed and bound.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, UnixListener};

/// Mode of the proxy's unix sockets: owner and group, like Docker's own socket.
const SOCKET_MODE: u32 = 0o660;

/// An address the proxy listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A unix socket at this path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl ListenAddr {
    /// Parses `unix:///path` or `tcp://host:port`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix://") {
            return unix_path(path, text).map(ListenAddr::Unix);
        }
        if let Some(hostport) = text.strip_prefix("tcp://") {
            let hostport = hostport.trim_end_matches('/');
            let addr = hostport
                .to_socket_addrs()
                .map_err(|e| format!("listen address '{text}': {e}"))?
                .next()
                .ok_or_else(|| format!("listen address '{text}' resolves to nothing"))?;
            return Ok(ListenAddr::Tcp(addr));
        }
        Err(format!(
            "listen address '{text}' must be unix:///path or tcp://host:port"
        ))
    }

    /// Whether only this host can connect (a unix socket or a loopback address).
    pub fn is_local(&self) -> bool {
        match self {
            ListenAddr::Unix(_) => true,
            ListenAddr::Tcp(addr) => addr.ip().is_loopback(),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Unix(path) => write!(f, "unix://{}", path.display()),
            ListenAddr::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

/// Parses the `--docker` address: only `unix:///path`.
pub fn parse_docker(text: &str) -> Result<PathBuf, String> {
    match text.strip_prefix("unix://") {
        Some(path) => unix_path(path, text),
        None => Err(format!(
            "--docker '{text}' must be unix:///path/to/docker.sock (the proxy talks to the \
             daemon's own socket; expose the proxy, not the daemon, over TCP)"
        )),
    }
}

fn unix_path(path: &str, text: &str) -> Result<PathBuf, String> {
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(format!(
            "'{text}' needs an absolute path, e.g. unix:///run/powerstrip/docker.sock"
        ))
    }
}

/// A bound listener.
pub enum Listener {
    /// A unix socket; its file is removed when this is dropped.
    Unix(UnixListener, SocketFile),
    /// A TCP socket.
    Tcp(TcpListener),
}

/// Removes the unix socket's file when dropped.
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Listener {
    /// Binds `addr`. A stale unix socket file (nobody accepting on it) is replaced; a live
    /// one is an error rather than stolen.
    pub async fn bind(addr: &ListenAddr) -> io::Result<Self> {
        match addr {
            ListenAddr::Tcp(addr) => Ok(Listener::Tcp(TcpListener::bind(addr).await?)),
            ListenAddr::Unix(path) => {
                prepare_socket_path(path)?;
                let listener = UnixListener::bind(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))?;
                Ok(Listener::Unix(listener, SocketFile(path.clone())))
            }
        }
    }

    /// The address actually bound (for `tcp://127.0.0.1:0`, the port chosen).
    pub fn local_addr(&self) -> io::Result<ListenAddr> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().map(ListenAddr::Tcp),
            Listener::Unix(_, SocketFile(path)) => Ok(ListenAddr::Unix(path.clone())),
        }
    }
}

fn prepare_socket_path(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by another process", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            ListenAddr::parse("unix:///run/p.sock"),
            Ok(ListenAddr::Unix("/run/p.sock".into()))
        );
        let tcp = ListenAddr::parse("tcp://127.0.0.1:2375").unwrap();
        assert!(tcp.is_local());
        assert!(!ListenAddr::parse("tcp://0.0.0.0:2375").unwrap().is_local());
        assert!(ListenAddr::parse("unix://relative.sock").is_err());
        assert!(
            ListenAddr::parse("http://x")
                .unwrap_err()
                .contains("must be unix")
        );
        assert!(
            parse_docker("tcp://127.0.0.1:2375")
                .unwrap_err()
                .contains("unix:///")
        );
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sock");
        let addr = ListenAddr::Unix(path.clone());
        let first = Listener::bind(&addr).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        let error = Listener::bind(&addr).await.err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        // Leave a stale file behind, as a crash would.
        let Listener::Unix(listener, file) = first else {
            unreachable!()
        };
        std::mem::forget(file);
        drop(listener);
        assert!(path.exists());
        Listener::bind(&addr).await.unwrap();
    }
}
