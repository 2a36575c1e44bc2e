//! `make compare`: the article's three patterns on one workload, with the same latency added to
//! every request to every AWS-compatible server through the fault proxy, measured in one run and
//! written to `docs/patterns.md` and `docs/patterns.svg`.
//!
//! - [`workload`]: the orders (Zipf-skewed customers), the same for every pattern.
//! - [`dynamo`] (outbox, CDC) and [`self_read`]: each pattern's real handlers behind its local
//!   event source mappings, orders placed at a fixed rate while the mappings poll.
//! - `crate::capacity`: `ConsumedCapacity` per side; requests are counted by the proxies.
//! - [`watch`]: end-to-end latency and the read-your-writes gap, seen from outside.
//! - [`storage`], [`prices`]: bytes one day later, and what a month of it costs.
//! - [`doc`], [`chart`]: the figures written into the document, and its chart.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use devkit::{Pattern, TriggerStats};

pub mod chart;
pub mod doc;
pub mod dynamo;
pub mod prices;
pub mod self_read;
pub mod storage;
pub mod watch;
pub mod workload;

use crate::capacity::Units;
use storage::Storage;
use watch::Seen;

#[derive(Debug, Clone)]
pub struct Options {
    pub orders: usize,
    pub customers: usize,
    pub seed: u64,
    /// Added to every request to DynamoDB, DynamoDB Streams and Kinesis.
    pub latency: Duration,
    /// Orders placed per second (open loop: the same arrival times for every pattern).
    pub rate_per_second: f64,
    pub consumer_concurrency: usize,
    /// How long after the last order the watcher waits for everything to be visible.
    pub settle_timeout: Duration,
}

/// Requests per operation and capacity, over the whole run, for one side (a function).
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub name: String,
    pub requests: BTreeMap<String, u64>,
    pub units: Units,
}

impl Side {
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// Kinesis records the API published, sized as Kinesis bills them.
#[derive(Debug, Clone, Default)]
pub struct KinesisPuts {
    pub records: u64,
    pub payload_units: u64,
    pub bytes: u64,
    pub shards: usize,
}

/// One pattern's run.
#[derive(Debug, Clone)]
pub struct PatternRun {
    pub pattern: Pattern,
    pub writer: Side,
    pub consumers: Vec<Side>,
    /// Stream reads by the mappings (polling: the count follows the clock, not the orders).
    pub stream_reads: BTreeMap<String, u64>,
    pub kinesis: Option<KinesisPuts>,
    pub seen: Seen,
    pub storage: Storage,
    pub mappings: Vec<(String, TriggerStats)>,
    /// What the mappings' polling was, in words.
    pub polling: String,
    pub elapsed: Duration,
}

/// Every item of `table`, read consistently on the direct client.
pub async fn scan(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<HashMap<String, AttributeValue>>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .with_context(|| format!("scanning {table}"))?;
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// When order `index` arrives, from the start of placing.
pub fn arrival(index: usize, rate_per_second: f64) -> Duration {
    Duration::from_secs_f64(index as f64 / rate_per_second.max(0.001))
}
