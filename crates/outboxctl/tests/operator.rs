//! The operator's verbs end to end: the `outboxctl` binary against dynoxide with the template's
//! tables and the functions' handlers behind a local Lambda Invoke API.

mod rig;

use aws_sdk_dynamodb::types::AttributeValue;
use rig::{parked_and_pending, Rig, CONSUMER, SWEEPER};
use serde_json::Value as Json;

fn args<'a>(verb: &[&'a str], tables: &'a [String]) -> Vec<&'a str> {
    let mut all = verb.to_vec();
    all.extend(tables.iter().map(String::as_str));
    all
}

#[tokio::test]
async fn status_counts_each_consumers_pending_and_parked_events() {
    let rig = Rig::start().await;
    parked_and_pending(&rig).await;
    let tables = rig.tables();

    let run = rig.outboxctl(&args(&["--json", "status"], &tables)).await;
    assert!(run.ok, "{run:?}");
    let status = run.json();
    let row = &status["consumers"][0];
    assert_eq!(row["consumer"], CONSUMER, "{status}");
    assert_eq!(row["pending"]["count"], 1, "the late order waits: {status}");
    assert!(row["pending"]["oldest_occurred_at"].is_string(), "{status}");
    assert_eq!(row["parked"]["count"], 2, "{status}");
    assert!(row["lag_seconds"].as_i64().is_some(), "{status}");

    let run = rig.outboxctl(&args(&["status"], &tables)).await;
    assert!(run.ok, "{run:?}");
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with(CONSUMER))
        .unwrap_or_else(|| panic!("a line for the consumer: {}", run.stdout));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (columns[1], columns[3]),
        ("1", "2"),
        "pending, parked: {line}"
    );

    // Without --consumer: the consumers the pending events are routed to.
    let t = &rig.stack.tables;
    let run = rig
        .outboxctl(&[
            "--json",
            "status",
            "--table",
            &t.orders,
            "--consumer-table",
            &t.rewards,
        ])
        .await;
    assert_eq!(run.json()["consumers"][0]["parked"]["count"], 2, "{run:?}");
}

