//! The rewards ledger on DynamoDB: a customer's balance and ledger lines, read together.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use dynamodb_outbox::dynamodb::classify;

use crate::domain::{LedgerEntry, LedgerPage, StoreError};
use crate::schema;
use crate::store::RewardsStore;

/// Balances and ledgers, in the rewards service's own table.
#[derive(Clone, Debug)]
pub struct DynamoRewardsStore {
    client: Client,
    table: String,
}

impl DynamoRewardsStore {
    /// The ledger in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl RewardsStore for DynamoRewardsStore {
    async fn ledger(
        &self,
        customer_id: &str,
        limit: usize,
        start_after: Option<&str>,
    ) -> Result<LedgerPage, StoreError> {
        let pk = schema::customer_pk(customer_id);
        let start_key = start_after.map(|sk| {
            [
                (schema::PK.to_owned(), s(pk.clone())),
                (schema::SK.to_owned(), s(sk)),
            ]
            .into()
        });
        let balance = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(pk.clone()))
            .key(schema::SK, s(schema::BALANCE_SK))
            .send();
        let entries = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :ledger)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#sk", schema::SK)
            .expression_attribute_values(":pk", s(pk.clone()))
            .expression_attribute_values(":ledger", s(schema::LEDGER_SK_PREFIX))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start_key)
            .send();
        let (balance, entries) = tokio::join!(balance, entries);
        let points = match balance.map_err(classify)?.item {
            Some(item) => item
                .get(schema::POINTS)
                .and_then(|v| v.as_n().ok())
                .map(|v| v.parse::<i64>())
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("balance: {e}")))?
                .unwrap_or(0),
            None => 0,
        };
        let out = entries.map_err(classify)?;
        let next = out
            .last_evaluated_key
            .and_then(|k| k.get(schema::SK).and_then(|v| v.as_s().ok()).cloned());
        let entries = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(decode)
            .collect::<Result<_, _>>()?;
        Ok(LedgerPage {
            points,
            entries,
            next,
        })
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn decode(item: HashMap<String, AttributeValue>) -> Result<LedgerEntry, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}
