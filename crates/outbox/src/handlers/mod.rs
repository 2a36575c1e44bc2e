//! Lambda entry points: each parses its event, calls the service, and maps the outcome to the
//! response Lambda expects. The binaries in `functions/` only wire these to the runtime.

pub mod http;
pub mod order_api;
pub mod rewards_api;
pub mod stream;
pub mod sweeper;
