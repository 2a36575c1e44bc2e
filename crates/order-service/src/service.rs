//! The order service's use cases, generic over [`OrderStore`]: what the handlers call.

use dynamodb_outbox::TraceContext;
use uuid::Uuid;

use crate::domain::order::validate_idempotency_key;
use crate::domain::{Order, OrderError, OrderRequest, OrderView, Timestamp, ValidationError};
use crate::store::{OrderStore, PutOutcome};

/// Namespace of order ids derived from idempotency keys (UUID v5).
const IDEMPOTENT_ORDER_NS: Uuid = Uuid::from_u128(0x6f75_7462_6f78_4f72_8465_7273_0000_0001);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// Written now.
    Created(Order),
    /// The same request was already written (a client retry, or the SDK retrying a write whose
    /// response was lost): this is that order, and nothing new was written.
    Replayed(Order),
}

impl Placed {
    pub fn order(&self) -> &Order {
        match self {
            Placed::Created(o) | Placed::Replayed(o) => o,
        }
    }
}

/// Places an order. With an idempotency key the order id is derived from the key (per customer),
/// so concurrent duplicates race for the same item and the transaction's condition picks one.
pub async fn place_order<S: OrderStore>(
    store: &S,
    request: OrderRequest,
    idempotency_key: Option<&str>,
    trace: Option<TraceContext>,
) -> Result<Placed, OrderError> {
    let order_id = match idempotency_key {
        Some(key) => {
            validate_idempotency_key(key)?;
            idempotent_order_id(&request.customer_id, key)
        }
        None => Uuid::new_v4().to_string(),
    };
    let new = request.into_new_order(order_id, Timestamp::now(), trace)?;
    match store.put_order(&new).await? {
        PutOutcome::Created => Ok(Placed::Created(new.order)),
        PutOutcome::Exists(existing) if existing.request_hash == new.order.request_hash => {
            Ok(Placed::Replayed(existing))
        }
        PutOutcome::Exists(_) => Err(OrderError::IdempotencyConflict),
    }
}

/// The order id an idempotency key stands for: keys are scoped to the customer.
pub fn idempotent_order_id(customer_id: &str, key: &str) -> String {
    let name = format!("{customer_id}\u{0}{key}");
    Uuid::new_v5(&IDEMPOTENT_ORDER_NS, name.as_bytes()).to_string()
}

pub async fn get_order<S: OrderStore>(store: &S, order_id: &str) -> Result<OrderView, OrderError> {
    if Uuid::try_parse(order_id).is_err() {
        return Err(ValidationError::new("invalid_id", "order_id", "must be a UUID").into());
    }
    store.get_order(order_id).await?.ok_or(OrderError::NotFound)
}
