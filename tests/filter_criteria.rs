//! A consumer's name is written once, in its `impl Consumer`: the routes are derived from it (or,
//! where the producer cannot link its consumers, checked against it here), and every template's
//! `FilterCriteria` must be the pattern the routes give. A mapping whose filter names a consumer
//! the routes do not know (its events would never expire), or a routed consumer without a
//! mapping (its events would wait forever), fails here before a deploy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use devkit::template::Template;
use dynamodb_outbox::dynamodb::Routes;
use dynamodb_outbox::testing::schema;
use order_service::domain::events::{self, ORDER_PLACED};
use order_service::self_read::history::OrderHistoryConsumer;
use rewards_service::consumer::RewardsConsumer;
use serde_json::{json, Value};

fn template(relative: &str) -> (PathBuf, Template) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    let template = Template::load(&path).unwrap();
    (path, template)
}

/// Each DynamoDB-stream mapping of the template, by function: its filter patterns.
fn stream_filters(template: &Template) -> Vec<(String, Vec<Value>)> {
    let mut filters = Vec::new();
    for function in template.functions().unwrap() {
        if let Ok(source) = template.stream_source(&function.logical_id) {
            filters.push((function.logical_id, source.filter_patterns));
        }
    }
    filters
}

/// The consumer a pattern selects, where `path` (from `NewImage`) names it as a map key (an
/// outbox event's `outbox_after`) or as the one member of a set (an entity's `outbox_waiting`).
fn named_consumer(pattern: &Value, image: &str, kind: &str) -> Option<String> {
    let named = &pattern["dynamodb"]["NewImage"][image][kind];
    match named {
        Value::Object(map) if map.len() == 1 => map.keys().next().cloned(),
        Value::Array(set) if set.len() == 1 => set[0].as_str().map(str::to_owned),
        _ => None,
    }
}

/// Every mapping on the outbox table's stream has exactly the pattern `Routes::filter_pattern`
/// gives its consumer, and the consumers with a mapping are exactly the routed ones.
fn outbox_filters_follow(template: &Template, routes: &Routes) -> Result<(), String> {
    let mut mapped = BTreeSet::new();
    for (function, patterns) in stream_filters(template) {
        let [pattern] = patterns.as_slice() else {
            return Err(format!(
                "{function} has {} filter patterns, not its consumer's one",
                patterns.len()
            ));
        };
        let consumer = named_consumer(pattern, schema::AFTER, "M").ok_or_else(|| {
            format!(
                "{function}'s filter names no consumer under {}: {pattern}",
                schema::AFTER
            )
        })?;
        let expected: Value = serde_json::from_str(&Routes::filter_pattern(&consumer)).unwrap();
        if pattern != &expected {
            return Err(format!("{function}'s filter {pattern} is not the routes' pattern for {consumer:?}: {expected}"));
        }
        if !mapped.insert(consumer.clone()) {
            return Err(format!("two mappings for {consumer:?}"));
        }
    }
    let routed: BTreeSet<String> = routes.consumers().into_iter().map(str::to_owned).collect();
    if mapped != routed {
        return Err(format!(
            "the consumers with a mapping {mapped:?} are not the routed ones {routed:?}"
        ));
    }
    Ok(())
}

#[test]
fn the_order_services_routes_are_what_its_consumer_declares() {
    // The order service cannot link the rewards service (which links it), so it names its
    // consumers; they must be the ones the consumers' own declarations give.
    assert_eq!(
        events::routes(),
        Routes::new().consumer(&RewardsConsumer::new(""))
    );
}

#[test]
fn the_root_templates_filters_are_the_order_services_routes() {
    let (path, template) = template("template.yaml");
    let checked = outbox_filters_follow(&template, &events::routes());
    assert_eq!(checked, Ok(()), "{}", path.display());
}

#[test]
fn the_invoices_templates_filters_are_the_invoices_routes() {
    let (path, template) = template("examples/invoices/template.yaml");
    let checked = outbox_filters_follow(&template, &invoices_example::routes());
    assert_eq!(checked, Ok(()), "{}", path.display());
    // Its one binary serves the consumer its function names (`CONSUMER`): the one the
    // mapping's filter passes the events of.
    for (function, patterns) in stream_filters(&template) {
        let serves = template.function_environment(&function).unwrap()["CONSUMER"].clone();
        let filtered = named_consumer(&patterns[0], schema::AFTER, "M");
        assert_eq!(
            serves.as_str(),
            filtered.as_deref(),
            "{}: {function}",
            path.display()
        );
    }
}

