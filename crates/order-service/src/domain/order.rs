use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use dynamodb_outbox::{Envelope, TraceContext};
use service_runtime::{validate_id, Timestamp, ValidationError};

use super::events::{order_placed, OrderPlaced};

pub const MAX_ITEMS: usize = 100;
pub const MAX_QUANTITY: i64 = 1_000_000;
/// Money stays below 2^53 so every JSON consumer (JavaScript included) reads it exactly.
pub const MAX_MONEY_CENTS: i64 = (1 << 53) - 1;
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The body of `POST /orders`, as the client sent it. Unknown fields are refused so a typo such as
/// `"quantitiy"` is a 400, not a silently different order.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// May be omitted when a JWT authorizer supplies the customer; empty is invalid otherwise.
    #[serde(default)]
    pub customer_id: String,
    pub currency: String,
    pub items: Vec<LineItem>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LineItem {
    pub sku: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

/// A validated order, ready to be written with its outbox event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Order {
    pub order_id: String,
    pub customer_id: String,
    pub currency: String,
    pub items: Vec<LineItem>,
    pub total_cents: i64,
    pub points: i64,
    pub created_at: String,
    /// Fingerprint of the request that created this order; equal fingerprints mean "same request".
    pub request_hash: String,
}

/// An order and the event announcing it: what the store writes in one transaction.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub order: Order,
    pub event: Envelope<OrderPlaced>,
}

/// An order as `GET /orders/{id}` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OrderView {
    #[serde(flatten)]
    pub order: Order,
    /// True while the order's outbox event has not been applied by the rewards service.
    pub outbox_pending: bool,
}

/// The policy of the rewards programme: one point per whole currency unit.
pub fn points_for(total_cents: i64) -> i64 {
    total_cents / 100
}

impl OrderRequest {
    /// Checks every rule and returns the order total, or the first rule broken.
    pub fn validate(&self) -> Result<i64, ValidationError> {
        validate_id("customer_id", &self.customer_id)?;
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ValidationError::new(
                "invalid_currency",
                "currency",
                "must be a three-letter ISO 4217 code in upper case, such as USD",
            ));
        }
        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            return Err(ValidationError::new(
                "invalid_items",
                "items",
                format!("an order has between 1 and {MAX_ITEMS} items"),
            ));
        }
        let mut total: i64 = 0;
        for (i, item) in self.items.iter().enumerate() {
            validate_id(&format!("items[{i}].sku"), &item.sku)?;
            if !(1..=MAX_QUANTITY).contains(&item.quantity) {
                return Err(ValidationError::new(
                    "invalid_quantity",
                    format!("items[{i}].quantity"),
                    format!("must be between 1 and {MAX_QUANTITY}"),
                ));
            }
            if !(0..=MAX_MONEY_CENTS).contains(&item.unit_price_cents) {
                return Err(ValidationError::new(
                    "invalid_price",
                    format!("items[{i}].unit_price_cents"),
                    format!("must be between 0 and {MAX_MONEY_CENTS} minor units"),
                ));
            }
            total = item
                .quantity
                .checked_mul(item.unit_price_cents)
                .and_then(|line| total.checked_add(line))
                .filter(|t| *t <= MAX_MONEY_CENTS)
                .ok_or_else(|| {
                    ValidationError::new(
                        "total_too_large",
                        "items",
                        format!("the order total exceeds {MAX_MONEY_CENTS} minor units"),
                    )
                })?;
        }
        Ok(total)
    }

    /// Stable fingerprint of the request content; the serialisation order is the struct's.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("plain structs always serialise");
        hex(&Sha256::digest(canonical))
    }

    /// Validates the request and builds the order with the event that announces it.
    pub fn into_new_order(
        self,
        order_id: String,
        now: Timestamp,
        trace: Option<TraceContext>,
    ) -> Result<NewOrder, ValidationError> {
        let total_cents = self.validate()?;
        let request_hash = self.fingerprint();
        let order = Order {
            order_id,
            customer_id: self.customer_id,
            currency: self.currency,
            items: self.items,
            total_cents,
            points: points_for(total_cents),
            created_at: now.to_string(),
            request_hash,
        };
        let event = order_placed(&order, now, trace);
        Ok(NewOrder { order, event })
    }
}

pub fn validate_idempotency_key(key: &str) -> Result<(), ValidationError> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ValidationError::new(
            "invalid_idempotency_key",
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
        ));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> OrderRequest {
        OrderRequest {
            customer_id: "c-1".into(),
            currency: "USD".into(),
            items: vec![LineItem {
                sku: "A-1".into(),
                quantity: 2,
                unit_price_cents: 1250,
            }],
        }
    }

    #[test]
    fn total_and_points_follow_the_policy() {
        assert_eq!(request().validate(), Ok(2500));
        assert_eq!(points_for(2500), 25);
        assert_eq!(points_for(199), 1);
        assert_eq!(points_for(99), 0);
    }

    #[test]
    fn overflowing_totals_are_refused_not_wrapped() {
        let mut r = request();
        r.items[0].quantity = MAX_QUANTITY;
        r.items[0].unit_price_cents = MAX_MONEY_CENTS;
        assert_eq!(r.validate().unwrap_err().code, "total_too_large");
    }

    #[test]
    fn fingerprint_changes_with_content() {
        let mut other = request();
        other.items[0].quantity = 3;
        assert_eq!(request().fingerprint(), request().fingerprint());
        assert_ne!(request().fingerprint(), other.fingerprint());
    }
}
