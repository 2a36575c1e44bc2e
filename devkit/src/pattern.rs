//! The article's three patterns, each with its own SAM template: the outbox in the root
//! `template.yaml` (pattern 1), CDC on the order table in `patterns/cdc/` (pattern 2), self-read
//! through Kinesis in `patterns/self-read/` (pattern 3); and a fourth deployment, pattern 1's
//! outbox relayed through an EventBridge bus to the rewards service's SQS queue, in
//! `patterns/broker/`. The dev tools load a pattern's tables, mappings and settings from its
//! template, as `sam deploy` would.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use service_runtime::config::OutboxPattern;

/// Which pattern a tool runs (`--pattern outbox|cdc|self-read|broker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pattern {
    /// Pattern 1: the transactional outbox.
    #[default]
    Outbox,
    /// Pattern 2: original event handling, CDC on the order table.
    Cdc,
    /// Pattern 3: self-read through a Kinesis stream.
    SelfRead,
    /// Pattern 1 relayed to a broker: EventBridge, then an SQS queue read by the rewards inbox.
    Broker,
}

impl Pattern {
    /// The article's three patterns, in its order.
    pub const ALL: [Pattern; 3] = [Pattern::Outbox, Pattern::Cdc, Pattern::SelfRead];
    /// Every deployment: the article's patterns and the outbox relayed to a broker.
    pub const DEPLOYMENTS: [Pattern; 4] = [
        Pattern::Outbox,
        Pattern::Cdc,
        Pattern::SelfRead,
        Pattern::Broker,
    ];

    /// The name `--pattern`, `PATTERN=` and `OUTBOX_PATTERN` use.
    pub fn name(self) -> &'static str {
        self.runtime().name()
    }

    /// The functions' own setting for this pattern.
    pub fn runtime(self) -> OutboxPattern {
        match self {
            Pattern::Outbox => OutboxPattern::Outbox,
            Pattern::Cdc => OutboxPattern::Cdc,
            Pattern::SelfRead => OutboxPattern::SelfRead,
            Pattern::Broker => OutboxPattern::Broker,
        }
    }

    /// The pattern's SAM template ([`crate::template::repo_path`]).
    pub fn template_path(self) -> PathBuf {
        match self {
            Pattern::Outbox => crate::template::default_path(),
            other => crate::template::repo_path(&format!("patterns/{other}/template.yaml")),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Pattern {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Pattern::DEPLOYMENTS
            .into_iter()
            .find(|pattern| pattern.name() == value)
            .ok_or_else(|| {
                format!("unknown pattern {value:?}: use outbox, cdc, self-read or broker")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_reads_back_from_its_name_and_others_are_refused() {
        for pattern in Pattern::DEPLOYMENTS {
            assert_eq!(pattern.name().parse::<Pattern>(), Ok(pattern));
            assert!(pattern.template_path().exists(), "{pattern}");
        }
        assert!("CDC"
            .parse::<Pattern>()
            .unwrap_err()
            .contains("outbox, cdc, self-read or broker"));
    }
}
