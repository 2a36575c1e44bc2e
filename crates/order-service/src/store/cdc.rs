//! Orders on DynamoDB under pattern 2 (original event handling, CDC on the order table): one
//! `PutItem` of the order item and nothing else. The item's INSERT on the table's stream *is* the
//! `OrderPlaced` event ([`crate::changes`] reads it back); the engine's pending marker, merged
//! into the same put, routes it to the rewards consumer and puts it in the sparse pending index,
//! so the sweeper finds an order whose creation the stream dropped.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use dynamodb_outbox::dynamodb::classify;
use dynamodb_outbox::{pending_marker, table as outbox_schema};

use super::dynamodb::{decode, order_item, read_order_item, Item};
use crate::domain::events::{order_placed_event_id, ORDER_PLACED_CONSUMERS};
use crate::domain::{NewOrder, OrderView, StoreError};
use crate::schema;
use crate::store::{OrderStore, PutOutcome};

/// Orders alone in the order service's table, each carrying its own pending marker.
#[derive(Clone, Debug)]
pub struct CdcOrderStore {
    client: Client,
    table: String,
}

impl CdcOrderStore {
    /// The orders in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The orders table.
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// The order item as pattern 2 writes it: the order, the trace of its request (the consumer links
/// its work to it), and the pending marker routing its creation to the consumers of
/// `OrderPlaced`.
pub fn cdc_order_item(new: &NewOrder) -> Result<Item, StoreError> {
    let order = &new.order;
    let mut item = order_item(order, None)?;
    if let Some(trace) = &new.event.trace_context {
        let trace = serde_dynamo::to_attribute_value(trace)
            .map_err(|e| StoreError::Failed(format!("encoding failed: {e}")))?;
        item.insert(schema::ORDER_TRACE.into(), trace);
    }
    let marker = pending_marker(
        &order.customer_id,
        &order.created_at,
        &order_placed_event_id(&order.order_id),
        ORDER_PLACED_CONSUMERS,
    );
    item.extend(HashMap::<String, AttributeValue>::from(marker));
    Ok(item)
}

impl OrderStore for CdcOrderStore {
    async fn put_order(&self, new: &NewOrder) -> Result<PutOutcome, StoreError> {
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(cdc_order_item(new)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .send()
            .await;
        match written {
            Ok(_) => Ok(PutOutcome::Created),
            Err(SdkError::ServiceError(err))
                if matches!(err.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                let existing = read_order_item(&self.client, &self.table, &new.order.order_id)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Failed("order condition failed but no order is stored".into())
                    })?;
                Ok(PutOutcome::Exists(decode(existing)?))
            }
            Err(err) => Err(classify(err).into()),
        }
    }

    /// `outbox_pending` here means: the order item still carries its pending marker, so some
    /// consumer of `OrderPlaced` (the rewards consumer) has yet to process its creation. There is
    /// no outbox item to look up: one consistent read answers.
    async fn get_order(&self, order_id: &str) -> Result<Option<OrderView>, StoreError> {
        let Some(item) = read_order_item(&self.client, &self.table, order_id).await? else {
            return Ok(None);
        };
        let outbox_pending = item.contains_key(outbox_schema::WAITING_CONSUMERS);
        Ok(Some(OrderView {
            order: decode(item)?,
            outbox_pending,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderRequest, Timestamp};

    #[test]
    fn the_order_item_carries_the_pending_marker_for_rewards_and_no_outbox_key() {
        let request: OrderRequest = serde_json::from_str(
            r#"{"customer_id":"c-1","currency":"USD","items":[{"sku":"A","quantity":2,"unit_price_cents":1250}]}"#,
        )
        .unwrap();
        let new = request
            .into_new_order("o-1".into(), Timestamp::now(), None)
            .unwrap();
        let item = cdc_order_item(&new).unwrap();
        assert_eq!(
            item.get(outbox_schema::WAITING_CONSUMERS),
            Some(&AttributeValue::Ss(vec!["rewards".into()]))
        );
        let pending_sk = item[dynamodb_outbox::testing::schema::PENDING_SK]
            .as_s()
            .unwrap();
        assert!(pending_sk.ends_with(&order_placed_event_id("o-1")));
        assert!(!item.contains_key(schema::EVENT_PK));
        assert_eq!(item[schema::ENTITY], AttributeValue::S("Order".into()));
    }
}
