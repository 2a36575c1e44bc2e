//! Stored bytes per order one day after the run: every item of the pattern's tables, sized by
//! DynamoDB's published item-size rules, grouped by the shape of its key, less what TTL deletes
//! within the day (items whose `expires_at` falls before then).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// DynamoDB bills 100 bytes of indexing overhead per item on top of its attributes.
pub const ITEM_OVERHEAD_BYTES: u64 = 100;
const DAY_SECONDS: i64 = 24 * 60 * 60;

/// One kind of item (one key shape in one table).
#[derive(Debug, Clone, Default)]
pub struct Kind {
    pub items: u64,
    pub bytes: u64,
    /// Of these, items TTL deletes before a day has passed.
    pub expiring_items: u64,
    pub expiring_bytes: u64,
    /// Items still carrying the pending index's keys (stored once more in `PendingOutbox`).
    pub in_pending_index: u64,
    /// The longest time to expiry among these items, in days (`None`: none expires).
    pub expires_within_days: Option<f64>,
}

/// (table role, key shape) → what is stored.
pub type Storage = BTreeMap<(String, String), Kind>;

/// Adds `items` of the table playing `role` (orders, rewards) to `storage`.
pub fn add_table(
    storage: &mut Storage,
    role: &str,
    items: &[std::collections::HashMap<String, AttributeValue>],
) {
    let day_later = time::OffsetDateTime::now_utc().unix_timestamp() + DAY_SECONDS;
    for item in items {
        let shape = format!("{} / {}", key_shape(item, "pk"), key_shape(item, "sk"));
        let bytes = item_bytes(item) + ITEM_OVERHEAD_BYTES;
        let kind = storage.entry((role.to_owned(), shape)).or_default();
        kind.items += 1;
        kind.bytes += bytes;
        let expires = item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok());
        if let Some(at) = expires {
            let days = (at - day_later + DAY_SECONDS) as f64 / DAY_SECONDS as f64;
            kind.expires_within_days = Some(kind.expires_within_days.map_or(days, |d| d.max(days)));
        }
        if expires.is_some_and(|at| at <= day_later) {
            kind.expiring_items += 1;
            kind.expiring_bytes += bytes;
        }
        if item.contains_key("pending_pk") {
            kind.in_pending_index += 1;
        }
    }
}

/// `CUSTOMER#cmp-c3` → `CUSTOMER#…`: the constant words of a key, its variable parts elided.
fn key_shape(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> String {
    let Some(Ok(key)) = item.get(name).map(|v| v.as_s()) else {
        return "-".into();
    };
    key.split('#')
        .map(|part| {
            let constant =
                !part.is_empty() && part.chars().all(|c| c.is_ascii_uppercase() || c == '_');
            if constant {
                part
            } else {
                "…"
            }
        })
        .collect::<Vec<_>>()
        .join("#")
}

/// An item's size as DynamoDB counts it: attribute names plus values.
pub fn item_bytes(item: &std::collections::HashMap<String, AttributeValue>) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_bytes(value))
        .sum()
}

fn value_bytes(value: &AttributeValue) -> u64 {
    match value {
        AttributeValue::S(s) => s.len() as u64,
        // Numbers: about one byte per two significant digits, plus one.
        AttributeValue::N(n) => {
            let digits = n.chars().filter(char::is_ascii_digit).count() as u64;
            digits.div_ceil(2) + 1
        }
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(|s| s.len() as u64).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| n.len().div_ceil(2) as u64 + 1).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len() as u64).sum(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_bytes(v)).sum::<u64>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() as u64 + value_bytes(v))
                .sum::<u64>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;

    use super::{add_table, item_bytes, Storage};

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn item_size_counts_names_and_values_as_dynamodb_does() {
        let order = item(&[
            ("pk", AttributeValue::S("ORDER#1".into())),
            ("points", AttributeValue::N("1234".into())),
        ]);
        // "pk" 2 + "ORDER#1" 7, "points" 6 + 4 digits in 2 bytes + 1.
        assert_eq!(item_bytes(&order), 2 + 7 + 6 + 3);
    }

    #[test]
    fn items_are_grouped_by_key_shape_and_only_those_expiring_within_the_day_are_dropped() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let with_ttl = |id: &str, expires: i64| {
            item(&[
                ("pk", AttributeValue::S(format!("OUTBOX#{id}"))),
                ("sk", AttributeValue::S("EVENT#1".into())),
                ("expires_at", AttributeValue::N(expires.to_string())),
            ])
        };
        let mut storage = Storage::new();
        add_table(
            &mut storage,
            "orders",
            &[with_ttl("a", now + 60), with_ttl("b", now + 7 * 86_400)],
        );
        let kind = &storage[&("orders".to_owned(), "OUTBOX#… / EVENT#…".to_owned())];
        assert_eq!(kind.items, 2);
        assert_eq!(kind.expiring_items, 1);
        assert!(kind.expires_within_days.is_some_and(|d| d > 6.9));
    }
}
