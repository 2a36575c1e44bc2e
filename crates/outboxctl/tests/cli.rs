//! The command line as an operator meets it: refusals that must come before any request.

use std::process::Command;

fn outboxctl(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_outboxctl"));
    command.args(args).env_remove("AWS_ENDPOINT_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("outboxctl runs")
}

fn message_file(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("outboxctl-{}-{name}.json", std::process::id()));
    let message = r#"{"KinesisBatchInfo": {"shardId": "shardId-000000000000",
        "startSequenceNumber": "1", "endSequenceNumber": "2",
        "streamArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/order-events"}}"#;
    std::fs::write(&path, message).unwrap();
    path
}

#[test]
fn invoking_a_function_off_this_machine_asks_for_yes_before_reading_anything() {
    let message = message_file("remote");
    let out = outboxctl(
        &[
            "replay",
            "--message",
            message.to_str().unwrap(),
            "--function",
            "RewardsKinesisConsumerFunction",
            "--invoke",
            "rewards-kinesis-consumer",
        ],
        &[("AWS_ENDPOINT_URL_LAMBDA", "https://lambda.example.com")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {stderr}");
    assert!(stderr.contains("--yes"), "says how to go ahead: {stderr}");
    assert!(
        stderr.contains("lambda.example.com"),
        "names where: {stderr}"
    );
}
