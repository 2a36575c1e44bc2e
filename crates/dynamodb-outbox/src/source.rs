//! Where a consumer's records must come from. A stream record names its source by ARN
//! (`eventSourceARN`), and a table or stream of the same name may exist in any account and
//! region: a record is only the consumer's when the whole ARN (partition, region, account, name)
//! is the configured source's. A source configured by name is in the function's own account and
//! region ([`Home`]); one configured by ARN is where its ARN says.

use std::fmt;

/// The partition, region and account a resource lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Home {
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub partition: String,
    /// `us-east-1`, ...
    pub region: String,
    /// The account id.
    pub account: String,
}

impl Home {
    /// The place of an ARN: `arn:<partition>:<service>:<region>:<account>:<resource>`.
    pub fn of_arn(arn: &str) -> Option<Home> {
        Arn::parse(arn).map(|arn| arn.home)
    }

    /// A Lambda function's own place, from the ARN it was invoked by
    /// (`lambda_runtime::Context::invoked_function_arn`:
    /// `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`).
    pub fn of_function(invoked_function_arn: &str) -> Option<Home> {
        let arn = Arn::parse(invoked_function_arn)?;
        let name = arn.resource.strip_prefix("function:")?;
        (arn.service == "lambda" && !name.is_empty()).then_some(arn.home)
    }
}

impl fmt::Display for Home {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "account {} in {} ({})",
            self.account, self.region, self.partition
        )
    }
}

/// What kind of resource a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A DynamoDB table, whose stream the records come from.
    Table,
    /// A Kinesis data stream.
    KinesisStream,
    /// An SQS queue (standard or FIFO), read by [`crate::Processor::process_sqs`].
    SqsQueue,
}

impl SourceKind {
    fn service(self) -> &'static str {
        match self {
            SourceKind::Table => "dynamodb",
            SourceKind::KinesisStream => "kinesis",
            SourceKind::SqsQueue => "sqs",
        }
    }

    pub(crate) fn what(self) -> &'static str {
        match self {
            SourceKind::Table => "DynamoDB table",
            SourceKind::KinesisStream => "Kinesis data stream",
            SourceKind::SqsQueue => "SQS queue",
        }
    }

    /// DynamoDB: 3 to 255 of `a-z A-Z 0-9 _ - .`; Kinesis: 1 to 128 of the same; SQS: 1 to 80
    /// of `a-z A-Z 0-9 _ -`, a FIFO queue's ending in `.fifo` (counted in the 80).
    fn valid_name(self, name: &str) -> bool {
        let (min, max, dot) = match self {
            SourceKind::Table => (3, 255, true),
            SourceKind::KinesisStream => (1, 128, true),
            SourceKind::SqsQueue => (1, 80, false),
        };
        let stem = match self {
            SourceKind::SqsQueue => name.strip_suffix(".fifo").unwrap_or(name),
            _ => name,
        };
        (min..=max).contains(&name.len())
            && !stem.is_empty()
            && stem.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') || (dot && b == b'.')
            })
    }
}

/// A configured source: a table (whose stream is read), a Kinesis stream or an SQS queue, by
/// name or by ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    kind: SourceKind,
    name: String,
    home: Option<Home>,
}

/// A configured source that is neither a valid name nor a valid ARN of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is neither the name nor the ARN of a {}", kind.what())]
pub struct SourceError {
    value: String,
    kind: SourceKind,
}

impl Source {
    /// A DynamoDB table: its name, or its ARN (`arn:<partition>:dynamodb:<region>:<account>:table/<name>`).
    ///
    /// ```
    /// # use dynamodb_outbox::Source;
    /// let by_arn = Source::table("arn:aws:dynamodb:eu-west-1:123456789012:table/orders").unwrap();
    /// assert_eq!(by_arn.name(), "orders");
    /// assert_eq!(Source::table("orders").unwrap().name(), "orders");
    /// assert!(Source::table("arn:aws:kinesis:eu-west-1:123456789012:stream/orders").is_err());
    /// ```
    pub fn table(value: &str) -> Result<Source, SourceError> {
        Self::parse(SourceKind::Table, value)
    }

    /// A Kinesis data stream: its name, or its ARN
    /// (`arn:<partition>:kinesis:<region>:<account>:stream/<name>`).
    pub fn kinesis_stream(value: &str) -> Result<Source, SourceError> {
        Self::parse(SourceKind::KinesisStream, value)
    }

    /// An SQS queue: its name, or its ARN (`arn:<partition>:sqs:<region>:<account>:<name>`,
    /// what a queue's records carry as `eventSourceARN`). A FIFO queue's name ends in `.fifo`.
    ///
    /// ```
    /// # use dynamodb_outbox::Source;
    /// let inbox = Source::sqs_queue("arn:aws:sqs:eu-west-1:123456789012:ledger.fifo").unwrap();
    /// assert_eq!(inbox.name(), "ledger.fifo");
    /// assert!(Source::sqs_queue("arn:aws:sqs:eu-west-1:123456789012:a/b").is_err());
    /// ```
    pub fn sqs_queue(value: &str) -> Result<Source, SourceError> {
        Self::parse(SourceKind::SqsQueue, value)
    }

