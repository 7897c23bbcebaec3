//! The pause between attempts: exponential backoff with jitter, one implementation for every
//! reconnect and retry loop (a fixed pause makes every agent of a cluster hit a restarted
//! member in the same instant).

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Pauses that double from `initial` up to `max`, each drawn at random from its upper half
/// (so retries of many processes spread out), until [`Backoff::reset`].
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    random: std::collections::hash_map::RandomState,
    draws: u64,
}

impl Backoff {
    /// Pauses from `initial` doubling up to `max` (`max` is raised to `initial` if lower).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            next: initial,
            random: std::collections::hash_map::RandomState::new(),
            draws: 0,
        }
    }

    /// For reconnecting to a peer or a service: 100 ms, doubling up to 5 s.
    pub fn reconnect() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// The next pause (between half and all of the current step), and doubles the step.
    pub fn next_pause(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = step / 2;
        let spread = u64::try_from((step - half).as_micros()).unwrap_or(u64::MAX);
        let jitter = if spread == 0 {
            0
        } else {
            self.draw() % (spread + 1)
        };
        half + Duration::from_micros(jitter)
    }

    /// Sleeps for [`Backoff::next_pause`].
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_pause()).await;
    }

    /// For a loop of long-lived sessions (a watch stream, a heartbeat loop): sleeps before
    /// the next session, first starting again from the initial pause if the last one
    /// `lasted` longer than the longest pause (it was connected, not failing).
    pub async fn wait_after(&mut self, lasted: Duration) {
        if lasted > self.max {
            self.reset();
        }
        self.wait().await;
    }

    /// Starts again from the initial pause (after an attempt that succeeded).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    fn draw(&mut self) -> u64 {
        self.draws += 1;
        let mut h = self.random.build_hasher();
        h.write_u64(self.draws);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_each_in_its_upper_half() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000));
        for step in [100, 200, 400, 800, 1000, 1000] {
            let p = b.next_pause();
            assert!(
                p >= ms(step) / 2 && p <= ms(step),
                "{p:?} outside {step} ms's upper half"
            );
        }
        b.reset();
        assert!(b.next_pause() <= ms(100));
    }

    #[test]
    fn two_backoffs_spread_their_pauses() {
        let mut a = Backoff::reconnect();
        let mut b = Backoff::reconnect();
        let same = (0..20).filter(|_| a.next_pause() == b.next_pause()).count();
        assert!(same < 20, "two processes would retry in lock step");
    }

    #[test]
    fn a_zero_pause_stays_zero() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(b.next_pause(), Duration::ZERO);
    }
}
