//! Keeping the `flocker` driver registered with dockerd. A legacy plugin socket is listed by
//! dockerd (`docker info`, and so Swarm's description of the node) only once something has
//! looked the driver up; until then Swarm leaves every task with a `flocker` volume Pending,
//! "missing plugin", and a restarted dockerd has forgotten it again. So at every
//! (re)connection to dockerd the agent looks its driver up itself.

use std::sync::Arc;
use std::time::Duration;

use foundation::retry::Backoff;
use futures_util::StreamExt;

use crate::docker::{Action, DockerApi, EventFilter, Update};

/// The name of the agent's volume driver, as users write it (`--volume-driver flocker`).
pub const DRIVER: &str = "flocker";

/// Looks the driver up at every (re)connection to dockerd (again, with backoff, until it
/// succeeds), until the future is dropped. Start it once the plugin socket exists.
pub async fn keep_registered(docker: Arc<dyn DockerApi>) {
    // Only the connections matter; the rarest action keeps the stream quiet.
    let mut updates = docker.updates(EventFilter::actions([Action::Restart]));
    while let Some(update) = updates.next().await {
        if update == Update::Connected {
            register(docker.as_ref()).await;
        }
    }
}

async fn register(docker: &dyn DockerApi) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match docker.look_up_volume_driver(DRIVER).await {
            Ok(()) => {
                tracing::info!(
                    driver = DRIVER,
                    "volume driver registered with dockerd (listed in docker info, schedulable by Swarm)"
                );
                return;
            }
            Err(error) => {
                tracing::warn!(driver = DRIVER, %error, "cannot register the volume driver with dockerd yet; trying again");
                backoff.wait().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::{Call, FakeDocker};

    fn lookups(docker: &FakeDocker) -> usize {
        docker
            .calls()
            .iter()
            .filter(|c| **c == Call::LookUpVolumeDriver(DRIVER.into()))
            .count()
    }

    async fn until(what: &str, done: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(30), async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_driver_is_looked_up_at_start_and_at_every_reconnection() {
        let docker = Arc::new(FakeDocker::new());
        let task = tokio::spawn(keep_registered(docker.clone()));
        until("a lookup at start", || lookups(&docker) == 1).await;
        docker.reconnect();
        until("a lookup after the reconnection", || lookups(&docker) == 2).await;
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_that_fails_is_made_again_until_dockerd_answers_then_stops() {
        let docker = Arc::new(FakeDocker::new());
        docker.set_unreachable(true);
        let task = tokio::spawn(keep_registered(docker.clone()));
        tokio::task::yield_now().await;
        // Connected, then the lookup finds dockerd gone: it is made again, with backoff.
        docker.reconnect();
        until("a second, retried lookup", || lookups(&docker) >= 2).await;
        docker.set_unreachable(false);
        let before = lookups(&docker);
        until("a lookup after dockerd answers", || {
            lookups(&docker) > before
        })
        .await;
        let done = lookups(&docker);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(lookups(&docker), done, "looked up again after it succeeded");
        task.abort();
    }
}
