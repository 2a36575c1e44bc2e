//! Each pattern's local stack, demo and chaos run beyond the outbox's (which are `stack`,
//! `demo` and `chaos`).

pub mod cdc;
pub mod self_read;
