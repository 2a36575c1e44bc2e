//! The prices the monthly figures use, each with where it was read and when. No live price look-up
//! is possible here: these are stated, not fetched, and a reader should check them.

/// us-east-1, on-demand capacity, after the 1 November 2024 reduction.
pub const DYNAMODB_WRU_PER_MILLION: f64 = 0.625;
pub const DYNAMODB_RRU_PER_MILLION: f64 = 0.125;
/// Standard table class, per GB-month (the first 25 GB a month are free; not subtracted here).
pub const DYNAMODB_STORAGE_GB_MONTH: f64 = 0.25;
/// Kinesis Data Streams, provisioned mode (the self-read template's `ShardCount`), us-east-1.
pub const KINESIS_SHARD_HOUR: f64 = 0.015;
pub const KINESIS_PUT_UNITS_PER_MILLION: f64 = 0.014;
pub const KINESIS_PUT_UNIT_BYTES: u64 = 25 * 1024;

/// EventBridge, custom events put on an event bus, per million (each 64 KB chunk of an entry
/// is one event).
pub const EVENTBRIDGE_EVENTS_PER_MILLION: f64 = 1.00;
/// SQS standard queue requests, per million (each 64 KB chunk of a request is one; the first
/// million a month are free, not subtracted here).
pub const SQS_REQUESTS_PER_MILLION: f64 = 0.40;

pub const HOURS_PER_MONTH: f64 = 730.0;
pub const DAYS_PER_MONTH: f64 = HOURS_PER_MONTH / 24.0;

/// Where each price comes from, for the document.
pub const SOURCES: &str = "\
| price (us-east-1) | figure used | source, and as of |
| --- | --- | --- |
| DynamoDB on-demand write request unit | $0.625 per million | AWS's on-demand price after its 1 November 2024 reduction of 50%, as quoted (\"Write Request Units (WRU): $0.625 per million\", US East) by airbyte.com/data-engineering-resources/dynamodb-pricing, dated 21 July 2025; AWS's own page aws.amazon.com/dynamodb/pricing/on-demand/ defines the units (1 WRU = one write of up to 1 KB, transactional writes 2 units per KB) |
| DynamoDB on-demand read request unit | $0.125 per million | same source and date (1 RRU = one strongly consistent read of up to 4 KB, half for eventually consistent, 2 for transactional) |
| DynamoDB storage, Standard table class | $0.25 per GB-month | AWS's long-standing list price (first 25 GB free); not re-read from a dated copy here: check it |
| Kinesis Data Streams, provisioned: shard-hour | $0.015 | c3x.dev/resources/aws/aws_kinesis_stream (stored copy, undated), which agrees with AWS's list price; check aws.amazon.com/kinesis/data-streams/pricing/ |
| Kinesis Data Streams, provisioned: PUT payload unit (25 KB) | $0.014 per million | AWS's list price as published on aws.amazon.com/kinesis/data-streams/pricing/ (the stored copy of that page here shows the unit's definition, not the figure): check it |
| EventBridge custom events (64 KB chunks) | $1.00 per million | AWS's long-standing list price for events put on a bus (aws.amazon.com/eventbridge/pricing/); not re-read from a dated copy here: check it |
| SQS standard queue requests (64 KB chunks) | $0.40 per million | AWS's long-standing list price after the first million a month (aws.amazon.com/sqs/pricing/); not re-read from a dated copy here: check it. The rule's delivery to the queue is one request, billed to the queue's owner |";
