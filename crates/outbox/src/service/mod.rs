//! Use cases, generic over the store traits: what the Lambda handlers call.

mod orders;
mod rewards;

pub use crate::domain::event::decode_envelope;
pub use orders::{get_order, idempotent_order_id, place_order, Placed};
pub use rewards::{
    rewards_of, Effect, RewardsQueryError, RewardsService, SweepProblem, SweepReport,
    PARKED_LOG_MESSAGE,
};
