//! What tests and dev tools need beyond the API (the `testing` feature): stores that crash, fail
//! or record on purpose, around any [`crate::ConsumerStore`]; a look inside both stores; every
//! key shape and attribute name, the header of an outbox item, an outbox item built without a
//! table.
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

mod around;
mod crashing;
mod inspect;
mod recording;

pub use crate::delivery::Header;
pub use crate::item::outbox_item;
pub use crate::store::{Commit, CommitOnce, Committed, LastOut, Leaving, Parked, Step, StoreOps};
pub use crashing::{Crash, CrashPoint, Crashing};
pub use inspect::{create_tables, Inspect, WaitingItem};
pub use recording::{AppliedCommit, Fault, Recording};

/// Every key shape and attribute name the engine writes.
pub mod schema {
    pub use crate::schema::*;
}
