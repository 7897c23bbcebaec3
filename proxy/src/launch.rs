//! From options to a running proxy: validate everything before binding anything, bind,
//! then serve until shutdown, reloading adapters.yml on SIGHUP.
//!
//! The `powerstrip` binary fills [`Options`] from its flags; the agent fills it from its own
//! and adds its built-in adapters.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::adapter::builtin::Builtins;
use crate::adapter::http::{AdapterClient, adapter_client};
use crate::config::{Config, SharedConfig};
use crate::listen::{ListenAddr, Listener, parse_docker};
use crate::proxy::Proxy;
use crate::server;
use crate::tls::TlsFiles;
use crate::upstream::Upstream;

/// The proxy's settings as given on the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// adapters.yml.
    pub config: PathBuf,
    /// `unix:///path` or `tcp://host:port`, each.
    pub listen: Vec<String>,
    /// Docker's socket, `unix:///path`.
    pub docker: String,
    /// Server certificate for TCP listeners.
    pub tls_cert: Option<PathBuf>,
    /// Server key for TCP listeners.
    pub tls_key: Option<PathBuf>,
    /// CA for client certificates.
    pub tls_ca: Option<PathBuf>,
    /// Allow plain TCP beyond loopback.
    pub insecure: bool,
    /// Largest request body shown to pre-hooks.
    pub max_hook_body: usize,
}

/// Everything that was wrong with the options, one line each.
#[derive(Debug, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct InvalidOptions {
    /// The problems.
    pub problems: Vec<String>,
}

/// Options that passed validation: nothing is bound yet.
pub struct Validated {
    config_path: PathBuf,
    config: Config,
    builtins: Builtins,
    client: AdapterClient,
    listen: Vec<ListenAddr>,
    docker: PathBuf,
    tls: Option<TlsAcceptor>,
    max_hook_body: usize,
}

impl Options {
    /// Checks every option and loads adapters.yml, reporting all problems at once.
    pub fn validate(self, builtins: Builtins) -> Result<Validated, InvalidOptions> {
        let mut problems = Vec::new();
        let client = adapter_client();
        let config = Config::load(&self.config, &builtins, &client)
            .map_err(|e| problems.push(e.to_string()))
            .ok();
        let listen: Vec<ListenAddr> = self
            .listen
            .iter()
            .filter_map(|text| ListenAddr::parse(text).map_err(|e| problems.push(e)).ok())
            .collect();
        if self.listen.is_empty() {
            problems.push("nothing to listen on: give at least one --listen".into());
        }
        let docker = parse_docker(&self.docker)
            .map_err(|e| problems.push(e))
            .ok();
        let tls = match (self.tls_cert, self.tls_key, self.tls_ca) {
            (None, None, None) => None,
            (Some(cert), Some(key), Some(ca)) => TlsFiles { cert, key, ca }
                .server_config()
                .map(TlsAcceptor::from)
                .map_err(|e| problems.push(e.to_string()))
                .ok(),
            _ => {
                problems
                    .push("--tls-cert, --tls-key and --tls-ca go together: give all three".into());
                None
            }
        };
        let tls_given = tls.is_some();
        for addr in listen.iter().filter(|a| !a.is_local()) {
            if !tls_given && !self.insecure {
                problems.push(format!(
                    "{addr} is reachable beyond this host, and the Docker API is root on it: give \
                     --tls-cert, --tls-key and --tls-ca (client certificates are required), or \
                     --insecure if you really mean it"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(InvalidOptions { problems });
        }
        Ok(Validated {
            config_path: self.config,
            config: config.expect("no problems"),
            builtins,
            client,
            listen,
            docker: docker.expect("no problems"),
            tls,
            max_hook_body: self.max_hook_body,
        })
    }
}

/// A proxy whose sockets are bound.
pub struct Bound {
    proxy: Arc<Proxy>,
    listeners: Vec<Listener>,
    tls: Option<TlsAcceptor>,
    reloader: Reloader,
}

impl Validated {
    /// Binds every listener (all or none).
    pub async fn bind(self) -> std::io::Result<Bound> {
        let mut listeners = Vec::new();
        for addr in &self.listen {
            let listener = Listener::bind(addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
            })?;
            listeners.push(listener);
        }
        let shared = SharedConfig::new(self.config);
        let proxy = Proxy::new(
            shared.clone(),
            Upstream::new(self.docker),
            self.max_hook_body,
        );
        Ok(Bound {
            proxy: Arc::new(proxy),
            listeners,
            tls: self.tls,
            reloader: Reloader {
                path: self.config_path,
                builtins: self.builtins,
                client: self.client,
                shared,
            },
        })
    }
}

impl Bound {
    /// The addresses bound, in `--listen` order.
    pub fn local_addrs(&self) -> Vec<ListenAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` completes; SIGHUP reloads adapters.yml.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let reloader = tokio::spawn(self.reloader.on_sighup());
        server::serve(self.proxy, self.listeners, self.tls, shutdown).await;
        reloader.abort();
    }
}

/// Re-reads adapters.yml on SIGHUP; a bad file is reported and the old one stays in force.
struct Reloader {
    path: PathBuf,
    builtins: Builtins,
    client: AdapterClient,
    shared: SharedConfig,
}

impl Reloader {
    async fn on_sighup(self) {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot watch SIGHUP; adapters.yml will not be reloaded");
            return;
        };
        while hangup.recv().await.is_some() {
            match Config::load(&self.path, &self.builtins, &self.client) {
                Ok(config) => {
                    self.shared.replace(config);
                    tracing::info!(config = %self.path.display(), "adapters.yml reloaded");
                }
                Err(error) => tracing::error!(
                    config = %self.path.display(),
                    "reload refused, the previous configuration stays in force: {error}"
                ),
            }
        }
    }
}
