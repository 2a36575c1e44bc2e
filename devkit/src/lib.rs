//! Local development kit: everything that runs the project on one machine and never ships in a
//! Lambda binary. The embedded DynamoDB ([`local`]), the tables and stream settings read from
//! `template.yaml` ([`template`]), and the local event source mapping `sam local` lacks
//! ([`mapping`]), over a table's stream ([`stream`], [`trigger`]) or, for pattern 3, a Kinesis
//! stream on the local Kinesis (kinesalite, [`kinesis`], [`kinesis_trigger`]).

pub mod chaos;
pub mod child_server;
pub mod demo;
pub mod expected;
pub mod iam;
pub mod invariants;
pub mod invoke;
pub mod kinesis;
pub mod kinesis_trigger;
pub mod lambda_api;
pub mod local;
pub mod mapping;
pub mod metrics;
pub mod moto;
pub mod pattern;
pub mod patterns;
pub mod proxy;
pub mod runtime_api;
pub mod samples;
pub mod serve;
pub mod smoke;
pub mod stack;
pub mod stream;
pub mod template;
pub mod template_copies;
pub mod trigger;

/// An item as the SDK reads it.
pub type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

pub use local::{LocalDynamo, Tables};
pub use outboxctl::filter;
pub use pattern::Pattern;
pub use stack::Stack;
pub use stream::StreamClient;
pub use template::Template;
pub use trigger::{Invoke, Trigger, TriggerStats};
