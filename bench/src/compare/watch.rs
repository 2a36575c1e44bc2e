//! End-to-end visibility: from the API's answer to the reward in the rewards API, and (pattern
//! 3) to the order in `GET /orders/{id}`'s read. A watcher polls both on the direct client (not
//! through the proxies, so its reads are neither delayed nor counted).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rewards_service::service::rewards_of;
use rewards_service::store::dynamodb::DynamoRewardsStore;

/// How often the watcher looks: the resolution of every latency below.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Default)]
struct State {
    /// customer → (order id → when the API answered).
    rewards_pending: HashMap<String, HashMap<String, Instant>>,
    /// Orders the first `GET` right after the answer did not find.
    unreadable: HashMap<String, Instant>,
    seen: Seen,
}

#[derive(Default)]
pub struct Watch(Mutex<State>);

/// What the watcher saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub answered: usize,
    pub end_to_end_ms: Vec<f64>,
    /// Orders `GET /orders/{id}` found on its first try, right after the answer.
    pub readable_at_once: usize,
    /// For the others: how long after the answer the watcher first found them.
    pub read_gap_ms: Vec<f64>,
}

impl Watch {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("watch")
    }

    /// An order the API answered at `answered`; `readable` is what a `GET` right after found.
    pub fn answered(&self, order_id: String, customer: String, answered: Instant, readable: bool) {
        let mut s = self.state();
        s.seen.answered += 1;
        if readable {
            s.seen.readable_at_once += 1;
        } else {
            s.unreadable.insert(order_id.clone(), answered);
        }
        s.rewards_pending
            .entry(customer)
            .or_default()
            .insert(order_id, answered);
    }

    fn outstanding(&self) -> usize {
        let s = self.state();
        s.unreadable.len() + s.rewards_pending.values().map(HashMap::len).sum::<usize>()
    }

    pub fn seen(&self) -> Seen {
        self.state().seen.clone()
    }

    /// Polls until every answered order is readable and rewarded, `placing_done` has resolved,
    /// or `timeout` passed since `placing_done` (then it is an error: something was lost).
    pub async fn run<R, Fut>(
        &self,
        rewards: &DynamoRewardsStore,
        readable: R,
        placing_done: &tokio::sync::watch::Receiver<bool>,
        timeout: Duration,
    ) -> Result<()>
    where
        R: Fn(String) -> Fut,
        Fut: Future<Output = bool>,
    {
        let mut done_at: Option<Instant> = None;
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            self.look(rewards, &readable).await?;
            if *placing_done.borrow() {
                let since = *done_at.get_or_insert_with(Instant::now);
                if self.outstanding() == 0 {
                    return Ok(());
                }
                if since.elapsed() > timeout {
                    bail!(
                        "{} orders still not visible {timeout:?} after the last was placed",
                        self.outstanding()
                    );
                }
            }
        }
    }

    async fn look<R, Fut>(&self, rewards: &DynamoRewardsStore, readable: &R) -> Result<()>
    where
        R: Fn(String) -> Fut,
        Fut: Future<Output = bool>,
    {
        let unread: Vec<String> = self.state().unreadable.keys().cloned().collect();
        for order_id in unread {
            if readable(order_id.clone()).await {
                let now = Instant::now();
                let mut s = self.state();
                if let Some(answered) = s.unreadable.remove(&order_id) {
                    s.seen.read_gap_ms.push(ms_between(answered, now));
                }
            }
        }
        let customers: Vec<String> = {
            let s = self.state();
            s.rewards_pending
                .iter()
                .filter(|(_, orders)| !orders.is_empty())
                .map(|(c, _)| c.clone())
                .collect()
        };
        for customer in customers {
            let mut next: Option<String> = None;
            loop {
                let page = rewards_of(rewards, &customer, Some(100), next.as_deref()).await?;
                let now = Instant::now();
                let mut s = self.state();
                let mut found = Vec::new();
                if let Some(pending) = s.rewards_pending.get_mut(&customer) {
                    for entry in &page.entries {
                        if let Some(answered) = pending.remove(&entry.order_id) {
                            found.push(ms_between(answered, now));
                        }
                    }
                }
                s.seen.end_to_end_ms.extend(found);
                let still = s.rewards_pending.get(&customer).map_or(0, HashMap::len);
                drop(s);
                next = page.next;
                if still == 0 || next.is_none() {
                    break;
                }
            }
        }
        Ok(())
    }
}

fn ms_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of `values` (`p` in 0..=100); 0 for none.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 50.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
