//! The order service's Lambda entry points; `functions/order-writer` wires them to the runtime.

pub mod order_api;
