//! A look inside both stores, for tests that run the same bodies on each.

use std::collections::BTreeSet;
use std::future::Future;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use serde_dynamo::{AttributeValue, Item};

use crate::dynamodb::{classify, DynamoConsumerStore, SdkItem};
use crate::memory::MemoryStore;
use crate::schema;
use crate::store::{ConsumerStore, ItemKey, StoreError, StoreOps};

/// An item that waits for its consumers, as the store keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitingItem {
    /// The consumers that have yet to process it.
    pub consumers: BTreeSet<String>,
    /// Whether it is in the pending index (the sweeper's view).
    pub pending: bool,
    /// Its TTL, epoch seconds (an outbox event whose last consumer is done).
    pub expires_at: Option<i64>,
}

/// What tests read and write around a store: the producer's items, and what the consumers did.
pub trait Inspect: ConsumerStore + Clone + 'static {
    /// Stores an outbox item, or an entity item with its pending marker, as its producer's
    /// transaction wrote it.
    fn put_waiting(&self, item: &Item) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The last sequence `consumer` applied on `ordering_key` (0: none).
    fn progress(
        &self,
        consumer: &str,
        ordering_key: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// An item an effect wrote.
    fn item(
        &self,
        table: &str,
        pk: &str,
        sk: &str,
    ) -> impl Future<Output = Result<Option<Item>, StoreError>> + Send;

    /// An outbox item's (or entity item's) waiting state.
    fn waiting(
        &self,
        item: &ItemKey,
    ) -> impl Future<Output = Result<WaitingItem, StoreError>> + Send;

    /// A numeric attribute an effect wrote (0 when absent).
    fn number(
        &self,
        table: &str,
        pk: &str,
        sk: &str,
        attribute: &str,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send {
        let read = self.item(table, pk, sk);
        async move {
            Ok(
                match read.await?.as_ref().and_then(|item| item.get(attribute)) {
                    Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
                    _ => 0,
                },
            )
        }
    }
}

impl Inspect for MemoryStore {
    async fn put_waiting(&self, item: &Item) -> Result<(), StoreError> {
        self.written(item);
        Ok(())
    }

    async fn progress(&self, consumer: &str, ordering_key: &str) -> Result<u64, StoreError> {
        Ok(self.progress_of(consumer, ordering_key))
    }

    async fn item(&self, table: &str, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        Ok(self.item_at(table, pk, sk))
    }

    async fn waiting(&self, item: &ItemKey) -> Result<WaitingItem, StoreError> {
        let (consumers, pending, expires_at) = self.waiting_of(item);
        Ok(WaitingItem {
            consumers,
            pending,
            expires_at,
        })
    }
}

impl Inspect for DynamoConsumerStore {
    async fn put_waiting(&self, item: &Item) -> Result<(), StoreError> {
        let sdk: SdkItem = item.clone().into();
        self.client()
            .put_item()
            .table_name(self.outbox_table())
            .set_item(Some(sdk))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn progress(&self, consumer: &str, ordering_key: &str) -> Result<u64, StoreError> {
        let pk = schema::progress_pk(consumer, ordering_key);
        let item = self.item(self.table(), &pk, schema::PROGRESS_SK).await?;
        Ok(
            match item.as_ref().and_then(|i| i.get(schema::PROGRESS_SEQUENCE)) {
                Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
                _ => 0,
            },
        )
    }

    async fn item(&self, table: &str, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(table)
            .key(
                schema::PK,
                aws_sdk_dynamodb::types::AttributeValue::S(pk.into()),
            )
            .key(
                schema::SK,
                aws_sdk_dynamodb::types::AttributeValue::S(sk.into()),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item.map(Item::from))
    }

    async fn waiting(&self, key: &ItemKey) -> Result<WaitingItem, StoreError> {
        let Some(item) = self.item(self.outbox_table(), &key.pk, &key.sk).await? else {
            return Ok(WaitingItem::default());
        };
        Ok(WaitingItem {
            consumers: match item.get(schema::WAITING_CONSUMERS) {
                Some(AttributeValue::Ss(set)) => set.iter().cloned().collect(),
                _ => BTreeSet::new(),
            },
            pending: item.contains_key(schema::PENDING_PK),
            expires_at: match item.get(schema::EXPIRES_AT) {
                Some(AttributeValue::N(n)) => n.parse().ok(),
                _ => None,
            },
        })
    }
}

/// Creates a consumer's table and an outbox table with the engine's key schema: `pk`/`sk`
/// strings, and on the outbox the sparse pending index the sweeper reads.
pub async fn create_tables(
    client: &Client,
    consumer_table: &str,
    outbox_table: &str,
) -> Result<(), StoreError> {
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| StoreError::Failed(e.into()))
    };
    let string = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| StoreError::Failed(e.into()))
    };
    for (table, indexed) in [(consumer_table, false), (outbox_table, true)] {
        let mut create = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(schema::PK, KeyType::Hash)?)
            .key_schema(key(schema::SK, KeyType::Range)?)
            .attribute_definitions(string(schema::PK)?)
            .attribute_definitions(string(schema::SK)?);
        if indexed {
            let index = GlobalSecondaryIndex::builder()
                .index_name(schema::PENDING_INDEX)
                .key_schema(key(schema::PENDING_PK, KeyType::Hash)?)
                .key_schema(key(schema::PENDING_SK, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .map_err(|e| StoreError::Failed(e.into()))?;
            create = create
                .attribute_definitions(string(schema::PENDING_PK)?)
                .attribute_definitions(string(schema::PENDING_SK)?)
                .global_secondary_indexes(index);
        }
        create.send().await.map_err(classify)?;
    }
    Ok(())
}