    /// A source of `kind` from its name or ARN.
    pub fn parse(kind: SourceKind, value: &str) -> Result<Source, SourceError> {
        let refused = || SourceError {
            value: value.to_owned(),
            kind,
        };
        if !value.starts_with("arn:") {
            return kind
                .valid_name(value)
                .then(|| Source {
                    kind,
                    name: value.to_owned(),
                    home: None,
                })
                .ok_or_else(refused);
        }
        let arn = Arn::parse(value).ok_or_else(refused)?;
        let prefix = match kind {
            SourceKind::Table => "table/",
            SourceKind::KinesisStream => "stream/",
            SourceKind::SqsQueue => "",
        };
        let name = arn.resource.strip_prefix(prefix).ok_or_else(refused)?;
        if arn.service != kind.service() || !kind.valid_name(name) {
            return Err(refused());
        }
        Ok(Source {
            kind,
            name: name.to_owned(),
            home: Some(arn.home),
        })
    }

    /// The table's or stream's name: what the function addresses it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the source is.
    pub(crate) fn kind(&self) -> SourceKind {
        self.kind
    }

    /// Whether a record whose `eventSourceARN` is `record_arn` comes from this source; a source
    /// configured by name is in `function` (the function's own place). Refused, with the reason:
    /// a missing or malformed ARN, another kind of source, another name, another partition,
    /// region or account, and a source by name when the function's place is unknown.
    pub fn admits(&self, record_arn: Option<&str>, function: Option<&Home>) -> Result<(), String> {
        let Some(record_arn) = record_arn.filter(|a| !a.is_empty()) else {
            return Err("the record names no source (no eventSourceARN)".to_owned());
        };
        let Some((home, name)) = self.record_source(record_arn) else {
            return Err(format!(
                "the record's source {record_arn:?} is not the ARN of a {}'s stream",
                self.kind.what()
            ));
        };
        let Some(expected) = self.home.as_ref().or(function) else {
            return Err(format!(
                "the record comes from {record_arn:?}, and the {} {:?} is configured by name \
                 while the function's account and region are unknown",
                self.kind.what(),
                self.name
            ));
        };
        if name != self.name || &home != expected {
            return Err(format!(
                "the record comes from {record_arn:?}, not from the {} {:?} of {expected}",
                self.kind.what(),
                self.name
            ));
        }
        Ok(())
    }

    /// The place and name of a record's source ARN of this kind: a table's stream
    /// (`...:table/<name>/stream/<label>`), a Kinesis stream (`...:stream/<name>`) or a queue
    /// (`...:<name>`).
    fn record_source(&self, record_arn: &str) -> Option<(Home, String)> {
        let arn = Arn::parse(record_arn)?;
        if arn.service != self.kind.service() {
            return None;
        }
        let name = match self.kind {
            SourceKind::Table => {
                let (table, label) = arn
                    .resource
                    .strip_prefix("table/")?
                    .split_once("/stream/")?;
                (!label.is_empty()).then_some(table)?
            }
            SourceKind::KinesisStream => arn.resource.strip_prefix("stream/")?,
            // A queue's records name the queue itself.
            SourceKind::SqsQueue => arn.resource,
        };
        self.kind
            .valid_name(name)
            .then(|| (arn.home, name.to_owned()))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.home {
            Some(home) => write!(f, "the {} {:?} of {home}", self.kind.what(), self.name),
            None => write!(f, "the {} {:?}", self.kind.what(), self.name),
        }
    }
}

/// An ARN's fields, each checked for the characters it may hold.
struct Arn<'a> {
    home: Home,
    service: &'a str,
    resource: &'a str,
}

