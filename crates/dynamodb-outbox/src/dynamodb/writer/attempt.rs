//! One attempt of a commit on the wire, and the pause between attempts that lost a race.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{AsyncSleep, ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::TransactWriteItem;

use super::Outbox;
use crate::consumer::BoxError;

/// What one `TransactWriteItems` call answered, and whether the SDK sent it more than once: only
/// then can a request before the last have committed with its answer lost.
pub(super) struct Sent {
    pub(super) result:
        Result<TransactWriteItemsOutput, SdkError<TransactWriteItemsError, HttpResponse>>,
    pub(super) resent: bool,
}

/// Counts the requests the SDK transmits for one call (its retries included).
#[derive(Debug, Clone, Default)]
struct Transmissions(Arc<AtomicUsize>);

impl Intercept for Transmissions {
    fn name(&self) -> &'static str {
        "OutboxTransmissions"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Outbox {
    /// Sends one transaction, counting the SDK's transmissions of it.
    pub(super) async fn send(&self, items: Vec<TransactWriteItem>) -> Sent {
        let transmissions = Transmissions::default();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .customize()
            .interceptor(transmissions.clone())
            .send()
            .await;
        Sent {
            result,
            resent: transmissions.0.load(Ordering::Relaxed) > 1,
        }
    }
}

/// The first pause after a lost race, doubled after each further one up to [`MAX_PAUSE`]; each
/// pause is drawn at random below its bound so that racing writers spread out.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// Pauses between a commit's attempts that lost a race, until its budget is spent.
pub(super) struct Backoff {
    deadline: Instant,
    races: u32,
}

impl Backoff {
    pub(super) fn new(budget: Duration) -> Self {
        Self {
            deadline: Instant::now() + budget,
            races: 0,
        }
    }

    /// Waits before the next attempt; `false` when the budget is spent (then no wait). The first
    /// race is retried at once: the refusal carried the counter, and one writer just won.
    pub(super) async fn pause(&mut self, outbox: &Outbox) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        self.races += 1;
        if self.races == 1 {
            return true;
        }
        let bound = FIRST_PAUSE
            .saturating_mul(1 << (self.races - 2).min(16))
            .min(MAX_PAUSE);
        let drawn = uuid::Uuid::new_v4().as_u128() as u64 % (bound.as_micros() as u64 + 1);
        let pause = Duration::from_micros(drawn).min(self.deadline - now);
        let sleep = outbox
            .client
            .config()
            .sleep_impl()
            .or_else(aws_smithy_async::rt::sleep::default_async_sleep);
        // Without a timer the attempts go on unspread, within the same budget.
        if let Some(sleep) = sleep {
            sleep.sleep(pause).await;
        }
        true
    }
}
