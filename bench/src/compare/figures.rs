//! The per-order and per-month figures of one pattern, derived from its run: what the
//! document's tables and its chart show.

use devkit::Pattern;

use super::prices::*;
use super::watch::percentile;
use super::PatternRun;

/// A million orders a day.
pub const ORDERS_PER_DAY: f64 = 1_000_000.0;

/// The price of a month at [`ORDERS_PER_DAY`] of `per_order` units priced `per_million`.
pub fn month_of(per_order: f64, per_million: f64) -> f64 {
    per_order * ORDERS_PER_DAY * DAYS_PER_MONTH * per_million / 1e6
}

/// The per-order and per-month figures of one pattern, derived from its run.
#[derive(Debug, Clone)]
pub struct Figures {
    pub pattern: Pattern,
    pub writer_requests: f64,
    pub consumer_requests: f64,
    pub writer_wru: f64,
    pub writer_rru: f64,
    pub consumer_wru: f64,
    pub consumer_rru: f64,
    pub put_units: f64,
    /// EventBridge events and SQS requests per order (the broker deployment; 0 otherwise).
    pub broker_events: f64,
    pub sqs_requests: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub readable_at_once: f64,
    pub read_gap: Option<(f64, f64, f64)>,
    /// Bytes per order still stored a day later, kept for good / expiring later by TTL.
    pub kept_bytes: f64,
    pub expiring_bytes: f64,
    pub expiring_days: f64,
    pub capacity_reported: bool,
}

impl Figures {
    pub fn of(run: &PatternRun) -> Self {
        let orders = run.seen.answered.max(1) as f64;
        let per = |n: f64| n / orders;
        let consumers = |f: &dyn Fn(&super::Side) -> f64| run.consumers.iter().map(f).sum::<f64>();
        let (mut kept, mut expiring, mut days) = (0.0, 0.0, 0.0_f64);
        for kind in run.storage.values() {
            let left = (kind.bytes - kind.expiring_bytes) as f64;
            match kind.expires_within_days {
                Some(d) if d > 1.0 => {
                    expiring += left;
                    days = days.max(d);
                }
                Some(_) => {}
                None => kept += left,
            }
        }
        let e2e = &run.seen.end_to_end_ms;
        let gap = &run.seen.read_gap_ms;
        Self {
            pattern: run.pattern,
            writer_requests: per(run.writer.total_requests() as f64),
            consumer_requests: per(consumers(&|s| s.total_requests() as f64)),
            writer_wru: per(run.writer.units.write),
            writer_rru: per(run.writer.units.read),
            consumer_wru: per(consumers(&|s| s.units.write)),
            consumer_rru: per(consumers(&|s| s.units.read)),
            put_units: run
                .kinesis
                .as_ref()
                .map_or(0.0, |k| per(k.payload_units as f64)),
            broker_events: run.broker.as_ref().map_or(0.0, |b| per(b.events as f64)),
            sqs_requests: run
                .broker
                .as_ref()
                .map_or(0.0, |b| per(b.sqs_requests() as f64)),
            p50: percentile(e2e, 50.0),
            p95: percentile(e2e, 95.0),
            p99: percentile(e2e, 99.0),
            readable_at_once: run.seen.readable_at_once as f64 / orders,
            read_gap: (!gap.is_empty()).then(|| {
                (
                    percentile(gap, 50.0),
                    percentile(gap, 95.0),
                    percentile(gap, 99.0),
                )
            }),
            kept_bytes: per(kept),
            expiring_bytes: per(expiring),
            expiring_days: days,
            capacity_reported: run.writer.units.reports > 0
                || run.consumers.iter().any(|s| s.units.reports > 0),
        }
    }

    pub fn wru(&self) -> f64 {
        self.writer_wru + self.consumer_wru
    }

    pub fn rru(&self) -> f64 {
        self.writer_rru + self.consumer_rru
    }

    /// DynamoDB request units of a month at a million orders a day.
    pub fn month_dynamodb_requests(&self) -> f64 {
        month_of(self.wru(), DYNAMODB_WRU_PER_MILLION)
            + month_of(self.rru(), DYNAMODB_RRU_PER_MILLION)
    }

    /// Kinesis of a month: the template's shards around the clock, and the PUT payload units.
    pub fn month_kinesis(&self, shards: usize) -> f64 {
        if self.put_units == 0.0 {
            return 0.0;
        }
        shards as f64 * HOURS_PER_MONTH * KINESIS_SHARD_HOUR
            + month_of(self.put_units, KINESIS_PUT_UNITS_PER_MILLION)
    }

    /// EventBridge events and SQS requests of a month at a million orders a day.
    pub fn month_broker(&self) -> f64 {
        month_of(self.broker_events, EVENTBRIDGE_EVENTS_PER_MILLION)
            + month_of(self.sqs_requests, SQS_REQUESTS_PER_MILLION)
    }

    /// Storage of the first month: what TTL keeps for `expiring_days` at steady state, plus
    /// half a month of what is kept for good (it grows through the month).
    pub fn month_storage(&self) -> f64 {
        let gb = |bytes: f64| bytes / 1e9;
        let steady = gb(self.expiring_bytes * ORDERS_PER_DAY * self.expiring_days.max(1.0));
        let growing = gb(self.kept_bytes * ORDERS_PER_DAY * DAYS_PER_MONTH) / 2.0;
        (steady + growing) * DYNAMODB_STORAGE_GB_MONTH
    }

    /// What a month's orders add to storage for good, in GB.
    pub fn kept_gb_per_month(&self) -> f64 {
        self.kept_bytes * ORDERS_PER_DAY * DAYS_PER_MONTH / 1e9
    }

    pub fn month_total(&self, shards: usize) -> f64 {
        self.month_dynamodb_requests()
            + self.month_kinesis(shards)
            + self.month_broker()
            + self.month_storage()
    }
}
