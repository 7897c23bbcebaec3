//! Waiting for a condition with a deadline instead of sleeping for a guessed time: one
//! polling loop for threads ([`poll_until`], and [`wait_until`], which fails the test at
//! the deadline) and one for async tests ([`eventually`]).

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked.
pub const INTERVAL: Duration = Duration::from_millis(20);

/// Checks `condition` every [`INTERVAL`] until it holds (`true`) or `deadline` passes
/// (`false`).
pub fn poll_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() >= deadline {
            return false;
        }
        std::thread::sleep(INTERVAL);
    }
}

/// As [`poll_until`], panicking with `what` when `deadline` passes.
pub fn wait_until(deadline: Duration, what: &str, condition: impl FnMut() -> bool) {
    assert!(
        poll_until(deadline, condition),
        "timed out after {deadline:?} waiting for {what}"
    );
}

/// Polls `f` every [`INTERVAL`] until it returns `Some`, or panics with `what` when
/// `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_until_says_whether_the_condition_held_in_time() {
        let mut calls = 0;
        assert!(poll_until(Duration::from_secs(5), || {
            calls += 1;
            calls == 3
        }));
        assert_eq!(calls, 3);
        let started = Instant::now();
        assert!(!poll_until(Duration::from_millis(100), || false));
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    #[should_panic(expected = "waiting for the impossible")]
    fn wait_until_fails_at_the_deadline() {
        wait_until(Duration::from_millis(50), "the impossible", || false);
    }

    #[tokio::test]
    async fn eventually_returns_the_first_value() {
        let mut n = 0;
        let v = eventually(Duration::from_secs(5), "three", || {
            n += 1;
            let n = n;
            async move { (n == 3).then_some(n * 10) }
        })
        .await;
        assert_eq!(v, 30);
    }
}
