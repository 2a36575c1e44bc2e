//! The settings a function reads from its environment at start-up: which tables and streams,
//! which pattern, the numeric settings, and the sentence an operator reads when one is wrong.

use std::ops::RangeInclusive;

use dynamodb_outbox::Source;
/// What a source variable names, for [`required_source`] and [`required_name`].
pub use dynamodb_outbox::SourceKind;

/// The variable naming the order service's table (its orders and its outbox).
pub const ORDERS_TABLE: &str = "ORDERS_TABLE";
/// The variable naming the rewards service's table (balances, ledgers, the consumer's progress).
pub const REWARDS_TABLE: &str = "REWARDS_TABLE";
/// The variable naming the Kinesis data stream of pattern 3 (self-read): the order API publishes
/// `OrderPlaced` to it, order-history and rewards read it.
pub const ORDER_EVENTS_STREAM: &str = "ORDER_EVENTS_STREAM";

/// A numeric setting read from the environment at start-up: its variable, its default, and the
/// range a value must fall in. A value outside the range stops the function at start-up with a
/// sentence naming both, instead of misbehaving (or panicking in time arithmetic) later.
/// `template.yaml` gives each matching parameter the same `MinValue`/`MaxValue` (a test checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub variable: &'static str,
    pub default: i64,
    pub min: i64,
    pub max: i64,
}

/// How long a processed outbox event is kept before DynamoDB's TTL may delete it: up to a year.
pub const OUTBOX_RETENTION_SECONDS: Setting = Setting::new(
    "OUTBOX_RETENTION_SECONDS",
    7 * 24 * 60 * 60,
    0..=365 * 24 * 60 * 60,
);
/// Customers applied at a time in one stream batch (and outbox items marked at once): a
/// 100-record batch of distinct customers goes in one wave of round trips
/// (docs/benchmarks.md), and the connections and CPU of a 128 MB function stay bounded.
pub const CONSUMER_CONCURRENCY: Setting = Setting::new("CONSUMER_CONCURRENCY", 100, 1..=256);
/// Age after which the sweeper redrives a pending event: up to 7 days (the stream keeps records
/// for 24 hours, so a longer grace only delays the redrive of what it dropped).
pub const SWEEPER_GRACE_SECONDS: Setting =
    Setting::new("SWEEPER_GRACE_SECONDS", 15 * 60, 0..=7 * 24 * 60 * 60);
/// Pending events one sweeper run reads, spread evenly over the pending index's shards.
pub const SWEEPER_BATCH_LIMIT: Setting = Setting::new("SWEEPER_BATCH_LIMIT", 1000, 1..=10_000);

/// The variable choosing which of the article's patterns a function of the reference application
/// runs: the same binary serves the outbox, CDC on the order table, and self-read.
pub const OUTBOX_PATTERN: &str = "OUTBOX_PATTERN";

/// How the order service's events reach the rewards consumer (read from [`OUTBOX_PATTERN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutboxPattern {
    /// Pattern 1: the order and an outbox event in one transaction, the outbox's stream.
    #[default]
    Outbox,
    /// Pattern 2: only the order item (with a pending marker); its INSERT on the table's stream
    /// is the event.
    Cdc,
    /// Pattern 3: the event published to a Kinesis stream, which the order service reads too.
    SelfRead,
    /// The outbox relayed to a broker: pattern 1's transaction, a relay publishing the event to
    /// an EventBridge bus, a rule delivering it to the rewards service's SQS queue (its inbox).
    Broker,
}

impl OutboxPattern {
    /// Every pattern with the value that names it.
    pub const ALL: [(OutboxPattern, &'static str); 4] = [
        (OutboxPattern::Outbox, "outbox"),
        (OutboxPattern::Cdc, "cdc"),
        (OutboxPattern::SelfRead, "self-read"),
        (OutboxPattern::Broker, "broker"),
    ];

    /// The value of [`OUTBOX_PATTERN`] naming this pattern.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(pattern, _)| *pattern == self)
            .map_or("outbox", |(_, name)| name)
    }

    /// The pattern from the environment; [`OutboxPattern::Outbox`] when unset.
    pub fn read() -> Result<Self, ConfigError> {
        Self::read_from(|name| std::env::var(name).ok())
    }

    /// The pattern from `lookup` (the environment, or a test's map).
    pub fn read_from(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let Some(value) = lookup(OUTBOX_PATTERN) else {
            return Ok(Self::default());
        };
        Self::ALL
            .iter()
            .find(|(_, name)| *name == value.trim())
            .map(|(pattern, _)| *pattern)
            .ok_or(ConfigError::UnknownPattern { value })
    }

    /// The pattern from the environment when `function` serves it; otherwise a start-up error
    /// that names the patterns it serves, so a function deployed with the wrong pattern fails
    /// closed instead of reading a source that is not there.
    pub fn read_served_by(function: &'static str, served: &[Self]) -> Result<Self, ConfigError> {
        Self::read()?.served_by(function, served)
    }

