//! The local event source mapping of a DynamoDB stream ([`crate::mapping`] over [`StreamClient`]):
//! what Lambda does between the orders table's stream and the stream consumer.

use anyhow::Result;
use aws_lambda_events::dynamodb::{Event, EventRecord};
use serde_json::{json, Value as Json};

use crate::mapping::{Mapping, Page, Position, Record, Source};
use crate::stream::StreamClient;

pub use crate::mapping::{Invoke, TriggerStats};

/// A mapping from a table's stream to a function.
pub type Trigger<I> = Mapping<DynamoStream, I>;

/// A table's stream, read with the DynamoDB Streams API.
pub struct DynamoStream {
    pub client: StreamClient,
    pub arn: String,
}

impl Source for DynamoStream {
    type Event = Event;
    type Record = EventRecord;
    /// Every read opens its iterator afresh from the position asked for ([`StreamClient::read_from`]).
    type Cursor = ();
    const BATCH_INFO: &'static str = "DDBStreamBatchInfo";
    const PARALLEL_SHARDS: bool = false;

    fn arn(&self) -> &str {
        &self.arn
    }

    async fn shard_ids(&self) -> Result<Vec<String>> {
        self.client.shard_ids(&self.arn).await
    }

    async fn read(
        &self,
        shard: &str,
        _: &mut (),
        from: Position<'_>,
        limit: usize,
    ) -> Result<Page> {
        let records = self.client.read_from(&self.arn, shard, from, limit).await?;
        let records = records.into_iter().map(|raw| Record {
            // Seconds since the epoch at which DynamoDB wrote the record.
            arrival: raw.json["dynamodb"]["ApproximateCreationDateTime"]
                .as_f64()
                .unwrap_or(0.0),
            sequence_number: raw.sequence_number,
            lambda_shape: raw.json,
            filterable: None,
        });
        Ok(Page {
            records: records.collect(),
            ..Page::default()
        })
    }

    /// Seconds since the epoch, as DynamoDB writes `ApproximateCreationDateTime`.
    fn arrival_json(seconds: f64) -> Json {
        json!(seconds)
    }
}
