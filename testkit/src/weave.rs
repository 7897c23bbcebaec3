//! The weave stack of one host, made small and real: a private dockerd in its own network
//! namespace ([`TestDocker`]), the overlay built in that namespace (over a veth underlay,
//! no peers), the static `wait-for-net`, and a real powerstrip proxy run in-process with
//! `builtin:weave` on a runtime of its own, so that the test thread can block on the
//! `docker` CLI.

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;

use agent::docker::Docker;
use agent::network::{NetlinkNetwork, Netns, Network, OverlayConfig};
use agent::weave::{AddressAllocator, Attacher, ExplicitOnly, RestartWatcher, WeaveAdapter};
use proxy::adapter::builtin::Builtins;
use proxy::launch::Options;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use crate::bins::static_wait_for_net;
use crate::docker::TestDocker;
use crate::netns::ethwe_of;

/// adapters.yml for the weave adapter alone.
pub const ADAPTERS_YML: &str = r#"version: 1
endpoints:
  "POST /*/containers/create":
    pre: [weave]
  "POST /*/containers/*/start":
    post: [weave]
  "POST /*/containers/*/restart":
    post: [weave]
adapters:
  weave: builtin:weave
"#;

/// The attacher the tests use: real netlink, the standalone allocator by default.
pub type TestAttacher<A = ExplicitOnly> = Attacher<NetlinkNetwork, A>;

/// dockerd + overlay + powerstrip with `builtin:weave`; everything stops on drop.
pub struct WeaveHost<A = ExplicitOnly> {
    /// The proxy's socket.
    pub proxy: PathBuf,
    /// The attacher behind the adapter.
    pub attacher: Arc<TestAttacher<A>>,
    shutdown: Option<oneshot::Sender<()>>,
    // Field order is drop order: the runtime (proxy, tasks) before dockerd and its netns.
    runtime: Runtime,
    /// The private dockerd (public for its CLI helpers).
    pub docker: TestDocker,
}

impl WeaveHost {
    /// Starts it all with the standalone allocator, or `None` when the test must be skipped
    /// (see [`TestDocker::start`]).
    pub fn start(test: &str) -> Option<WeaveHost> {
        WeaveHost::start_with(test, async { ExplicitOnly })
    }

    /// The IPv4 addresses on `ethwe` in the netns of `pid`, as `ip` prints them.
    pub fn ethwe_of(pid: u32) -> String {
        ethwe_of(pid)
    }
}

impl<A: AddressAllocator + 'static> WeaveHost<A> {
    /// As [`WeaveHost::start`], with the allocator `allocator` makes (run on the host's
    /// runtime, which the allocator may then use).
    pub fn start_with(
        test: &str,
        allocator: impl std::future::Future<Output = A>,
    ) -> Option<WeaveHost<A>> {
        let wait_for_net = static_wait_for_net();
        let docker = TestDocker::start(test)?;
        // The underlay: one end of a veth pair (this kernel has no dummy devices).
        let ns = docker.netns();
        ns.ip(&[
            "link", "add", "under0", "type", "veth", "peer", "name", "under1",
        ]);
        ns.ip(&["link", "set", "under0", "up"]);
        ns.ip(&["link", "set", "under1", "up"]);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let proxy = docker.dir().join("p.sock");
        let config = docker.dir().join("adapters.yml");
        std::fs::write(&config, ADAPTERS_YML).unwrap();
        let (attacher, bound) = runtime.block_on(async {
            let allocator = allocator.await;
            let ns = Netns::Path(docker.netns().path());
            let network = NetlinkNetwork::new_in(&ns, OverlayConfig::new("under0"))
                .await
                .expect("netlink in the host netns");
            network.ensure_overlay().await.expect("overlay");
            let attacher = Arc::new(Attacher::new(
                Arc::new(Docker::new(docker.socket())),
                network,
                allocator,
            ));
            let mut builtins = Builtins::standard();
            builtins.register(
                "weave",
                Arc::new(WeaveAdapter::new(attacher.clone(), wait_for_net)),
            );
            let options = Options {
                config,
                listen: vec![format!("unix://{}", proxy.display())],
                docker: format!("unix://{}", docker.socket().display()),
                tls_cert: None,
                tls_key: None,
                tls_ca: None,
                insecure: false,
                max_hook_body: proxy::limits::DEFAULT_MAX_HOOK_BODY_BYTES,
            };
            let validated = options.validate(builtins).expect("valid options");
            (attacher, validated.bind().await.expect("proxy binds"))
        });
        let (tx, rx) = oneshot::channel::<()>();
        runtime.spawn(bound.run(async {
            let _ = rx.await;
        }));
        Some(WeaveHost {
            proxy,
            attacher,
            shutdown: Some(tx),
            runtime,
            docker,
        })
    }

    /// `docker ARGS` through the proxy.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker
            .cli_at(&self.proxy)
            .args(args)
            .output()
            .expect("docker runs")
    }

    /// Follows Docker's `start` events and re-attaches, until dropped.
    pub fn watch_restarts(&self) -> RestartWatcher {
        let _in_runtime = self.runtime.enter();
        RestartWatcher::spawn(self.attacher.clone())
    }

    /// The host's runtime, to spawn what the test needs next to the proxy.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

impl<A> Drop for WeaveHost<A> {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