impl<'a> Arn<'a> {
    fn parse(arn: &'a str) -> Option<Arn<'a>> {
        let mut fields = arn.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        )
        else {
            return None;
        };
        let lower = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        (lower(partition) && lower(service) && lower(region) && account_ok && !resource.is_empty())
            .then(|| Arn {
                home: Home {
                    partition: partition.to_owned(),
                    region: region.to_owned(),
                    account: account.to_owned(),
                },
                service,
                resource,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str =
        "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-11-26T00:00:00.000";

    fn home(region: &str, account: &str) -> Home {
        Home {
            partition: "aws".into(),
            region: region.into(),
            account: account.into(),
        }
    }

    #[test]
    fn a_source_by_name_admits_only_its_stream_in_the_functions_own_account_and_region() {
        let orders = Source::table("orders").unwrap();
        let own = home("us-east-1", "123456789012");
        assert_eq!(orders.admits(Some(STREAM), Some(&own)), Ok(()));
        for (arn, function) in [
            (STREAM, Some(home("us-east-1", "210987654321"))),
            (STREAM, Some(home("eu-west-1", "123456789012"))),
            (STREAM, None),
            (
                "arn:aws-cn:dynamodb:us-east-1:123456789012:table/orders/stream/x",
                Some(own.clone()),
            ),
            (
                "arn:aws:dynamodb:us-east-1:123456789012:table/other/stream/x",
                Some(own.clone()),
            ),
        ] {
            assert!(
                orders.admits(Some(arn), function.as_ref()).is_err(),
                "{arn}"
            );
        }
    }

    #[test]
    fn a_source_by_arn_admits_only_its_own_stream_wherever_the_function_runs() {
        let orders = Source::table("arn:aws:dynamodb:us-east-1:123456789012:table/orders").unwrap();
        assert_eq!(orders.admits(Some(STREAM), None), Ok(()));
        let elsewhere = home("eu-west-1", "210987654321");
        assert_eq!(orders.admits(Some(STREAM), Some(&elsewhere)), Ok(()));
        let foreign = "arn:aws:dynamodb:us-east-1:210987654321:table/orders/stream/x";
        assert!(orders.admits(Some(foreign), None).is_err());
    }

    #[test]
    fn a_missing_or_malformed_record_source_is_refused() {
        let own = home("us-east-1", "123456789012");
        let orders = Source::table("orders").unwrap();
        for arn in [
            None,
            Some(""),
            Some("orders"),
            Some("arn:aws:dynamodb:us-east-1:123456789012:table/orders"),
            Some("arn:aws:dynamodb:us-east-1:123456789012:table//stream/x"),
            Some("arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/"),
            Some("arn:aws:dynamodb:us-east-1:1234:table/orders/stream/x"),
            Some("arn:aws:kinesis:us-east-1:123456789012:stream/orders"),
        ] {
            assert!(orders.admits(arn, Some(&own)).is_err(), "{arn:?}");
        }
        let stream = Source::kinesis_stream("orders").unwrap();
        for arn in [
            "arn:aws:kinesis:us-east-1:123456789012:stream/",
            "arn:aws:kinesis:us-east-1:123456789012:stream/orders/consumer/x",
            "arn:aws:sqs:us-east-1:123456789012:stream/orders",
        ] {
            assert!(stream.admits(Some(arn), Some(&own)).is_err(), "{arn}");
        }
    }

    #[test]
    fn a_configured_value_is_a_valid_name_or_an_arn_of_its_kind() {
        for bad in [
            "",
            "ab",
            "has space",
            "arn:aws:dynamodb:us-east-1:123456789012:table/",
            "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/x",
            "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
            "arn:aws:dynamodb:us-east-1:12:table/orders",
        ] {
            assert!(Source::table(bad).is_err(), "{bad:?}");
        }
        assert!(Source::kinesis_stream("arn:aws:dynamodb:us-east-1:123456789012:table/t").is_err());
        let stream =
            Source::kinesis_stream("arn:aws:kinesis:eu-west-1:123456789012:stream/events").unwrap();
        assert_eq!(stream.name(), "events");
        assert_eq!(
            stream.home.as_ref(),
            Some(&home("eu-west-1", "123456789012"))
        );
    }

    #[test]
    fn a_queue_admits_only_records_of_its_own_arn() {
        let own = home("us-east-1", "123456789012");
        let inbox = Source::sqs_queue("ledger.fifo").unwrap();
        let arn = "arn:aws:sqs:us-east-1:123456789012:ledger.fifo";
        assert_eq!(inbox.admits(Some(arn), Some(&own)), Ok(()));
        for foreign in [
            "arn:aws:sqs:us-east-1:123456789012:ledger",
            "arn:aws:sqs:us-east-1:210987654321:ledger.fifo",
            "arn:aws:kinesis:us-east-1:123456789012:stream/ledger.fifo",
            "arn:aws:sqs:us-east-1:123456789012:.fifo",
        ] {
            assert!(
                inbox.admits(Some(foreign), Some(&own)).is_err(),
                "{foreign}"
            );
        }
        for bad in ["", "a.b", "a/b", ".fifo", &"q".repeat(81)] {
            assert!(Source::sqs_queue(bad).is_err(), "{bad:?}");
        }
        let by_arn = Source::sqs_queue(arn).unwrap();
        assert_eq!(by_arn.admits(Some(arn), None), Ok(()));
    }

    #[test]
    fn the_functions_place_is_read_from_its_invoked_arn() {
        assert_eq!(
            Home::of_function("arn:aws:lambda:us-east-1:012345678912:function:consumer:live"),
            Some(home("us-east-1", "012345678912"))
        );
        assert_eq!(Home::of_function(""), None);
        assert_eq!(
            Home::of_function("arn:aws:kinesis:us-east-1:012345678912:stream/s"),
            None
        );
    }
}
