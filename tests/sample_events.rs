//! Every file in `events/` is what `sam local invoke -e` would send: each one deserializes into
//! its handler's real input type and is handled against the local DynamoDB (and, for pattern 3,
//! kinesalite) as expected; the environment files cover every function of every template.

use std::path::{Path, PathBuf};

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::kinesis::KinesisEvent;
// What each sample must get comes from devkit's one table, which `make smoke-arm64` checks the
// arm64 bootstraps against too.
use devkit::expected::{
    CDC_BALANCES, CDC_STREAM, HTTP, REDRIVE, SELF_READ_BALANCES, SELF_READ_GET, SELF_READ_HTTP,
    SELF_READ_KINESIS, SELF_READ_REDRIVE, STREAM, STREAM_BALANCES, SWEEP,
};
use devkit::patterns::self_read::{SelfReadStack, ORDER_HISTORY_FUNCTION};
use lambda_runtime::{Context, LambdaEvent};
use order_service::self_read::history;
use outbox_tests::*;
use rewards_service::handlers::{kinesis as rewards_kinesis, stream, sweeper};
use service_runtime::metrics::capture;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read<T: serde::de::DeserializeOwned>(path: &str) -> T {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path} is not the handler's input type: {e}"))
}

fn all_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all_files(&path, out);
        } else {
            out.push(
                path.strip_prefix(root())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
}

const OTHER: &[&str] = &[SWEEP, "events/env.json", devkit::samples::WATCH_ENV_PATH];

/// The patterns' own environment files (`devkit::samples::env_paths`).
const PATTERNS: [devkit::Pattern; 2] = [devkit::Pattern::Cdc, devkit::Pattern::SelfRead];

#[tokio::test]
async fn every_sample_event_deserializes_and_is_handled() {
    let stack = stack().await;
    for (path, status) in HTTP {
        let req: ApiGatewayV2httpRequest = read(path);
        let r = if path.contains("rewards-api") {
            call_rewards(&stack, req).await
        } else {
            call_orders(&stack, req).await
        };
        assert_eq!(r.status, *status, "{path}: {:?}", r.json);
    }

    let service = stack.service();
    for (path, applied, duplicates, ignored, parked, failures) in STREAM {
        let mut event: Event = read(path);
        // `sam local invoke` and `cargo lambda invoke` run the sample against the environment
        // files' table: the consumer accepts records of that table's stream only, so that is
        // the table the samples name, and so are the records `make trigger` reads from
        // `make ddb`'s stream, wherever the emulator says the function runs (`sam local`: an
        // account of its own; `cargo lambda`: none).
        let env: serde_json::Value = read("events/env.json");
        let table = env["StreamConsumerFunction"]["ORDERS_TABLE"]
            .as_str()
            .unwrap();
        let source = dynamodb_outbox::Source::table(table).unwrap();
        let sam_local = dynamodb_outbox::Home::of_function(devkit::samples::SAM_LOCAL_FUNCTION_ARN);
        let embedded_stream = stack
            .dynamo
            .is_embedded()
            .then_some(&stack.tables.orders_stream_arn);
        for record in &event.records {
            let arn = record.event_source_arn.as_deref();
            for function in [sam_local.as_ref(), None] {
                assert_eq!(source.admits(arn, function), Ok(()), "{path}: {arn:?}");
                if let Some(stream) = embedded_stream {
                    assert_eq!(source.admits(Some(stream), function), Ok(()), "{stream}");
                }
            }
        }
        // This run's table is that one on the embedded server, and carries a suffix on a shared
        // one (AWS_ENDPOINT_URL): the records are pointed at this run's stream.
        for record in &mut event.records {
            record.event_source_arn = Some(stack.tables.orders_stream_arn.clone());
        }
        let outcome = service.process_stream(&event.records).await;
        assert_counts!(
            outcome,
            [
                applied = *applied,
                duplicates = *duplicates,
                ignored = *ignored,
                parked = *parked,
                failures = *failures
            ],
            "{path}"
        );
        // The function's entry point with the same batch (a redelivery): nothing fails.
        let response = stream::handle(&service, LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
        assert_eq!(response.batch_item_failures.len(), 0, "{path}");
    }
    assert_balances(&stack, STREAM_BALANCES).await;

    let scheduled: serde_json::Value = read(OTHER[0]);
    let report = sweep_with(&stack, scheduled).await;
    assert_eq!(
        report.failed, 0,
        "the orders placed above are swept without failure: {report:?}"
    );
    let (redrive_file, found, applied, parked) = REDRIVE;
    let redrive: serde_json::Value = read(redrive_file);
    let report = sweep_with(&stack, redrive).await;
    assert_counts!(
        report,
        [found = found, applied = applied, parked = parked],
        "c-14's poison sample, parked by the consumer above, is read back and still poison"
    );
}

/// Each customer's points and ledger lines as the samples' expectations say.
async fn assert_balances(stack: &Stack, expected: &[(&str, i64, usize)]) {
    for (customer, points, ledger) in expected {
        assert_eq!(
            balance(stack, customer).await,
            (*points, *ledger),
            "{customer}"
        );
    }
}

#[tokio::test]
async fn the_cdc_sample_batch_is_handled_by_the_pattern_2_consumer() {
    let stack = devkit::Stack::start_pattern(devkit::Pattern::Cdc)
        .await
        .unwrap();
    let (path, applied, duplicates) = CDC_STREAM;
    let mut event: Event = read(path);
    for record in &mut event.records {
        record.event_source_arn = Some(stack.tables.orders_stream_arn.clone());
    }
    let service = stack.service();
    let outcome = service
        .process_changes(
            &event.records,
            order_service::changes::order_placed_from_image,
        )
        .await;
    assert_counts!(
        outcome,
        [applied = applied, duplicates = duplicates, failures = 0],
        "{path}"
    );
    let response =
        stream::handle_order_changes(&service, LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
    assert_eq!(response.batch_item_failures.len(), 0, "{path}");
    assert_balances(&stack, CDC_BALANCES).await;
}

#[tokio::test]
async fn the_self_read_samples_are_answered_by_the_order_publisher_and_handled_by_both_consumers() {
    let Some(stack) = SelfReadStack::start_or_skip("sample_events: pattern 3's samples")
        .await
        .expect("the self-read stack (kinesalite and the embedded DynamoDB)")
    else {
        return;
    };
    let publisher = stack.publisher();
    for (path, status) in SELF_READ_HTTP {
        let r = reply(stack.call(&publisher, read(path)).await);
        assert_eq!(r.status, *status, "{path}: {:?}", r.json);
    }
    let env: serde_json::Value = read(
        devkit::samples::env_paths(devkit::Pattern::SelfRead)
            .unwrap()
            .0,
    );
    for (function, path, applied, duplicates) in SELF_READ_KINESIS {
        let function = *function;
        let mut event: KinesisEvent = read(path);
        // `sam local invoke` runs the sample with the pattern's env.json: the consumers accept
        // records of that stream only, so that is the stream the samples name, and kinesalite's
        // stream of that name, wherever the emulator says the function runs.
        let stream = env[function][service_runtime::config::ORDER_EVENTS_STREAM]
            .as_str()
            .unwrap();
        let source = dynamodb_outbox::Source::kinesis_stream(stream).unwrap();
        let sam_local = dynamodb_outbox::Home::of_function(devkit::samples::SAM_LOCAL_FUNCTION_ARN);
        for record in &mut event.records {
            let arn = record.event_source_arn.as_deref();
            for function in [sam_local.as_ref(), None] {
                assert_eq!(source.admits(arn, function), Ok(()), "{path}: {arn:?}");
                assert_eq!(
                    source.admits(Some(&stack.stream.arn), function),
                    Ok(()),
                    "{}",
                    stack.stream.arn
                );
            }
            record.event_source_arn = Some(stack.stream.arn.clone());
        }
        let records = event.records.clone();
        let invocation = LambdaEvent::new(event, Context::default());
        let (outcome, (response, lines)) = if function == ORDER_HISTORY_FUNCTION {
            let processor = stack.history_processor();
            let outcome = processor.process_kinesis(&records).await;
            (
                outcome,
                capture(history::handle(&processor, invocation)).await,
            )
        } else {
            let processor = stack.rewards_processor();
            let outcome = processor.process_kinesis(&records).await;
            (
                outcome,
                capture(rewards_kinesis::handle(&processor, invocation)).await,
            )
        };
        let response = response.unwrap();
        assert_counts!(
            outcome,
            [applied = *applied, duplicates = *duplicates, failures = 0],
            "{path}"
        );
        // The function's entry point with the same batch (a redelivery): nothing fails, and
        // its metrics count every record a duplicate under the function's own name.
        assert_eq!(response.batch_item_failures.len(), 0, "{path}");
        let metrics =
            devkit::metrics::MetricsSummary::from_lines(lines.iter().map(String::as_str)).unwrap();
        let dimension = if function == ORDER_HISTORY_FUNCTION {
            service_runtime::metrics::ORDER_HISTORY
        } else {
            service_runtime::metrics::STREAM_CONSUMER
        };
        assert_eq!(
            metrics.count(dimension, service_runtime::metrics::DUPLICATES),
            (applied + duplicates) as f64,
            "{path}"
        );
    }
    let (get, status, customer) = SELF_READ_GET;
    let after = reply(stack.call(&publisher, read(get)).await);
    assert_eq!(
        after.status, status,
        "{get} after order-history: {:?}",
        after.json
    );
    assert_eq!(after.json["customer_id"], customer);
    for (customer, points, ledger) in SELF_READ_BALANCES {
        let page = rewards_service::service::rewards_of(&stack.rewards, customer, Some(10), None)
            .await
            .unwrap();
        assert_eq!(
            (page.points, page.entries.len()),
            (*points, *ledger),
            "{customer}"
        );
    }
    let (redrive_file, found, applied, parked) = SELF_READ_REDRIVE;
    let report = sweeper::handle(
        &stack.sweeper(100),
        LambdaEvent::new(read(redrive_file), Context::default()),
    )
    .await
    .unwrap();
    assert_counts!(
        report,
        [found = found, applied = applied, parked = parked],
        "pattern 3's redrive after the samples"
    );
}

#[test]
fn the_env_vars_file_covers_every_function_variable_of_the_template() {
    let env: serde_json::Value = read(OTHER[1]);
    let template = devkit::Template::load_default().unwrap();
    let functions = template.functions().unwrap();
    assert_eq!(functions.len(), 4, "{functions:?}");
    let keys: Vec<&String> = env.as_object().unwrap().keys().collect();
    let ids: Vec<&String> = functions.iter().map(|f| &f.logical_id).collect();
    assert_eq!(
        keys.len(),
        ids.len(),
        "events/env.json has a key per function: {keys:?} vs {ids:?}"
    );
    for function in functions.iter().map(|f| f.logical_id.as_str()) {
        for (name, _) in template.function_environment(function).unwrap() {
            assert!(
                env[function][&name].is_string(),
                "{function}.{name} missing from events/env.json"
            );
        }
    }
}

/// Each pattern template's functions, in the pattern's own env.json (their ids clash with the
/// root template's, with other values) and local.env (one environment for all its functions).
#[test]
fn each_patterns_env_files_cover_every_function_variable_of_its_template() {
    for pattern in PATTERNS {
        let (env_json, local_env) = devkit::samples::env_paths(pattern).unwrap();
        let env: serde_json::Value = read(env_json);
        let template = devkit::Template::load(&pattern.template_path()).unwrap();
        let functions = template.functions().unwrap();
        let keys: Vec<&String> = env.as_object().unwrap().keys().collect();
        assert_eq!(
            keys.len(),
            functions.len(),
            "{pattern}: {env_json}: {keys:?}"
        );
        let text = std::fs::read_to_string(root().join(local_env)).unwrap();
        let watch: std::collections::BTreeMap<&str, &str> = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| line.split_once('=').expect("KEY=VALUE"))
            .collect();
        for function in functions.iter().map(|f| f.logical_id.as_str()) {
            for (name, value) in template.function_environment(function).unwrap() {
                let expected = devkit::samples::local_source(
                    &name,
                    &value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned),
                );
                assert_eq!(
                    env[function][&name].as_str(),
                    Some(expected.as_str()),
                    "{pattern}: {function}.{name} in {env_json}"
                );
                assert_eq!(
                    watch.get(name.as_str()),
                    Some(&expected.as_str()),
                    "{pattern}: {name} in {local_env}"
                );
            }
            if template
                .function_environment(function)
                .unwrap()
                .contains_key(service_runtime::config::ORDER_EVENTS_STREAM)
            {
                assert!(
                    env[function]["AWS_ENDPOINT_URL_KINESIS"].is_string(),
                    "{pattern}: {function} reads the stream: {env_json} points it at make kinesis"
                );
            }
        }
        assert_eq!(
            std::fs::read_to_string(root().join(env_json)).unwrap(),
            serde_json::to_string_pretty(&devkit::samples::env_vars(&template).unwrap()).unwrap()
                + "\n",
            "{env_json} is stale: run `make events`"
        );
        assert_eq!(
            text,
            devkit::samples::watch_env(&template).unwrap(),
            "{local_env} is stale: run `make events`"
        );
    }
}

#[test]
fn every_file_in_events_is_covered_and_matches_what_make_events_generates() {
    let mut files = Vec::new();
    all_files(&root().join("events"), &mut files);
    let covered: Vec<&str> = HTTP
        .iter()
        .map(|h| h.0)
        .chain(STREAM.iter().map(|s| s.0))
        .chain([CDC_STREAM.0])
        .chain(SELF_READ_HTTP.iter().map(|h| h.0))
        .chain(SELF_READ_KINESIS.iter().map(|k| k.1))
        .chain(OTHER.iter().copied())
        .chain([REDRIVE.0])
        .chain(PATTERNS.iter().flat_map(|p| {
            let (env_json, local_env) = devkit::samples::env_paths(*p).unwrap();
            [env_json, local_env]
        }))
        .collect();
    for file in &files {
        assert!(
            covered.contains(&file.as_str()),
            "{file} is not handled by any test"
        );
    }
    let template = devkit::Template::load_default().unwrap();
    for sample in devkit::samples::samples(&template).unwrap() {
        let on_disk: serde_json::Value = read(sample.path);
        assert_eq!(
            on_disk, sample.json,
            "{} is stale: run `make events`",
            sample.path
        );
    }
    let watch_env = std::fs::read_to_string(root().join(devkit::samples::WATCH_ENV_PATH)).unwrap();
    assert_eq!(
        watch_env,
        devkit::samples::watch_env(&template).unwrap(),
        "{} is stale: run `make events`",
        devkit::samples::WATCH_ENV_PATH
    );
}

/// `cargo lambda watch` gives every function the one environment of `events/local.env`: each
/// variable any function reads from the template is there, pointed at `make ddb`.
#[test]
fn the_watch_env_file_covers_every_function_variable_and_points_at_make_ddb() {
    let text = std::fs::read_to_string(root().join(devkit::samples::WATCH_ENV_PATH)).unwrap();
    let vars: std::collections::BTreeMap<&str, &str> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split_once('=').expect("KEY=VALUE"))
        .collect();
    let template = devkit::Template::load_default().unwrap();
    for function in template.functions().unwrap() {
        for (name, value) in template.function_environment(&function.logical_id).unwrap() {
            let expected = devkit::samples::local_source(
                &name,
                &value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned),
            );
            assert_eq!(vars.get(name.as_str()), Some(&expected.as_str()), "{name}");
        }
    }
    assert_eq!(
        vars.get("AWS_ENDPOINT_URL"),
        Some(&format!("http://{}", devkit::local::DDB_DEFAULT_LISTEN).as_str())
    );
}
