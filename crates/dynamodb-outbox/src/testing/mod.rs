//! Tools for tests of consumers and of the engine (the `testing` feature): stores that crash,
//! fail or record on purpose, around any [`ConsumerStore`], and a look inside both stores.
//!
//! ```
//! use dynamodb_outbox::memory::MemoryStore;
//! use dynamodb_outbox::testing::{CrashPoint, Crashing};
//!
//! // A consumer process that dies after one effect in ten, before marking its event done; the
//! // same seed crashes at the same calls.
//! let store = Crashing::seeded(MemoryStore::new("ledger"), 42, 0.1, CrashPoint::BeforeDone);
//! # let _ = store;
//! ```

mod crashing;
mod inspect;
mod recording;

pub use crashing::{Crash, CrashPoint, Crashing};
pub use inspect::{create_tables, Inspect, WaitingItem};
pub use recording::{AppliedCommit, Fault, Recording};
