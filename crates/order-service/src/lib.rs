//! The order service of the reference application: `POST /orders` validates an order and writes
//! it together with its `OrderPlaced` event in one `TransactWriteItems`, through the outbox
//! engine (`dynamodb-outbox`); `GET /orders/{id}` reads it back.
//!
//! Follow one order: [`handlers::order_api`] parses the request → [`service::place_order`]
//! validates it ([`domain::OrderRequest`]) and builds the order with its event
//! ([`domain::events::order_placed`]) → [`store::dynamodb::DynamoOrderStore`] commits both.
//!
//! Under pattern 2 (`OUTBOX_PATTERN=cdc`) [`store::cdc::CdcOrderStore`] writes the order item
//! alone, with the engine's pending marker, and [`changes`] is the adapter that turns the order
//! item's image back into the `OrderPlaced` event for its consumers.
//! Pattern 3 (self-read) is [`self_read`]: the API publishes to Kinesis and answers 202, and the
//! order-history consumer writes the order.

pub mod changes;
pub mod domain;
pub mod handlers;
pub mod schema;
pub mod self_read;
pub mod service;
pub mod store;
