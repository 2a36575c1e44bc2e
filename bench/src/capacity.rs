//! Read and write capacity as DynamoDB's `ConsumedCapacity` reports it, for every operation the
//! project makes: an interceptor asks for `TOTAL` on each request and sums the answers.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::{
    batch_get_item, batch_write_item, delete_item, get_item, put_item, query, transact_get_items,
    transact_write_items, update_item,
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;

/// Units summed over a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Units {
    pub read: f64,
    pub write: f64,
    /// Answers that carried a capacity figure (0: the server reports none).
    pub reports: u64,
}

#[derive(Debug, Clone, Default)]
pub struct CapacityMeter(Arc<Mutex<Units>>);

impl CapacityMeter {
    pub fn units(&self) -> Units {
        *self.0.lock().expect("capacity meter")
    }

    fn add(&self, consumed: &[ConsumedCapacity], is_read: bool) {
        let mut units = self.0.lock().expect("capacity meter");
        for cc in consumed {
            let (side, total) = if is_read {
                (cc.read_capacity_units(), &mut units.read)
            } else {
                (cc.write_capacity_units(), &mut units.write)
            };
            if let Some(n) = side.or(cc.capacity_units()) {
                *total += n;
                units.reports += 1;
            }
        }
    }

    /// The same client with the meter on every request.
    pub fn on(&self, client: &Client) -> Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(self.clone())
            .build();
        Client::from_conf(config)
    }
}

/// Sets `return_consumed_capacity` on whichever input type this is.
macro_rules! ask_for_capacity {
    ($input:expr, $($module:ident :: $ty:ident),+) => {
        $(if let Some(i) = $input.downcast_mut::<$module::$ty>() {
            i.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
            return Ok(());
        })+
    };
}

impl Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        ask_for_capacity!(
            input,
            put_item::PutItemInput,
            update_item::UpdateItemInput,
            delete_item::DeleteItemInput,
            get_item::GetItemInput,
            query::QueryInput,
            transact_write_items::TransactWriteItemsInput,
            transact_get_items::TransactGetItemsInput,
            batch_get_item::BatchGetItemInput,
            batch_write_item::BatchWriteItemInput
        );
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let one = |c: Option<&ConsumedCapacity>| c.cloned().into_iter().collect::<Vec<_>>();
        if let Some(o) = output.downcast_ref::<put_item::PutItemOutput>() {
            self.add(&one(o.consumed_capacity()), false);
        } else if let Some(o) = output.downcast_ref::<update_item::UpdateItemOutput>() {
            self.add(&one(o.consumed_capacity()), false);
        } else if let Some(o) = output.downcast_ref::<delete_item::DeleteItemOutput>() {
            self.add(&one(o.consumed_capacity()), false);
        } else if let Some(o) = output.downcast_ref::<get_item::GetItemOutput>() {
            self.add(&one(o.consumed_capacity()), true);
        } else if let Some(o) = output.downcast_ref::<query::QueryOutput>() {
            self.add(&one(o.consumed_capacity()), true);
        } else if let Some(o) =
            output.downcast_ref::<transact_write_items::TransactWriteItemsOutput>()
        {
            self.add(o.consumed_capacity(), false);
        } else if let Some(o) = output.downcast_ref::<transact_get_items::TransactGetItemsOutput>()
        {
            self.add(o.consumed_capacity(), true);
        } else if let Some(o) = output.downcast_ref::<batch_get_item::BatchGetItemOutput>() {
            self.add(o.consumed_capacity(), true);
        } else if let Some(o) = output.downcast_ref::<batch_write_item::BatchWriteItemOutput>() {
            self.add(o.consumed_capacity(), false);
        }
        Ok(())
    }
}
