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
use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};

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

/// An output's capacity figures: an `Option` on single-item operations, a list on the others.
macro_rules! capacities {
    (one, $o:expr) => {
        $o.consumed_capacity().cloned().into_iter().collect()
    };
    (many, $o:expr) => {
        $o.consumed_capacity().to_vec()
    };
}

/// For every operation the project makes: asking for `TOTAL` on its input, and reading its
/// output's figures (and whether they are reads).
macro_rules! operations {
    ($($module:ident :: $input:ident => $output:ident, $read:expr, $kind:ident;)+) => {
        fn ask_for_capacity(input: &mut Input) {
            $(if let Some(i) = input.downcast_mut::<$module::$input>() {
                i.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
            })+
        }

        fn consumed(output: &Output) -> Option<(Vec<ConsumedCapacity>, bool)> {
            $(if let Some(o) = output.downcast_ref::<$module::$output>() {
                return Some((capacities!($kind, o), $read));
            })+
            None
        }
    };
}

operations! {
    put_item::PutItemInput => PutItemOutput, false, one;
    update_item::UpdateItemInput => UpdateItemOutput, false, one;
    delete_item::DeleteItemInput => DeleteItemOutput, false, one;
    get_item::GetItemInput => GetItemOutput, true, one;
    query::QueryInput => QueryOutput, true, one;
    transact_write_items::TransactWriteItemsInput => TransactWriteItemsOutput, false, many;
    transact_get_items::TransactGetItemsInput => TransactGetItemsOutput, true, many;
    batch_get_item::BatchGetItemInput => BatchGetItemOutput, true, many;
    batch_write_item::BatchWriteItemInput => BatchWriteItemOutput, false, many;
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
        ask_for_capacity(context.input_mut());
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some((consumed, is_read)) = context.output_or_error().ok().and_then(consumed) {
            self.add(&consumed, is_read);
        }
        Ok(())
    }
}
