//! A TCP relay on loopback that a test can cut and heal: a network partition between one
//! process and the addresses it dials through the relay, while everything else it talks to
//! stays reachable. Cutting closes every relayed connection and refuses new ones (the
//! process sees its calls fail, as across a dead link once its timeouts fire, only sooner).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A relay from a local port to `target`, running until dropped.
pub struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Relays a fresh loopback port to `target` (`HOST:PORT`).
    pub async fn start(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a relay");
        let addr = listener.local_addr().unwrap();
        let target = target.to_owned();
        let cut = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0u64);
        let task = tokio::spawn({
            let cut = cut.clone();
            let cuts = cuts.clone();
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    if cut.load(Ordering::SeqCst) {
                        continue; // dropped: the connection closes at once
                    }
                    let target = target.clone();
                    let mut cutting = cuts.subscribe();
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(&target).await else {
                            return;
                        };
                        let (mut client, mut server) = (client, server);
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cutting.changed() => {}
                        }
                    });
                }
            }
        });
        Relay {
            addr,
            cut,
            cuts,
            task,
        }
    }

    /// The address to dial instead of the target.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Partitions: closes every relayed connection and refuses new ones until [`Relay::heal`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Relays again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
