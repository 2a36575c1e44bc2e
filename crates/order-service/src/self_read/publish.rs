//! The publisher's seam: where pattern 3's API puts its events. [`super::kinesis`] implements it
//! on Kinesis (`PutRecord`); tests and the local tools wrap that implementation to lose
//! responses or fail publishes.

use std::future::Future;

use dynamodb_outbox::KinesisPut;

use crate::domain::StoreError;

/// Where events are published.
pub trait EventPublisher: Send + Sync {
    /// Puts one record. `Err(Unavailable)`: it may or may not be on the stream (a lost
    /// response looks like a failure), so the caller must not promise either.
    fn publish(&self, record: &KinesisPut) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<P: EventPublisher> EventPublisher for &P {
    fn publish(&self, record: &KinesisPut) -> impl Future<Output = Result<(), StoreError>> + Send {
        (*self).publish(record)
    }
}
