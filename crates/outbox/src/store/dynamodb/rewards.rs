use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;

use super::{
    cancellation_is_transient, cancellation_summary, classify, decode, encode, n, reason_code, s,
};
use crate::domain::{Applied, LedgerEntry, LedgerPage, Reward, StoreError, Timestamp};
use crate::schema::{self, rewards as keys};
use crate::store::RewardsStore;

/// Balances and ledgers, in the rewards service's own table.
#[derive(Clone, Debug)]
pub struct DynamoRewardsStore {
    client: Client,
    table: String,
}

impl DynamoRewardsStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn build_err(e: impl std::fmt::Display) -> StoreError {
        StoreError::Failed(e.to_string())
    }
}

impl RewardsStore for DynamoRewardsStore {
    async fn apply_reward(
        &self,
        reward: &Reward,
        applied_at: Timestamp,
    ) -> Result<Applied, StoreError> {
        let pk = keys::customer_pk(&reward.customer_id);
        let entry = LedgerEntry {
            order_id: reward.order_id.clone(),
            points: reward.points,
            event_id: reward.event_id.clone(),
            occurred_at: reward.occurred_at.clone(),
            applied_at: applied_at.to_string(),
        };
        let mut ledger_item = encode(&entry)?;
        ledger_item.insert(schema::PK.into(), s(pk.clone()));
        ledger_item.insert(
            schema::SK.into(),
            s(keys::ledger_sk(&reward.occurred_at, &reward.order_id)),
        );
        // The ledger entry is the idempotency record: it exists if and only if the points were
        // added, because both writes commit together or not at all.
        let ledger = Put::builder()
            .table_name(&self.table)
            .set_item(Some(ledger_item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .build()
            .map_err(Self::build_err)?;
        let balance = Update::builder()
            .table_name(&self.table)
            .key(schema::PK, s(pk))
            .key(schema::SK, s(keys::BALANCE_SK))
            .update_expression("ADD #points :points")
            .expression_attribute_names("#points", schema::POINTS)
            .expression_attribute_values(":points", n(reward.points))
            .build()
            .map_err(Self::build_err)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(ledger).build())
            .transact_items(TransactWriteItem::builder().update(balance).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Applied::Now),
            Err(err) => err,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        else {
            return Err(classify(err));
        };
        let reasons = cancelled.cancellation_reasons();
        if reason_code(reasons, 0) == "ConditionalCheckFailed" {
            return Ok(Applied::AlreadyApplied);
        }
        if cancellation_is_transient(reasons) {
            return Err(StoreError::Unavailable(cancellation_summary(reasons)));
        }
        Err(StoreError::Failed(cancellation_summary(reasons)))
    }

    async fn ledger(
        &self,
        customer_id: &str,
        limit: usize,
        start_after: Option<&str>,
    ) -> Result<LedgerPage, StoreError> {
        let pk = keys::customer_pk(customer_id);
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
            .key(schema::SK, s(keys::BALANCE_SK))
            .send();
        let entries = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :ledger)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#sk", schema::SK)
            .expression_attribute_values(":pk", s(pk.clone()))
            .expression_attribute_values(":ledger", s(keys::LEDGER_SK_PREFIX))
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