    /// `self` when `function` serves it (see [`OutboxPattern::read_served_by`]).
    pub fn served_by(self, function: &'static str, served: &[Self]) -> Result<Self, ConfigError> {
        if served.contains(&self) {
            return Ok(self);
        }
        Err(ConfigError::PatternNotServed {
            function,
            pattern: self.name(),
            served: served
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

pub const DEFAULT_RETENTION_SECONDS: i64 = OUTBOX_RETENTION_SECONDS.default;
pub const DEFAULT_CONCURRENCY: usize = CONSUMER_CONCURRENCY.default as usize;
pub const DEFAULT_GRACE_SECONDS: i64 = SWEEPER_GRACE_SECONDS.default;
pub const DEFAULT_SWEEP_LIMIT: usize = SWEEPER_BATCH_LIMIT.default as usize;

#[derive(thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set: it must name the DynamoDB table")]
    Missing(&'static str),
    #[error("environment variable {0} is not set: it must name the Kinesis data stream")]
    MissingStream(&'static str),
    #[error(
        "environment variable {variable} is {value:?}: it must be a whole number from {min} to {max}"
    )]
    OutOfRange {
        variable: &'static str,
        value: String,
        min: i64,
        max: i64,
    },
    #[error(
        "environment variable {variable} is {value:?}: it must be the name or the ARN of {what}"
    )]
    NotASource {
        variable: &'static str,
        value: String,
        what: &'static str,
    },
    #[error(
        "environment variable OUTBOX_PATTERN is {value:?}: it must be outbox (the default), cdc, self-read or broker"
    )]
    UnknownPattern { value: String },
    #[error("environment variable OUTBOX_PATTERN is {pattern}: {function} serves {served} only")]
    PatternNotServed {
        function: &'static str,
        pattern: &'static str,
        served: String,
    },
}

/// `main` returns this error when start-up fails, and Rust prints a returned error with `Debug`:
/// the sentence is what an operator reading the function's log needs, not the variant's name.
impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// The name of the Kinesis stream in `name` (pattern 3), read at start-up.
pub fn required_stream(name: &'static str) -> Result<String, ConfigError> {
    required(name).map_err(|_| ConfigError::MissingStream(name))
}

/// The table (`kind` [`SourceKind::Table`]) or Kinesis stream a consumer reads, from the
/// variable `name`: its name (in the function's own account and region) or its ARN, checked at
/// start-up. The value is returned as given: the engine's processor compares each record's
/// source with it ([`dynamodb_outbox::Processor::new`]).
pub fn required_source(name: &'static str, kind: SourceKind) -> Result<String, ConfigError> {
    let value = match kind {
        SourceKind::Table | SourceKind::SqsQueue => required(name)?,
        SourceKind::KinesisStream => required_stream(name)?,
    };
    source_from(name, kind, &value)?;
    Ok(value)
}

/// The table or Kinesis stream in the variable `name` (its name or its ARN, checked as
/// [`required_source`] checks it), as the source a consumer reads.
pub fn source(name: &'static str, kind: SourceKind) -> Result<Source, ConfigError> {
    source_from(name, kind, &required_source(name, kind)?)
}

/// The name of the table (`kind` [`SourceKind::Table`]) or Kinesis stream in the variable
/// `name`, which holds its name or its ARN (checked at start-up as [`required_source`] checks
/// it): what a function addresses it by in its DynamoDB or Kinesis calls, so one value serves
/// the functions that call the table or stream and the consumers that check its records. A
/// table or stream given by ARN is still called by its name, in the function's own account and
/// region (local servers, dynoxide among them, accept no ARN where a name goes).
pub fn required_name(name: &'static str, kind: SourceKind) -> Result<String, ConfigError> {
    let value = required_source(name, kind)?;
    Ok(source_name(kind, &value))
}

/// The name of the table or stream `source` names (by name or by ARN); a value that is neither
/// is returned as it is.
pub fn source_name(kind: SourceKind, source: &str) -> String {
    Source::parse(kind, source.trim())
        .map_or_else(|_| source.to_owned(), |source| source.name().to_owned())
}

/// `value` of the variable `name` as a source of `kind`, or the start-up error naming both.
pub fn source_from(
    name: &'static str,
    kind: SourceKind,
    value: &str,
) -> Result<Source, ConfigError> {
    Source::parse(kind, value.trim()).map_err(|_| ConfigError::NotASource {
        variable: name,
        value: value.to_owned(),
        what: match kind {
            SourceKind::Table => "a DynamoDB table",
            SourceKind::KinesisStream => "a Kinesis data stream",
            SourceKind::SqsQueue => "an SQS queue",
        },
    })
}

impl Setting {
    /// `variable`, `default` when unset, any value in `range` when set.
    const fn new(variable: &'static str, default: i64, range: RangeInclusive<i64>) -> Self {
        Self {
            variable,
            default,
            min: *range.start(),
            max: *range.end(),
        }
    }

