//! [`Control`]: the agent's one connection to the control service, shared by every part,
//! failing over to another member when the one reached is unavailable.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundation::retry::Backoff;
use proto::connect::{NodeClient, Unreachable, connect_any};
use proto::tls::TlsDir;
use tonic::{Code, Status};

/// How many times [`Control::call`] makes a call that found the service unavailable.
pub const CALL_ATTEMPTS: u32 = 4;

/// A control client shared by the agent's parts; cloning shares the connection.
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

struct Inner {
    /// Members to connect to, in order (empty: only the client given).
    controls: Vec<String>,
    tls: Option<TlsDir>,
    /// The current connection; `None` until the first call or after a failure.
    client: Mutex<Option<NodeClient>>,
}

impl Control {
    /// A connection to the first of `controls` that answers (with `tls`), made at the
    /// first call and made again, to any member, after one is found unavailable.
    pub fn new(controls: Vec<String>, tls: TlsDir) -> Self {
        Self {
            inner: Arc::new(Inner {
                controls,
                tls: Some(tls),
                client: Mutex::new(None),
            }),
        }
    }

    /// A session over an existing `client` that never connects elsewhere (tests; the
    /// channel still reconnects to its own member by itself).
    pub fn with_client(client: NodeClient) -> Self {
        Self {
            inner: Arc::new(Inner {
                controls: Vec::new(),
                tls: None,
                client: Mutex::new(Some(client)),
            }),
        }
    }

    /// The current client, connecting first if there is none.
    pub async fn client(&self) -> Result<NodeClient, Unreachable> {
        if let Some(client) = self.current() {
            return Ok(client);
        }
        let Some(tls) = &self.inner.tls else {
            unreachable!("a session made with_client always has its client")
        };
        let client: NodeClient = connect_any(&self.inner.controls, tls).await?;
        *self.lock() = Some(client.clone());
        Ok(client)
    }

    /// Forgets the current connection after `status` says its member is unavailable, so
    /// the next call connects to whichever member answers first.
    pub fn failed(&self, status: &Status) {
        if status.code() == Code::Unavailable && self.inner.tls.is_some() {
            *self.lock() = None;
        }
    }

    /// Calls the control service with `call(client, request)`; a call that finds the service
    /// unavailable is made again (up to [`CALL_ATTEMPTS`] times, with backoff) on the first
    /// member that answers (found by the lab walk: a run with an address while the member
    /// this agent had reached was down, and the first one after it came back, failed).
    pub async fn call<R, T, Fut>(
        &self,
        request: R,
        call: impl Fn(NodeClient, R) -> Fut,
    ) -> Result<T, Status>
    where
        R: Clone,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut attempt = 1;
        loop {
            let reply = match self.client().await {
                Ok(client) => call(client, request.clone()).await,
                Err(unreachable) => Err(Status::unavailable(unreachable.to_string())),
            };
            match reply {
                Err(s) if s.code() == Code::Unavailable && attempt < CALL_ATTEMPTS => {
                    tracing::debug!(error = %s.message(), attempt, "control call unavailable; trying again");
                    self.failed(&s);
                    attempt += 1;
                    backoff.wait().await;
                }
                Err(s) => {
                    self.failed(&s);
                    return Err(s);
                }
                Ok(reply) => return Ok(reply.into_inner()),
            }
        }
    }

    fn current(&self) -> Option<NodeClient> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<NodeClient>> {
        self.inner.client.lock().unwrap_or_else(|e| e.into_inner())
    }
}
