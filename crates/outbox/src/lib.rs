//! The transactional outbox on DynamoDB, for an order service and a rewards service.
//!
//! Follow one order through the crate:
//! [`handlers::order_api`] parses `POST /orders` → [`service::place_order`] validates it
//! ([`domain::OrderRequest`]) and builds the order with its [`domain::EventEnvelope`] →
//! [`store::dynamodb::DynamoOrderStore`] writes both in one `TransactWriteItems` → DynamoDB Streams
//! delivers the outbox INSERT → [`handlers::stream`] decodes the envelope → [`service::RewardsService`]
//! applies the reward (ledger entry + balance, one transaction) and marks the outbox item processed
//! with its TTL → DynamoDB expires it.

pub mod config;
pub mod domain;
pub mod handlers;
pub mod metrics;
pub mod schema;
pub mod service;
pub mod store;
