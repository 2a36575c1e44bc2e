//! The rewards service of the reference application, on the outbox engine (`dynamodb-outbox`):
//!
//! - [`consumer::RewardsConsumer`] turns an `OrderPlaced` event into its effect (the order's
//!   reward record, the ledger line, the balance); the engine commits it with the consumer's
//!   progress, so each order is credited exactly once, one customer's orders in order;
//! - [`handlers::stream`] runs it over DynamoDB stream batches, [`handlers::sweeper`] over the
//!   events the stream did not deliver (and the parked ones, on request);
//! - [`handlers::rewards_api`] serves `GET /customers/{id}/rewards` from [`store`].

pub mod consumer;
pub mod domain;
pub mod handlers;
pub mod schema;
pub mod service;
pub mod store;