#[tokio::test]
async fn inspect_shows_an_event_its_consumers_and_why_it_was_parked() {
    let rig = Rig::start().await;
    parked_and_pending(&rig).await;
    let tables = rig.tables();

    // By ordering key: the late order's event, which the consumer has yet to apply.
    let run = rig
        .outboxctl(&args(&["--json", "inspect", "c-late"], &tables))
        .await;
    assert!(run.ok, "{run:?}");
    let found = run.json();
    assert_eq!(found["found_by"], "ordering_key");
    let event = &found["events"][0];
    assert_eq!(event["sequence"], 1);
    assert_eq!(event["status"], "PENDING");
    assert_eq!(event["consumers"]["waiting"], serde_json::json!([CONSUMER]));
    assert_eq!(event["envelope"]["ordering_key"], "c-late");
    assert!(event["envelope"]["payload"].is_object(), "{event}");

    // By event id: a parked event, with the consumer's reason.
    let event_id = rig.event_id_of("c-park-1").await;
    let run = rig
        .outboxctl(&args(&["--json", "inspect", &event_id], &tables))
        .await;
    let found = run.json();
    assert_eq!(found["found_by"], "event_id", "{found}");
    let event = &found["events"][0];
    assert_eq!(event["consumers"]["waiting"], serde_json::json!([]));
    assert_eq!(
        event["consumers"]["done"],
        serde_json::json!([]),
        "parked, not done"
    );
    let reason = event["parked"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("would pass"), "{event}");

    let run = rig.outboxctl(&args(&["inspect", &event_id], &tables)).await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stdout.contains(&format!("event {event_id}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("parked by {CONSUMER}")) && run.stdout.contains("would pass"),
        "{}",
        run.stdout
    );

    let run = rig
        .outboxctl(&args(&["inspect", "no-such-thing"], &tables))
        .await;
    assert!(!run.ok && run.stdout.contains("no event"), "{run:?}");
}

#[tokio::test]
async fn inspect_finds_a_parked_event_whose_outbox_item_expired() {
    let rig = Rig::start().await;
    parked_and_pending(&rig).await;
    let tables = rig.tables();
    let event_id = rig.event_id_of("c-park-1").await;
    // The outbox item expires (TTL); the parked record still answers for the event.
    let t = &rig.stack.tables;
    rig.stack
        .dynamo
        .client
        .delete_item()
        .table_name(&t.orders)
        .key("pk", AttributeValue::S("OUTBOX#c-park-1".into()))
        .key("sk", AttributeValue::S("EVENT#00000000000000000001".into()))
        .send()
        .await
        .unwrap();
    let run = rig.outboxctl(&args(&["inspect", &event_id], &tables)).await;
    assert!(run.ok, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("no longer in the outbox; parked by {CONSUMER}")),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn a_dry_run_redrive_lists_the_parked_events_and_changes_nothing() {
    let rig = Rig::start().await;
    let parked = parked_and_pending(&rig).await;
    let tables = rig.tables();
    let before = rig.snapshot().await;

    let run = rig
        .outboxctl(&args(&["--json", "redrive", "--dry-run"], &tables))
        .await;
    assert!(run.ok, "{run:?}");
    let listed = run.json()["would_redrive"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // One sweep parked both, its keys side by side, so either may be the older.
    let mut keys: Vec<&str> = listed
        .iter()
        .filter_map(|p| p["ordering_key"].as_str())
        .collect();
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let parked_at: Vec<time::OffsetDateTime> = listed
        .iter()
        .filter_map(|p| time::OffsetDateTime::parse(p["parked_at"].as_str()?, rfc3339).ok())
        .collect();
    assert_eq!(parked_at.len(), listed.len(), "{listed:?}");
    assert!(parked_at.is_sorted(), "oldest first: {listed:?}");
    let oldest = keys[0].to_owned();
    keys.sort_unstable();
    assert_eq!(keys, parked, "{listed:?}");
    let run = rig
        .outboxctl(&args(&["redrive", "--dry-run"], &tables))
        .await;
    assert!(
        run.stdout.contains("2 parked events would be redriven"),
        "{run:?}"
    );
    let run = rig
        .outboxctl(&args(
            &["--json", "redrive", "--dry-run", "--limit", "1"],
            &tables,
        ))
        .await;
    let listed = run.json()["would_redrive"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["ordering_key"], oldest.as_str(), "the oldest");

    assert_eq!(rig.snapshot().await, before, "a dry run changes nothing");
}

#[tokio::test]
async fn a_redrive_applies_each_parked_event_once_and_says_what_became_of_each() {
    let rig = Rig::start().await;
    let parked = parked_and_pending(&rig).await;
    let tables = rig.tables();

    // Before the fix: still poison, left parked with one more attempt, and the exit says so.
    let redrive = args(&["--json", "redrive", "--function", SWEEPER], &tables);
    let early = rig.outboxctl(&redrive).await;
    assert!(!early.ok, "{early:?}");
    let report = early.json();
    assert_eq!(
        (&report["applied"], &report["parked"]),
        (&Json::from(0), &Json::from(2))
    );
    assert!(report["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["outcome"] == "still parked" && e["attempts"] == 2));

    // The fix lands; the redrive applies both, once.
    for customer in &parked {
        rig.set_balance(customer, 0).await;
    }
    let fixed = rig.outboxctl(&redrive).await;
    assert!(fixed.ok, "{fixed:?}");
    let report = fixed.json();
    assert_eq!(report["applied"], 2, "{report}");
    let outcomes: Vec<&str> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["redriven", "redriven"]);
    for customer in &parked {
        assert_eq!(outbox_tests::balance(&rig.stack, customer).await, (7, 1));
    }
    let again = rig.outboxctl(&redrive).await;
    assert_eq!(again.json()["found"], 0, "{again:?}");
    for customer in &parked {
        assert_eq!(outbox_tests::balance(&rig.stack, customer).await, (7, 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_redrives_apply_each_parked_event_once() {
    let rig = Rig::start().await;
    let parked = parked_and_pending(&rig).await;
    for customer in &parked {
        rig.set_balance(customer, 0).await;
    }
    let tables = rig.tables();
    let redrive = args(&["--json", "redrive", "--function", SWEEPER], &tables);
    let (a, b) = tokio::join!(rig.outboxctl(&redrive), rig.outboxctl(&redrive));
    assert!(a.ok && b.ok, "{a:?} {b:?}");
    let applied = |run: &rig::Run| run.json()["applied"].as_u64().unwrap_or(0);
    let taken = |run: &rig::Run| {
        let r = run.json();
        r["applied"].as_u64().unwrap_or(0) + r["already_applied"].as_u64().unwrap_or(0)
    };
    assert_eq!(
        applied(&a) + applied(&b),
        2,
        "applied once between them: {a:?} {b:?}"
    );
    assert!(taken(&a) + taken(&b) >= 2);
    for customer in &parked {
        assert_eq!(
            outbox_tests::balance(&rig.stack, customer).await,
            (7, 1),
            "credited once"
        );
    }
}

#[tokio::test]
async fn sweep_applies_what_is_pending_past_the_grace_period() {
    let rig = Rig::start().await;
    parked_and_pending(&rig).await;
    let run = rig.outboxctl(&["sweep", "--function", SWEEPER]).await;
    assert!(run.ok, "{run:?}");
    assert!(run.stdout.contains("found 1, applied 1"), "{}", run.stdout);
    assert_eq!(outbox_tests::balance(&rig.stack, "c-late").await.1, 1);
    let status = rig
        .outboxctl(&args(&["--json", "status"], &rig.tables()))
        .await;
    assert_eq!(
        status.json()["consumers"][0]["pending"]["count"],
        0,
        "{status:?}"
    );
}

#[tokio::test]
async fn writing_verbs_refuse_a_remote_function_without_yes_and_change_nothing() {
    let rig = Rig::start().await;
    parked_and_pending(&rig).await;
    for customer in ["c-park-1", "c-park-2"] {
        rig.set_balance(customer, 0).await;
    }
    let before = rig.snapshot().await;
    let remote = [("AWS_ENDPOINT_URL_LAMBDA", "https://lambda.example.com")];
    let tables = rig.tables();
    for verb in [
        args(&["redrive", "--function", SWEEPER], &tables),
        vec!["sweep", "--function", SWEEPER],
    ] {
        let run = rig.outboxctl_with(&verb, &remote).await;
        assert!(!run.ok, "{verb:?} refused: {run:?}");
        assert!(
            run.stderr.contains("--yes") && run.stderr.contains("lambda.example.com"),
            "says where and how to go ahead: {}",
            run.stderr
        );
    }
    assert_eq!(rig.snapshot().await, before, "nothing was invoked");
    // The same verb on this machine's endpoint goes ahead without asking.
    let run = rig
        .outboxctl(&args(&["redrive", "--function", SWEEPER], &tables))
        .await;
    assert!(run.ok, "{run:?}");
}

#[tokio::test]
async fn a_dynamodb_stream_range_the_mapping_gave_up_on_is_replayed_and_applied_once() {
    let rig = Rig::start().await;
    for customer in ["c-r1", "c-r2"] {
        outbox_tests::place(&rig.stack, customer, &[("A", 1, 400)]).await;
    }
    let message = rig::stream_failure_message(&rig).await;
    let stack = &rig.stack;
    let arn = &stack.tables.orders_stream_arn;
    let path = std::env::temp_dir().join(format!("outboxctl-ddb-{}.json", std::process::id()));
    std::fs::write(&path, message.to_string()).unwrap();
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let replay = [
        "replay",
        "--message",
        path.to_str().unwrap(),
        "--function",
        "StreamConsumerFunction",
        "--template",
        template,
    ];

    let run = rig.outboxctl(&[&["--json"], &replay[..]].concat()).await;
    assert!(run.ok, "{run:?}");
    let event = run.json();
    let kept = event["Records"].as_array().unwrap();
    assert_eq!(
        kept.len(),
        2,
        "the outbox inserts only, as the mapping's filter: {event}"
    );
    assert!(kept.iter().all(|r| r["eventSourceARN"] == arn.as_str()));

    let invoke = [&replay[..], &["--invoke", rig::STREAM_CONSUMER]].concat();
    for _ in 0..2 {
        let run = rig.outboxctl(&invoke).await;
        assert!(run.ok, "{run:?}");
        assert!(run.stdout.contains("applied them all"), "{}", run.stdout);
    }
    for customer in ["c-r1", "c-r2"] {
        assert_eq!(
            outbox_tests::balance(stack, customer).await,
            (4, 1),
            "replayed twice, applied once"
        );
    }
    std::fs::remove_file(path).ok();
}
