//! `outboxctl`, the operator's command for a deployed outbox, as a library: what it shares with
//! the local tools that emulate the same Lambda behaviour.
//!
//! - [`replay`]: the records of a range a Kinesis event source mapping gave up on, read back from
//!   the stream and shaped as the event the function receives.
//! - [`kinesis`]: a Kinesis record in Lambda's event shape; stream ARNs.
//! - [`filter`]: Lambda's event filtering (`FilterCriteria`), as a mapping applies it.
//! - [`invoke`]: the Lambda Invoke API, and [`signed`]: AWS JSON APIs signed with SigV4 from the
//!   usual credential chain.

pub mod filter;
pub mod invoke;
pub mod kinesis;
pub mod replay;
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
