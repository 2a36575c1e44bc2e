//! The rewards service's Lambda entry points; the binaries in `functions/` wire them to the
//! runtime.

pub mod kinesis;
pub mod rewards_api;
pub mod stream;
pub mod sweeper;
