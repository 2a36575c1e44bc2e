//! `outboxctl`, the operator's command for a deployed outbox, as a library: its verbs, and what
//! it shares with the local tools that emulate the same Lambda behaviour.
//!
//! - [`show`]: `status` and `inspect`, read from the tables through the engine's read-only view.
//! - [`redrive`]: `redrive` and `sweep`, the deployed sweeper function invoked.
//! - [`replay_cmd`]: `replay` of a range a stream's mapping gave up on; [`replay`] for a Kinesis
//!   stream, [`ddb_stream`] for a DynamoDB stream (the Streams API, records in Lambda's shape).
//! - [`kinesis`]: a Kinesis record in Lambda's event shape; stream ARNs.
//! - [`filter`]: Lambda's event filtering (`FilterCriteria`), as a mapping applies it.
//! - [`invoke`]: the Lambda Invoke API, and [`signed`]: AWS JSON APIs signed with SigV4 from the
//!   usual credential chain; [`aws`]: the configuration, clients, and the question asked before
//!   writing off this machine.

pub mod aws;
pub mod ddb_stream;
pub mod filter;
pub mod invoke;
pub mod kinesis;
pub mod redrive;
pub mod replay;
pub mod replay_cmd;
pub mod show;
pub mod signed;

/// Whether `endpoint` is on this machine (localhost, 127.0.0.0/8, ::1): a server a tool may
/// write to without asking, unlike a real account's.
pub fn is_local_endpoint(endpoint: &str) -> bool {
    let Ok(uri) = endpoint.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
