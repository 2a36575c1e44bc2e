//! `make bench`: measured speed and cost of the outbox, with every comparison a ratio taken in the
//! same run (absolute times on a shared machine are noisy). The harness binary (`src/main.rs`)
//! builds one table from the sections of the modules below and writes `docs/benchmarks.md` and
//! `docs/consumer-latency.svg`; the criterion benches (`benches/handlers.rs`, `benches/consumer.rs`) measure handler
//! CPU ([`cpu`]). `make compare` is [`compare`], writing `docs/patterns.md`.

pub mod accounting;
pub mod capacity;
pub mod chart;
pub mod compare;
pub mod consumer;
pub mod cpu;
pub mod functions;
pub mod machine;
pub mod producer;
pub mod regions;
pub mod report;
pub mod size;
pub mod throughput;

/// The workspace root (this crate lives in `bench/`).
pub fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// The shared target directory: `CARGO_TARGET_DIR` when set, else `<root>/target`.
pub fn target_dir() -> std::path::PathBuf {
    let set = std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from);
    set.unwrap_or_else(|| workspace_root().join("target"))
}

/// `POST /orders` with `body` (and an `Idempotency-Key` when `key`) through the order-writer's
/// handler on `store`, as API Gateway delivers it: the answer, an error answered as the function
/// answers it.
pub async fn post_order<S: order_service::store::OrderStore>(
    store: &S,
    body: String,
    key: Option<&str>,
) -> anyhow::Result<aws_lambda_events::apigw::ApiGatewayV2httpResponse> {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    let request = devkit::demo::api_request("POST", "/orders", Some(body), &headers)?;
    let response = order_service::handlers::order_api::respond(store, &request, None).await;
    Ok(response.unwrap_or_else(|e| e.into_response()))
}

/// The body of a `POST /orders` of one line item.
pub fn order_body(customer: &str, quantity: i64, unit_price_cents: i64) -> String {
    let item = serde_json::json!({"sku": "SKU-1", "quantity": quantity, "unit_price_cents": unit_price_cents});
    serde_json::json!({"customer_id": customer, "currency": "USD", "items": [item]}).to_string()
}
