//! What the IAM audit suites share: recording proxies in front of the local services, each
//! function's work run through them, and every request it made checked against the policies its
//! template gives it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use devkit::iam::{self, Access};
use devkit::proxy::{FaultPlan, FaultProxy};
use devkit::Template;
use lambda_runtime::{Context, LambdaEvent};
use order_service::handlers::order_api;
use order_service::store::OrderStore;
use outbox_tests::{order_body, post_order, sample_requests};
use rewards_service::handlers::rewards_api;
use rewards_service::store::dynamodb::DynamoRewardsStore;

/// The proxies every audited request goes through, and the names the template's resources have
/// here.
pub struct Audit<'a> {
    template: &'a Template,
    /// A recording proxy in front of each audited service, by the service's endpoint.
    proxies: BTreeMap<String, FaultProxy>,
    /// The local name of each of the template's resources, by logical id.
    names: BTreeMap<&'static str, String>,
}

impl<'a> Audit<'a> {
    /// An audit of `template`'s functions whose requests to each of `upstreams` go through a
    /// recording proxy, its tables named `orders` and `rewards` here.
    pub async fn start(
        template: &'a Template,
        upstreams: &[&str],
        orders: &str,
        rewards: &str,
    ) -> Self {
        let mut proxies = BTreeMap::new();
        for upstream in upstreams {
            let proxy = FaultProxy::start(upstream, FaultPlan::none())
                .await
                .expect("a recording proxy");
            proxies.insert((*upstream).to_owned(), proxy);
        }
        let names = BTreeMap::from([
            ("OrdersTable", orders.to_owned()),
            ("RewardsTable", rewards.to_owned()),
        ]);
        Self {
            template,
            proxies,
            names,
        }
    }

    /// The template's resource `logical_id` (a stream, a bus, a queue) is named `name` here.
    pub fn name(mut self, logical_id: &'static str, name: &str) -> Self {
        self.names.insert(logical_id, name.to_owned());
        self
    }

    /// The endpoint of the proxy in front of `upstream`, for the audited work's clients.
    pub fn via(&self, upstream: &str) -> &str {
        &self.proxies[upstream].endpoint
    }

    /// Runs `work` as `function` (its requests through the proxies) and fails, naming the
    /// function, the action and the resource, on any request its policies do not allow.
    pub async fn as_function<T>(&self, function: &str, work: impl Future<Output = T>) -> T {
        self.needs(function, work).await.0
    }

    /// As [`Audit::as_function`], and returns also what the function needed.
    pub async fn needs<T>(
        &self,
        function: &str,
        work: impl Future<Output = T>,
    ) -> (T, BTreeSet<Access>) {
        self.proxies.values().for_each(FaultProxy::reset_stats);
        let output = work.await;
        let accesses: BTreeSet<Access> = self
            .proxies
            .values()
            .flat_map(|p| p.stats().accesses)
            .collect();
        assert!(!accesses.is_empty(), "{function} made no request");
        let names = self
            .names
            .iter()
            .map(|(id, name)| (*id, name.as_str()))
            .collect();
        let refused = iam::refusals(self.template, function, &names, &accesses).unwrap();
        assert!(
            refused.is_empty(),
            "{} (it needed {accesses:?})",
            refused.join("; ")
        );
        (output, accesses)
    }
}

/// The order-writer's sample events (an order and its reads), and an order for each customer.
pub async fn write_orders<S: OrderStore>(store: &S, customers: &[&str]) {
    let mut requests = sample_requests("order-writer");
    for customer in customers {
        requests.push(post_order(&order_body(customer, &[("A", 1, 700)]), &[]));
    }
    for request in requests {
        let event = LambdaEvent::new(request, Context::default());
        order_api::handle(store, event).await.unwrap();
    }
}

/// The rewards API's sample requests, as the same function in every pattern.
pub async fn audit_rewards_api(audit: &Audit<'_>, client: aws_sdk_dynamodb::Client, rewards: &str) {
    let store = DynamoRewardsStore::new(client, rewards);
    audit
        .as_function("RewardsApiFunction", async {
            for request in sample_requests("rewards-api") {
                let event = LambdaEvent::new(request, Context::default());
                rewards_api::handle(&store, event).await.unwrap();
            }
        })
        .await;
}
