//! The one workload every pattern gets: the same orders, customers and amounts, by seed.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One order as a client sends it.
#[derive(Debug, Clone)]
pub struct PlannedOrder {
    pub customer: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

impl PlannedOrder {
    pub fn body(&self) -> String {
        crate::order_body(&self.customer, self.quantity, self.unit_price_cents)
    }
}

/// `orders` orders over `customers` customers, customer `k` (1-based) drawn with weight `1/k`
/// (Zipf, exponent 1): the first customer places about a seventh of 2,000 orders over 200
/// customers, most place a handful, as in commerce where a few accounts are hot.
pub fn zipf_orders(orders: usize, customers: usize, seed: u64) -> Vec<PlannedOrder> {
    let customers = customers.max(1);
    let weights: Vec<f64> = (1..=customers).map(|k| 1.0 / k as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = Vec::with_capacity(customers);
    let mut running = 0.0;
    for w in &weights {
        running += w / total;
        cumulative.push(running);
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..orders)
        .map(|_| {
            let draw: f64 = rng.random();
            let k = cumulative.partition_point(|c| *c < draw).min(customers - 1);
            PlannedOrder {
                customer: format!("cmp-c{}", k + 1),
                quantity: rng.random_range(1..=3),
                unit_price_cents: rng.random_range(1..=250) * 99,
            }
        })
        .collect()
}

/// How many orders the busiest customer places.
pub fn hottest_customer_orders(orders: &[PlannedOrder]) -> usize {
    let mut counts = std::collections::HashMap::new();
    for o in orders {
        *counts.entry(&o.customer).or_insert(0usize) += 1;
    }
    counts.values().copied().max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{hottest_customer_orders, zipf_orders};

    #[test]
    fn the_same_seed_gives_the_same_orders_and_the_first_customer_is_the_hottest() {
        let a = zipf_orders(2000, 200, 7);
        let b = zipf_orders(2000, 200, 7);
        assert_eq!(
            a.iter().map(|o| &o.customer).collect::<Vec<_>>(),
            b.iter().map(|o| &o.customer).collect::<Vec<_>>()
        );
        let first = a.iter().filter(|o| o.customer == "cmp-c1").count();
        assert_eq!(first, hottest_customer_orders(&a));
        // Weight 1/k over 200 customers: the first gets about 1/H(200) = 17 % of the orders.
        assert!((200..480).contains(&first), "customer 1 placed {first}");
    }
}