    /// The setting's value from the environment, its default when unset.
    pub fn read<T: TryFrom<i64>>(&self) -> Result<T, ConfigError> {
        self.read_from(|name| std::env::var(name).ok())
    }

    /// The setting's value from `lookup` (the environment, or a test's map).
    pub fn read_from<T: TryFrom<i64>>(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<T, ConfigError> {
        let out_of_range = |value: String| ConfigError::OutOfRange {
            variable: self.variable,
            value,
            min: self.min,
            max: self.max,
        };
        let number = match lookup(self.variable) {
            None => self.default,
            Some(value) => match value.trim().parse::<i64>() {
                Ok(n) if (self.min..=self.max).contains(&n) => n,
                _ => return Err(out_of_range(value)),
            },
        };
        T::try_from(number).map_err(|_| out_of_range(number.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_outbox_unless_named_and_another_value_is_refused_with_the_choices() {
        assert_eq!(
            OutboxPattern::read_from(|_| None).unwrap(),
            OutboxPattern::Outbox
        );
        for (pattern, name) in OutboxPattern::ALL {
            let read = OutboxPattern::read_from(|_| Some(name.to_owned())).unwrap();
            assert_eq!((read, read.name()), (pattern, name));
        }
        let err = OutboxPattern::read_from(|_| Some("CDC2".to_owned())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable OUTBOX_PATTERN is \"CDC2\": it must be outbox (the default), cdc, self-read or broker"
        );
    }

    #[test]
    fn a_function_refuses_a_pattern_it_does_not_serve_by_name() {
        use OutboxPattern::*;
        assert_eq!(
            Cdc.served_by("stream-consumer", &[Outbox, Cdc]).unwrap(),
            Cdc
        );
        let err = SelfRead
            .served_by("stream-consumer", &[Outbox, Cdc])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable OUTBOX_PATTERN is self-read: stream-consumer serves outbox, cdc only"
        );
    }

    #[test]
    fn every_numeric_setting_out_of_range_is_refused_with_a_sentence_naming_it() {
        for setting in [
            OUTBOX_RETENTION_SECONDS,
            CONSUMER_CONCURRENCY,
            SWEEPER_GRACE_SECONDS,
            SWEEPER_BATCH_LIMIT,
        ] {
            for bad in ["1000000000000", "-1", "12abc", "", "9223372036854775808"] {
                let err = setting
                    .read_from::<i64>(|_| Some(bad.to_owned()))
                    .unwrap_err();
                assert_eq!(
                    err.to_string(),
                    format!(
                        "environment variable {} is {bad:?}: it must be a whole number from {} to {}",
                        setting.variable, setting.min, setting.max
                    )
                );
            }
            assert_eq!(setting.read_from::<i64>(|_| None).unwrap(), setting.default);
            let max = setting.max.to_string();
            assert_eq!(
                setting.read_from::<i64>(|_| Some(max.clone())).unwrap(),
                setting.max
            );
        }
    }

    #[test]
    fn a_source_is_a_name_or_an_arn_of_its_kind_and_anything_else_is_refused_naming_the_variable() {
        for good in [
            "outbox-dev-orders",
            "arn:aws:dynamodb:us-east-1:123456789012:table/outbox-dev-orders",
        ] {
            let source = source_from(ORDERS_TABLE, SourceKind::Table, good).unwrap();
            assert_eq!(source.name(), "outbox-dev-orders");
            assert_eq!(source_name(SourceKind::Table, good), "outbox-dev-orders");
        }
        for bad in [
            "arn:aws:dynamodb:us-east-1:123456789012:table/outbox-dev-orders/stream/2026",
            "arn:aws:kinesis:us-east-1:123456789012:stream/outbox-dev-orders",
            "arn:aws:dynamodb:us-east-1:12345:table/outbox-dev-orders",
            "orders table",
        ] {
            let err = source_from(ORDERS_TABLE, SourceKind::Table, bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("environment variable ORDERS_TABLE is {bad:?}: it must be the name or the ARN of a DynamoDB table")
            );
        }
        let err = source_from(
            ORDER_EVENTS_STREAM,
            SourceKind::KinesisStream,
            "arn:aws:dynamodb:us-east-1:123456789012:table/t",
        )
        .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("environment variable ORDER_EVENTS_STREAM is"));
        assert!(err.to_string().ends_with("a Kinesis data stream"));
    }

    #[test]
    fn a_missing_variable_is_reported_in_a_sentence_at_start_up() {
        let err: lambda_runtime::Error = required("OUTBOX_TEST_NEVER_SET").unwrap_err().into();
        assert_eq!(
            format!("{err:?}"),
            "environment variable OUTBOX_TEST_NEVER_SET is not set: it must name the DynamoDB table"
        );
    }
}
