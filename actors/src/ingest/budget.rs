//! The request budget (`ingest.max_users_per_minute`): one per process, shared by every
//! fetcher, so a public API sees at most that many users asked for per minute however
//! many fetchers run and however often they retry.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Spaces requests: a request for `n` users may start once the previous one's share of
/// the budget (`n` ÷ the per-minute rate) has passed.
#[derive(Debug)]
pub struct RequestBudget {
    users_per_minute: u32,
    /// When the next request may start.
    next: Mutex<Option<Instant>>,
}

impl RequestBudget {
    /// `users_per_minute` 0 is unlimited.
    pub fn new(users_per_minute: u32) -> Self {
        Self {
            users_per_minute,
            next: Mutex::new(None),
        }
    }

    /// Reserves the budget for a request of `users` users and returns how long to wait
    /// before sending it.
    pub fn reserve(&self, users: u32) -> Duration {
        if self.users_per_minute == 0 {
            return Duration::ZERO;
        }
        let share = Duration::from_secs_f64(
            f64::from(users.max(1)) * 60.0 / f64::from(self.users_per_minute),
        );
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let start = next.map_or(now, |n| n.max(now));
        *next = Some(start + share);
        start - now
    }

    /// Waits for this request's turn.
    pub async fn acquire(&self, users: u32) {
        let wait = self.reserve(users);
        if !wait.is_zero() {
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "request budget: waiting for the source's turn"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_to_the_budget() {
        let budget = RequestBudget::new(6_000);
        // 1,000 users are a tenth of a minute of a 6,000-a-minute budget.
        assert_eq!(budget.reserve(1_000), Duration::ZERO);
        assert_eq!(budget.reserve(1_000), Duration::from_secs(10));
        assert_eq!(budget.reserve(500), Duration::from_secs(20));
        tokio::time::advance(Duration::from_secs(60)).await;
        // Idle time is not banked: after a pause the next request goes at once.
        assert_eq!(budget.reserve(1_000), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let budget = RequestBudget::new(0);
        for _ in 0..10 {
            assert_eq!(budget.reserve(5_000), Duration::ZERO);
        }
    }
}
