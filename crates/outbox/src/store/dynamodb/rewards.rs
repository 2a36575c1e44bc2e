use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use super::{
    cancellation_is_transient, cancellation_summary, classify, decode, encode, n, reason_code, s,
    string_attr,
};
use crate::domain::{
    LedgerEntry, LedgerPage, Reward, RewardWrite, StoreError, Timestamp, MAX_BALANCE,
};
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

impl DynamoRewardsStore {
    /// The customer an order was rewarded to, read consistently: used when a cancellation did
    /// not carry the existing reward record.
    async fn rewarded_customer(&self, order_id: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(schema::PK, s(keys::order_reward_pk(order_id)))
            .key(schema::SK, s(keys::ORDER_REWARD_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .item
            .as_ref()
            .and_then(|item| string_attr(item, keys::REWARDED_CUSTOMER))
            .map(str::to_owned))
    }
}

impl RewardsStore for DynamoRewardsStore {
    async fn apply_reward(
        &self,
        reward: &Reward,
        applied_at: Timestamp,
    ) -> Result<RewardWrite, StoreError> {
        let pk = keys::customer_pk(&reward.customer_id);
        let entry = LedgerEntry {
            order_id: reward.order_id.clone(),
            points: reward.points,
            event_id: reward.event_id.clone(),
            occurred_at: reward.occurred_at.clone(),
            applied_at: applied_at.to_string(),
        };
        // The order's reward record is the idempotency record: it exists if and only if the
        // points were added, because the three writes commit together or not at all. Keyed by
        // the order alone, so neither another event id nor another occurred_at nor another
        // customer can credit the same order twice.
        let mut record = encode(&entry)?;
        record.insert(
            schema::PK.into(),
            s(keys::order_reward_pk(&reward.order_id)),
        );
        record.insert(schema::SK.into(), s(keys::ORDER_REWARD_SK));
        record.insert(keys::REWARDED_CUSTOMER.into(), s(&reward.customer_id));
        let record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(Self::build_err)?;
        let mut ledger_item = encode(&entry)?;
        ledger_item.insert(schema::PK.into(), s(pk.clone()));
        ledger_item.insert(
            schema::SK.into(),
            s(keys::ledger_sk(&reward.occurred_at, &reward.order_id)),
        );
        let ledger = Put::builder()
            .table_name(&self.table)
            .set_item(Some(ledger_item))
            .build()
            .map_err(Self::build_err)?;
        // The condition keeps the stored balance within what the code reads back: the sum is
        // checked by the database, atomically with the ADD.
        let balance = Update::builder()
            .table_name(&self.table)
            .key(schema::PK, s(pk))
            .key(schema::SK, s(keys::BALANCE_SK))
            .update_expression("ADD #points :points")
            .condition_expression("attribute_not_exists(#points) OR #points <= :room")
            .expression_attribute_names("#points", schema::POINTS)
            .expression_attribute_values(":points", n(reward.points))
            .expression_attribute_values(":room", n(MAX_BALANCE - reward.points))
            .build()
            .map_err(Self::build_err)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(record).build())
            .transact_items(TransactWriteItem::builder().put(ledger).build())
            .transact_items(TransactWriteItem::builder().update(balance).build())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(RewardWrite::Recorded),
            Err(err) => err,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        else {
            return Err(classify(err));
        };
        let reasons = cancelled.cancellation_reasons();
        if reason_code(reasons, 0) == "ConditionalCheckFailed" {
            let carried = reasons
                .first()
                .and_then(|r| r.item.as_ref())
                .and_then(|item| string_attr(item, keys::REWARDED_CUSTOMER))
                .map(str::to_owned);
            let rewarded = match carried {
                Some(customer) => Some(customer),
                None => self.rewarded_customer(&reward.order_id).await?,
            };
            return match rewarded {
                Some(customer) if customer == reward.customer_id => {
                    Ok(RewardWrite::AlreadyRecorded)
                }
                Some(customer) => Ok(RewardWrite::OrderRewardedToAnotherCustomer(customer)),
                None => Err(StoreError::Failed(
                    "reward record condition failed but no record is stored".into(),
                )),
            };
        }
        if reason_code(reasons, 2) == "ConditionalCheckFailed" {
            return Ok(RewardWrite::BalanceLimitReached);
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
