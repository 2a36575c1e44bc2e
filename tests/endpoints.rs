//! Every client the functions build from the environment takes its endpoint as the AWS SDK does:
//! `AWS_ENDPOINT_URL_<SERVICE>` first, then `AWS_ENDPOINT_URL`. Each case runs the clients in a
//! child process (the environment of this multi-threaded one must not change) with only the
//! variables of the case set; the child creates a table and a stream named after the case, and
//! this process finds them on the server the precedence names and not on the other.

use std::process::Command;

use devkit::kinesis::LocalKinesis;
use devkit::local::LocalDynamo;

/// This test's own name: a child process runs it again with [`PROBE_NAME`] set, and then it is
/// the probe of one case instead.
const CHILD: &str =
    "each_client_reaches_the_general_endpoint_unless_its_own_variable_names_another";
const PROBE_NAME: &str = "OUTBOX_ENDPOINT_PROBE_NAME";

/// Runs [`CHILD`] with `vars` as the only endpoint variables; it creates a table and a stream
/// named `name`.
async fn run_child(name: &str, vars: &[(&str, &str)]) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", CHILD, "--nocapture"])
        .env(PROBE_NAME, name)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local");
    for inherited in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_KINESIS",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    ] {
        command.env_remove(inherited);
    }
    command.envs(vars.iter().copied());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("test {CHILD} ... ok")),
        "the child with {vars:?} failed:\n{stdout}\n{stderr}"
    );
}

async fn tables(server: &LocalDynamo) -> Vec<String> {
    let listed = server.client.list_tables().send().await.unwrap();
    listed.table_names().to_vec()
}

async fn streams(kinesis: &LocalKinesis) -> Vec<String> {
    let listed = kinesis.client.list_streams().send().await.unwrap();
    listed.stream_names().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_reaches_the_general_endpoint_unless_its_own_variable_names_another() {
    if let Ok(name) = std::env::var(PROBE_NAME) {
        return probe(&name).await;
    }
    let Some(kinesis) = LocalKinesis::start_or_skip(
        "each_client_reaches_the_general_endpoint_unless_its_own_variable_names_another",
    )
    .await
    .unwrap() else {
        return;
    };
    let named = LocalDynamo::embedded("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let other = LocalDynamo::embedded("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();

    // Only the general variable: DynamoDB's client goes there, and so does Kinesis's (a child
    // of its own, since one general endpoint cannot be both servers).
    run_child("general-dynamodb", &[("AWS_ENDPOINT_URL", &named.endpoint)]).await;
    assert!(tables(&named).await.contains(&"general-dynamodb".into()));
    run_child(
        "general-kinesis",
        &[("AWS_ENDPOINT_URL", &kinesis.endpoint)],
    )
    .await;
    assert!(streams(&kinesis).await.contains(&"general-kinesis".into()));

    // The general variable names the other DynamoDB; each service's own variable wins.
    run_child(
        "specific",
        &[
            ("AWS_ENDPOINT_URL", &other.endpoint),
            ("AWS_ENDPOINT_URL_DYNAMODB", &named.endpoint),
            ("AWS_ENDPOINT_URL_KINESIS", &kinesis.endpoint),
        ],
    )
    .await;
    assert!(tables(&named).await.contains(&"specific".into()));
    assert!(!tables(&other).await.contains(&"specific".into()));
    assert!(streams(&kinesis).await.contains(&"specific".into()));
}

/// One case, in the child process: a table and a stream named `name`, created through the
/// functions' own clients. Which client a case is for follows from the server the variables
/// name: a request the other server cannot answer is allowed to fail.
async fn probe(name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let dynamodb = service_runtime::config::dynamodb_client()
        .await
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    let kinesis = order_service::self_read::kinesis::kinesis_client()
        .create_stream()
        .stream_name(name)
        .shard_count(1)
        .send()
        .await;
    println!(
        "{name}: CreateTable {}, CreateStream {}",
        dynamodb.map_or_else(|e| format!("{e:?}"), |_| "ok".into()),
        kinesis.map_or_else(|e| format!("{e:?}"), |_| "ok".into()),
    );
}
