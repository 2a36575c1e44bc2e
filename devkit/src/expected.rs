//! What each sample event in `events/` (written by [`crate::samples`]) must get, for every
//! function of every template: the one table that the sample-events test (the handlers in
//! process, `tests/sample_events.rs`) and `make smoke-arm64` (the arm64 bootstraps,
//! [`crate::smoke`]) both check, so the two cannot expect different things again.

use crate::patterns::self_read::{ORDER_HISTORY_FUNCTION, REWARDS_FUNCTION};

/// The order-writer's and rewards-api's requests: (file, expected status), in the order a user
/// would try them.
pub const HTTP: &[(&str, i64)] = &[
    ("events/order-writer/place-order.json", 201),
    ("events/order-writer/place-order-base64.json", 201),
    ("events/order-writer/idempotent-replay.json", 201),
    ("events/order-writer/idempotent-replay.json", 201),
    ("events/order-writer/get-order.json", 200),
    ("events/order-writer/invalid-order.json", 400),
    ("events/order-writer/malformed-json.json", 400),
    ("events/order-writer/unknown-route.json", 405),
    ("events/rewards-api/get-rewards.json", 200),
];

/// The stream consumer's batches, handled in this order: (file, applied, duplicates, ignored,
/// parked, records reported for retry). A poison event is parked, not reported.
#[rustfmt::skip]
pub const STREAM: &[(&str, usize, usize, usize, usize, usize)] = &[
    ("events/stream-consumer/outbox-insert-batch.json", 3, 0, 0, 0, 0),
    ("events/stream-consumer/duplicate-batch.json", 0, 4, 0, 0, 0),
    ("events/stream-consumer/ttl-remove.json", 0, 0, 1, 0, 0),
    ("events/stream-consumer/mixed-batch.json", 1, 0, 3, 0, 0),
    ("events/stream-consumer/poison-record.json", 1, 0, 0, 1, 0),
];

/// The balances [`STREAM`] leaves: (customer, points, ledger entries). c-11 got 29 + 1, c-12
/// 100, c-13 21, c-15 8; c-14's event is poison (its points do not follow from its total), so
/// parked, and credits nothing.
pub const STREAM_BALANCES: &[(&str, i64, usize)] = &[
    ("c-11", 30, 2),
    ("c-12", 100, 1),
    ("c-13", 21, 1),
    ("c-14", 0, 0),
    ("c-15", 8, 1),
];

/// The sweeper's scheduled run: it finds the events above without a failure.
pub const SWEEP: &str = "events/outbox-sweeper/scheduled.json";

/// The operator's redrive of parked events and what it reports after [`STREAM`]: (file, found,
/// applied, parked): c-14's poison event is read back and is still poison.
pub const REDRIVE: (&str, usize, usize, usize) =
    ("events/outbox-sweeper/redrive-parked.json", 1, 0, 1);

/// Pattern 2's sample: (file, applied, duplicates), handled by the CDC consumer.
pub const CDC_STREAM: (&str, usize, usize) =
    ("events/stream-consumer/cdc-order-insert-batch.json", 2, 1);

/// The balances [`CDC_STREAM`] leaves: (customer, points, ledger entries).
pub const CDC_BALANCES: &[(&str, i64, usize)] = &[("c-16", 42, 1), ("c-17", 19, 1)];

/// Pattern 3's requests to the order-publisher: (file, expected status), in this order.
pub const SELF_READ_HTTP: &[(&str, i64)] = &[
    ("events/order-publisher/place-order.json", 202),
    ("events/order-publisher/place-order-keyed.json", 202),
    ("events/order-publisher/invalid-order.json", 400),
    ("events/order-publisher/get-order.json", 404),
];

/// Pattern 3's `GET /orders/{id}` once order-history handled [`SELF_READ_KINESIS`]: (file,
/// expected status, the order's customer).
pub const SELF_READ_GET: (&str, i64, &str) = ("events/order-publisher/get-order.json", 200, "c-21");

/// Pattern 3's Kinesis batch, one file per consumer function: (function id, file, applied,
/// duplicates); no record is reported for retry.
#[rustfmt::skip]
pub const SELF_READ_KINESIS: &[(&str, &str, usize, usize)] = &[
    (ORDER_HISTORY_FUNCTION, "events/order-history/order-events.json", 2, 1),
    (REWARDS_FUNCTION, "events/rewards-kinesis-consumer/order-events.json", 2, 1),
];

/// The balances [`SELF_READ_KINESIS`] leaves: (customer, points, ledger entries). c-21's keyed
/// order: 2 x 15.00 = 30 points; c-23's: 4 x 2.50 = 10 points.
pub const SELF_READ_BALANCES: &[(&str, i64, usize)] = &[("c-21", 30, 1), ("c-23", 10, 1)];

/// Pattern 3's redrive (the sweeper's binary as `ParkedRedriveFunction`) after
/// [`SELF_READ_KINESIS`]: (file, found, applied, parked): neither consumer parked anything.
pub const SELF_READ_REDRIVE: (&str, usize, usize, usize) =
    ("events/outbox-sweeper/redrive-parked.json", 0, 0, 0);
