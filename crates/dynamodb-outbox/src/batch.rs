//! A batch of source records in, partial batch failures out: the consumer's whole pipeline.
//!
//! Records are sorted into groups by ordering key and applied in sequence order inside a group,
//! groups concurrently (bounded). The consumer's progress on a key only moves from an event's
//! predecessor to the event, so order holds across batches, shards, retries and redrives too:
//! an event whose predecessor has not been applied waits (and is reported for retry), a
//! redelivered one is a duplicate. After a failure, the rest of the group is held back.
//!
//! A batch's time is its longest chain of round trips: a key's consecutive events commit in one
//! transaction, and the outbox items are marked after all the commits, on no key's chain.

use crate::consumer::Consumer;
use crate::store::ConsumerStore;

mod commit;
mod intake;
mod outcome;
mod park;
mod processor;
#[cfg(feature = "relay")]
mod publish;
mod schedule;
mod sources;
mod sqs;
mod sweep;

use intake::{Arrived, Work};
use outcome::Outcome;
pub use outcome::{AppliedEvent, BatchOutcome, DROPPED_LOG_MESSAGE, PARKED_LOG_MESSAGE};
pub use processor::{
    Processor, SettingError, DEFAULT_CONCURRENCY, DEFAULT_EVENTS_PER_TRANSACTION,
    MAX_RETENTION_SECONDS,
};
use sources::Once;
pub use sources::{kinesis_put, KinesisPut};

impl<C: Consumer, S: ConsumerStore> Processor<C, S> {
    /// Where every `process_*` ends: the records grouped by ordering key, the groups applied,
    /// the outbox items marked, the outcomes counted.
    async fn process(&self, incoming: Vec<(String, Work<'_, C::Payload>)>) -> BatchOutcome {
        let (ids, works): (Vec<String>, Vec<Work<'_, C::Payload>>) = incoming.into_iter().unzip();
        let events: Vec<Option<AppliedEvent>> = works.iter().map(outcome::applied_event).collect();
        let groups = schedule::group_by_key(works);
        #[cfg(feature = "relay")]
        let (outcomes, marks) = match self.consumer.publisher() {
            Some(publisher) => self.publish_groups(publisher, groups, &ids).await,
            None => self.apply_groups(groups, &ids).await,
        };
        #[cfg(not(feature = "relay"))]
        let (outcomes, marks) = self.apply_groups(groups, &ids).await;
        let unmarked = self.mark_all(marks, &ids).await;
        outcome::tally(outcomes, &events, &unmarked, &ids)
    }
}
