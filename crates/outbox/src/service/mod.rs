//! Use cases, generic over the store traits: what the Lambda handlers call.

mod orders;
mod rewards;

pub use orders::{get_order, idempotent_order_id, place_order, Placed};
pub use rewards::{decode_envelope, rewards_of, RewardsQueryError, RewardsService, SweepReport};
