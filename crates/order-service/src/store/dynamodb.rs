//! Orders on DynamoDB: each order and its `OrderPlaced` event in one transaction, through the
//! outbox engine.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use dynamodb_outbox::dynamodb::{classify, Outbox, WriteError, Written};
use dynamodb_outbox::table as outbox_schema;
use service_runtime::error::with_causes;

use crate::domain::events::{relayed_routes, routes};
use crate::domain::{NewOrder, Order, OrderView, StoreError};
use crate::schema;
use crate::store::{OrderStore, PutOutcome};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Orders and their outbox, in the order service's own table.
#[derive(Clone, Debug)]
pub struct DynamoOrderStore {
    client: Client,
    outbox: Outbox,
}

impl DynamoOrderStore {
    /// The orders (and their outbox) in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let outbox = Outbox::new(client.clone(), table, routes());
        Self { client, outbox }
    }

    /// The orders in `table`, their events routed to the relay to the event bus (the broker
    /// deployment) instead of to the rewards consumer.
    pub fn relayed(client: Client, table: impl Into<String>) -> Self {
        let outbox = Outbox::new(client.clone(), table, relayed_routes());
        Self { client, outbox }
    }

    /// The orders table.
    pub fn table(&self) -> &str {
        self.outbox.table()
    }

    /// The order as stored, read consistently.
    async fn read_order(&self, order_id: &str) -> Result<Option<Item>, StoreError> {
        read_order_item(&self.client, self.table(), order_id).await
    }

    /// Whether an outbox item still waits for a consumer (an expired one does not).
    async fn event_pending(&self, pk: &str, sk: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .key(outbox_schema::PK, text(pk))
            .key(outbox_schema::SK, text(sk))
            .projection_expression("#status")
            .expression_attribute_names("#status", outbox_schema::STATUS)
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .item
            .as_ref()
            .and_then(|item| item.get(outbox_schema::STATUS))
            .and_then(|status| status.as_s().ok())
            .is_some_and(|status| status == outbox_schema::STATUS_PENDING))
    }
}

/// The order's item as stored in `table`, read consistently.
pub(crate) async fn read_order_item(
    client: &Client,
    table: &str,
    order_id: &str,
) -> Result<Option<Item>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .key(schema::PK, text(schema::order_pk(order_id)))
        .key(schema::SK, text(schema::ORDER_SK))
        .consistent_read(true)
        .send()
        .await
        .map_err(classify)?;
    Ok(out.item)
}

/// The order's item: the order, its keys, and the key of the outbox item announcing it.
pub fn order_item(order: &Order, event_key: Option<(String, String)>) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(order)
        .map_err(|e| StoreError::Failed(format!("encoding failed: {e}")))?;
    item.insert(schema::PK.into(), text(schema::order_pk(&order.order_id)));
    item.insert(schema::SK.into(), text(schema::ORDER_SK));
    item.insert(schema::ENTITY.into(), text(schema::ENTITY_ORDER));
    if let Some((pk, sk)) = event_key {
        item.insert(schema::EVENT_PK.into(), text(pk));
        item.insert(schema::EVENT_SK.into(), text(sk));
    }
    Ok(item)
}

impl OrderStore for DynamoOrderStore {
    async fn put_order(&self, new: &NewOrder) -> Result<PutOutcome, StoreError> {
        let item = order_item(&new.order, None)?;
        let ordering_key = new.event.ordering_key.clone();
        let table = self.table().to_owned();
        // The order names its event's outbox item, whose sequence the engine assigns.
        let order_put = move |written: &Written| {
            let mut item = item.clone();
            if let Some((_, sequence)) = written.events.first() {
                item.insert(
                    schema::EVENT_PK.into(),
                    text(outbox_schema::key_pk(&ordering_key)),
                );
                item.insert(
                    schema::EVENT_SK.into(),
                    text(outbox_schema::event_sk(*sequence)),
                );
            }
            let put = Put::builder()
                .table_name(&table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", schema::PK)
                .build()
                .expect("table, item and condition are set");
            TransactWriteItem::builder().put(put).build()
        };
        let written = self
            .outbox
            .transaction()
            .write_with(order_put)
            .event(&new.event)
            .map_err(write_error)?
            .commit()
            .await;
        match written {
            Ok(_) => Ok(PutOutcome::Created),
            Err(WriteError::Cancelled { reasons })
                if reasons.first().and_then(Option::as_deref) == Some("ConditionalCheckFailed") =>
            {
                let existing = self.read_order(&new.order.order_id).await?.ok_or_else(|| {
                    StoreError::Failed("order condition failed but no order is stored".into())
                })?;
                Ok(PutOutcome::Exists(decode(existing)?))
            }
            Err(err) => Err(write_error(err)),
        }
    }

    async fn get_order(&self, order_id: &str) -> Result<Option<OrderView>, StoreError> {
        let Some(item) = self.read_order(order_id).await? else {
            return Ok(None);
        };
        let key = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let outbox_pending = match (key(schema::EVENT_PK), key(schema::EVENT_SK)) {
            (Some(pk), Some(sk)) => self.event_pending(&pk, &sk).await?,
            _ => false,
        };
        Ok(Some(OrderView {
            order: decode(item)?,
            outbox_pending,
        }))
    }
}

fn write_error(err: WriteError) -> StoreError {
    match err {
        WriteError::Store(store) => store.into(),
        // The client is told the order may exist, and to resend with its key.
        unknown @ WriteError::OutcomeUnknown(_) => StoreError::Unavailable(with_causes(&unknown)),
        other => StoreError::Failed(with_causes(&other)),
    }
}

pub(crate) fn decode(item: Item) -> Result<Order, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn text(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}