/// Pattern 2 routes an order's own INSERT through its pending marker (`outbox_waiting`, the
/// consumers of `OrderPlaced`): one mapping per consumer, selecting the orders waiting for it.
#[test]
fn the_cdc_templates_filters_are_the_order_services_routes() {
    let (path, template) = template("patterns/cdc/template.yaml");
    let routes = events::routes();
    let mut mapped = BTreeSet::new();
    for (function, patterns) in stream_filters(&template) {
        let [pattern] = patterns.as_slice() else {
            panic!("{function} has {} filter patterns", patterns.len());
        };
        let consumer = named_consumer(pattern, schema::WAITING_CONSUMERS, "SS")
            .unwrap_or_else(|| panic!("{function}'s filter names no consumer: {pattern}"));
        let expected = json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {
            "entity": {"S": [order_service::schema::ENTITY_ORDER]},
            (schema::WAITING_CONSUMERS): {"SS": [consumer]},
        }}});
        assert_eq!(pattern, &expected, "{}: {function}", path.display());
        mapped.insert(consumer);
    }
    let routed: BTreeSet<String> = routes.consumers_of(ORDER_PLACED).iter().cloned().collect();
    assert_eq!(mapped, routed, "{}", path.display());
}

/// Pattern 3 has no routing (each consumer reads the whole Kinesis stream): each mapping's
/// filter must pass exactly the event types its function's consumer takes.
#[test]
fn the_self_read_templates_filters_pass_the_types_each_consumer_takes() {
    let (path, template) = template("patterns/self-read/template.yaml");
    // A consumer's routes on a stream of its own: the types it takes.
    let consumers = [
        (
            "rewards-kinesis-consumer",
            Routes::new().consumer(&RewardsConsumer::new("")),
        ),
        (
            "order-history",
            Routes::new().consumer(&OrderHistoryConsumer::new("")),
        ),
    ];
    let mut checked = 0;
    for function in template.functions().unwrap() {
        let Ok(source) = template.kinesis_source(&function.logical_id) else {
            continue;
        };
        let (_, takes) = consumers
            .iter()
            .find(|(binary, _)| *binary == function.binary)
            .unwrap_or_else(|| {
                panic!(
                    "{}: {} reads Kinesis with no known consumer",
                    path.display(),
                    function.binary
                )
            });
        let [pattern] = source.filter_patterns.as_slice() else {
            panic!(
                "{}: {} has {} filter patterns",
                path.display(),
                function.logical_id,
                source.filter_patterns.len()
            );
        };
        let name = takes.consumers()[0];
        let passed = pattern["data"]["event_type"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let passed = passed.iter().filter_map(Value::as_str);
        let filtered = passed.fold(Routes::new(), |routes, t| routes.route(t, &[name]));
        assert_eq!(
            &filtered,
            takes,
            "{}: {}",
            path.display(),
            function.logical_id
        );
        checked += 1;
    }
    assert_eq!(
        checked,
        consumers.len(),
        "every consumer's mapping was checked"
    );
}

/// The check is not vacuous: a template whose filter names a consumer the routes do not know,
/// or that lacks a routed consumer's mapping, or whose filter lets other events through, fails.
#[test]
fn a_template_that_disagrees_with_the_routes_fails_the_check() {
    let (path, _) = template("template.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let rewards = r#""outbox_after": {"M": {"rewards": {"N": [{"exists": true}]}}}"#;
    assert!(
        text.contains(rewards),
        "the root template's filter is where this test expects"
    );
    let misnamed = Template::parse(&text.replace(r#"{"rewards":"#, r#"{"reward":"#)).unwrap();
    let widened = Template::parse(&text.replace(r#""eventName": ["INSERT"], "#, "")).unwrap();
    let routes = events::routes();
    for wrong in [misnamed, widened] {
        assert!(outbox_filters_follow(&wrong, &routes).is_err());
    }
    let unmapped = routes.route("OrderCancelled", &["refunds"]);
    let err = outbox_filters_follow(&Template::parse(&text).unwrap(), &unmapped).unwrap_err();
    assert!(err.contains("refunds"), "{err}");
}
