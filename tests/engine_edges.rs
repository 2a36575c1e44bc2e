//! The engine's guarantees at their edges, attacked as a library user, an operator and a hostile
//! source would, on the real local DynamoDB: a producer whose answer is lost, names and keys that
//! look like the engine's separators, a consumer routed twice, limits a merge could sum away,
//! effects DynamoDB refuses, a redrive whose index order the clocks scrambled, stuck events that
//! could starve a shard, values DynamoDB normalises, and settings past their range.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as SdkValue;
use devkit::proxy::{Fault, FaultPlan, FaultProxy};
use dynamodb_outbox::dynamodb::{
    DynamoConsumerStore, Outbox, PendingEvents, Routes, WriteError, Written,
};
use dynamodb_outbox::testing::schema;
use dynamodb_outbox::testing::{Commit, CommitOnce, Committed, Step, StoreOps};
use dynamodb_outbox::{BatchOutcome, Effect, Envelope, PoisonPolicy, Processor, Source};
use outbox_tests::{
    assert_counts, balance_pk, moved, n, s, scan, stack, Item, Moved, Stack, Tally, BALANCE_SK,
};
use serde_dynamo::AttributeValue;

struct Bench {
    stack: Stack,
}

impl Bench {
    async fn start() -> Self {
        Self {
            stack: stack().await,
        }
    }

    fn outbox(&self, routes: Routes) -> Outbox {
        Outbox::new(
            self.stack.dynamo.client.clone(),
            &self.stack.tables.orders,
            routes,
        )
    }

    fn store(&self) -> DynamoConsumerStore {
        DynamoConsumerStore::new(
            self.stack.dynamo.client.clone(),
            &self.stack.tables.rewards,
            &self.stack.tables.orders,
        )
    }

    fn tally(&self, name: &str, policy: PoisonPolicy) -> Processor<Tally, DynamoConsumerStore> {
        let tally = Tally::new(name, &self.stack.tables.rewards, policy);
        Processor::new(
            tally,
            self.store(),
            Source::table(&self.stack.tables.orders).unwrap(),
        )
    }

    fn pending(&self) -> PendingEvents {
        PendingEvents::new(self.stack.dynamo.client.clone(), &self.stack.tables.orders)
    }

    async fn write(&self, outbox: &Outbox, envelope: &Envelope<Moved>) -> u64 {
        commit(outbox, envelope).await.unwrap().events[0].1
    }

    /// The tally consumer named "tally" over every outbox item, as the sweeper would hand them.
    async fn sweep_tally(&self, policy: PoisonPolicy) -> BatchOutcome {
        self.tally("tally", policy)
            .process_items(self.event_items().await)
            .await
    }

    /// Every outbox event item, by sequence within key.
    async fn events(&self) -> Vec<Item> {
        let mut items = scan(&self.stack, &self.stack.tables.orders).await;
        items.retain(|i| s(i, schema::ENTITY) == Some(schema::ENTITY_OUTBOX_EVENT));
        items.sort_by_key(|i| (s(i, "pk").map(str::to_owned), s(i, "sk").map(str::to_owned)));
        items
    }

    /// The outbox items as the sweeper reads them, for `process_items`.
    async fn event_items(&self) -> Vec<serde_dynamo::Item> {
        self.events().await.into_iter().map(Into::into).collect()
    }

    async fn balance(&self, account: &str) -> Option<i64> {
        let (rewards, pk) = (&self.stack.tables.rewards, balance_pk(account));
        let item = self.stack.dynamo.item(rewards, &pk, BALANCE_SK).await;
        let item = item.unwrap()?;
        n(&item, "cents")
    }

    async fn parked(&self, consumer: &str) -> Vec<Item> {
        self.stack
            .dynamo
            .client
            .query()
            .table_name(&self.stack.tables.rewards)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", SdkValue::S(schema::parked_pk(consumer)))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default()
    }
}

/// One event in one transaction.
async fn commit(outbox: &Outbox, envelope: &Envelope<Moved>) -> Result<Written, WriteError> {
    outbox.transaction().event(envelope).unwrap().commit().await
}

fn tally_routes() -> Routes {
    Routes::new().route("Moved", &["tally"])
}

/// A `Moved` event of key "a" committed by an outbox whose requests go through a proxy that
/// loses the answers of `operations` (up to `losses` of them), with the request token stripped as
/// other servers ignore it: the event, the writer's answer and the proxy that counted.
async fn commit_losing(
    bench: &Bench,
    losses: u64,
    operations: &[&str],
) -> (Envelope<Moved>, Result<Written, WriteError>, FaultProxy) {
    let plan = FaultPlan {
        lose_response: 1.0,
        operations: operations.iter().map(|o| (*o).to_owned()).collect(),
        max_faults: Some(losses),
        strip_client_request_token: true,
        ..FaultPlan::none()
    };
    let proxy = FaultProxy::start(&bench.stack.dynamo.endpoint, plan)
        .await
        .unwrap();
    let client = bench.stack.dynamo.client_via(&proxy.endpoint).await;
    let outbox = Outbox::new(client, &bench.stack.tables.orders, tally_routes());
    let envelope = Envelope::new(moved("a", 5));
    let written = commit(&outbox, &envelope).await;
    (envelope, written, proxy)
}

// A producer's lost answer.

#[tokio::test]
async fn a_producers_retry_after_a_lost_answer_stores_the_event_once_and_says_so() {
    let bench = Bench::start().await;
    let (envelope, written, proxy) = commit_losing(&bench, 1, &["TransactWriteItems"]).await;
    let written = written.expect("the transaction committed once");

    assert_eq!(
        proxy.stats().requests["TransactWriteItems"],
        2,
        "the SDK retried"
    );
    assert!(
        written.from_earlier_attempt,
        "the writer says the first attempt committed"
    );
    assert_eq!(written.events, vec![(envelope.event_id.clone(), 1)]);
    let events = bench.events().await;
    assert_eq!(events.len(), 1, "one event stored: {events:?}");
    assert_eq!(s(&events[0], "event_id"), Some(envelope.event_id.as_str()));

    let outcome = bench.sweep_tally(PoisonPolicy::Park).await;
    assert_eq!(outcome.applied, 1);
    assert_eq!(bench.balance("a").await, Some(5), "applied once");
}

#[tokio::test]
async fn a_producer_whose_every_answer_was_lost_finds_its_event_instead_of_failing() {
    let bench = Bench::start().await;
    let (_, written, proxy) = commit_losing(&bench, 100, &["TransactWriteItems"]).await;
    let written = written.expect("the read-back found the committed event");
    assert!(
        proxy.stats().fault(Fault::LostResponse) >= 2,
        "the SDK gave up"
    );
    assert!(written.from_earlier_attempt);
    assert_eq!(bench.events().await.len(), 1);
}

#[tokio::test]
async fn a_producer_that_cannot_tell_whether_it_committed_says_the_outcome_is_unknown() {
    let bench = Bench::start().await;
    let (_, err, proxy) = commit_losing(&bench, 100, &["TransactWriteItems", "GetItem"]).await;
    let err = err.expect_err("nothing tells whether it committed");
    assert!(matches!(err, WriteError::OutcomeUnknown(_)), "{err:?}");
    let lost = proxy.stats().requests;
    assert!(
        lost["GetItem"] >= 1,
        "the writer tried to read its event back: {lost:?}"
    );
    assert!(
        err.to_string().contains("may or may not have been written"),
        "{err}"
    );
    assert_eq!(bench.events().await.len(), 1, "written once, never twice");
}

// Names and keys.

#[tokio::test]
async fn consumer_names_and_keys_that_share_a_separator_never_share_a_progress_or_done_record() {
    let bench = Bench::start().await;
    let store = bench.store();
    let first = Step {
        ordering_key: String::new(),
        sequence: 1,
        after: 0,
    };
    // (consumer, key) pairs that an unescaped `#` join maps to one item.
    for (a, b) in [
        (("ledger", "eu#a1"), ("ledger#eu", "a1")),
        (("a%23b", "k"), ("a#b", "k")),
        (("x", "#y"), ("x#", "y")),
    ] {
        for (consumer, key) in [a, b] {
            let step = Step {
                ordering_key: key.into(),
                ..first.clone()
            };
            let commit = Commit {
                consumer,
                step: &step,
                effect: &Effect::new(),
            };
            assert_eq!(
                store.commit(commit).await.unwrap(),
                Committed::Applied,
                "{consumer} on {key} keeps its own progress"
            );
        }
        for (consumer, event_id) in [a, b] {
            let once = CommitOnce {
                consumer,
                event_id,
                effect: &Effect::new(),
            };
            assert_eq!(
                store.commit_once(once).await.unwrap(),
                Committed::Applied,
                "{consumer}'s record of {event_id} is its own"
            );
        }
    }
    assert_ne!(
        schema::parked_sk("t", "a#b", "c"),
        schema::parked_sk("t", "a", "b#c")
    );
}

#[tokio::test]
async fn a_consumer_named_twice_in_a_route_is_routed_once_and_its_key_goes_on() {
    let bench = Bench::start().await;
    let routes = Routes::new().route("Moved", &["tally", "tally"]);
    assert_eq!(routes.consumers_of("Moved"), ["tally".to_owned()]);
    let outbox = bench.outbox(routes);
    for cents in [1, 2, 3] {
        bench
            .write(&outbox, &Envelope::new(moved("a", cents)))
            .await;
    }
    let outcome = bench.sweep_tally(PoisonPolicy::Wait).await;
    assert_counts!(outcome, [applied = 3, waiting = 0]);
    assert_eq!(bench.balance("a").await, Some(6));
}

#[tokio::test]
async fn an_ordering_key_dynamodb_could_not_key_is_refused_by_the_producer_and_a_long_one_works() {
    let bench = Bench::start().await;
    let outbox = bench.outbox(tally_routes());
    let long = "k".repeat(900);
    bench.write(&outbox, &Envelope::new(moved(&long, 4))).await;
    let outcome = bench.sweep_tally(PoisonPolicy::Wait).await;
    assert_eq!(outcome.applied, 1, "{outcome:?}");
    assert_eq!(bench.balance(&long).await, Some(4));

    let too_long = "k".repeat(1000);
    let err = outbox
        .transaction()
        .event(&Envelope::new(moved(&too_long, 1)))
        .err()
        .expect("refused before anything is sent");
    assert!(matches!(err, WriteError::KeyTooLong { .. }), "{err:?}");
    assert!(
        err.to_string().contains("shorten the ordering key"),
        "{err}"
    );
    let named = Routes::new().route("Moved", &[&"c".repeat(1200)]);
    let err = bench
        .outbox(named)
        .transaction()
        .event(&Envelope::new(moved(&long, 1)))
        .err()
        .expect("a consumer's progress key past 2,048 bytes is refused");
    assert!(err.to_string().contains("progress key"), "{err}");
    assert_eq!(bench.events().await.len(), 1, "nothing more was written");
}

// Limits and refusals.

#[tokio::test]
async fn merged_additions_never_apply_an_event_its_own_limit_refuses() {
    let bench = Bench::start().await;
    let outbox = bench.outbox(tally_routes());
    let limited = |cents, limit| Moved {
        limit: Some(limit),
        ..moved("a", cents)
    };
    // +10 under a limit of 5 is refused alone; the -10 after it would hide it in a sum of 0.
    bench.write(&outbox, &Envelope::new(limited(10, 5))).await;
    bench.write(&outbox, &Envelope::new(moved("a", -10))).await;
    // A key whose run is valid as a whole and event by event still commits as one.
    for cents in [3, 4] {
        bench
            .write(&outbox, &Envelope::new(limited(cents, 7).clone()))
            .await;
    }
    let b = |cents| Moved {
        account: "b".into(),
        ..limited(cents, 7)
    };
    for cents in [3, 4] {
        bench.write(&outbox, &Envelope::new(b(cents))).await;
    }
    let outcome = bench.sweep_tally(PoisonPolicy::Park).await;
    assert_eq!(outcome.parked, 1, "{outcome:?}");
    assert_eq!(outcome.applied, 5, "{outcome:?}");
    assert_eq!(bench.balance("b").await, Some(7));
    // a: -10, then +3 and +4 (each under 7).
    assert_eq!(bench.balance("a").await, Some(-3));
    let parked = bench.parked("tally").await;
    assert!(
        s(&parked[0], schema::PARKED_REASON)
            .unwrap()
            .contains("add of 10 to cents"),
        "{parked:?}"
    );
}

#[tokio::test]
async fn an_addition_past_its_limit_is_refused_on_a_number_that_does_not_exist_yet() {
    let bench = Bench::start().await;
    let outbox = bench.outbox(tally_routes());
    let over = Moved {
        limit: Some(5),
        ..moved("fresh", 10)
    };
    bench.write(&outbox, &Envelope::new(over)).await;
    let outcome = bench.sweep_tally(PoisonPolicy::Park).await;
    assert_counts!(outcome, [parked = 1, applied = 0]);
    assert_eq!(bench.balance("fresh").await, None);
}

#[tokio::test]
async fn an_effect_dynamodb_refuses_as_invalid_is_parked_with_its_reason_and_the_key_goes_on() {
    let bench = Bench::start().await;
    let outbox = bench.outbox(tally_routes());
    let huge = Moved {
        pad: 420 * 1024,
        ..moved("a", 1)
    };
    bench.write(&outbox, &Envelope::new(huge)).await;
    bench.write(&outbox, &Envelope::new(moved("a", 2))).await;
    let processor = bench.tally("tally", PoisonPolicy::Park);
    let outcome = processor.process_items(bench.event_items().await).await;
    assert_counts!(outcome, [parked = 1, applied = 1, failed = 0]);
    assert!(outcome.failures.is_empty(), "nothing reported for retry");
    assert_eq!(bench.balance("a").await, Some(2));
    let parked = bench.parked("tally").await;
    let reason = s(&parked[0], schema::PARKED_REASON).unwrap();
    assert!(reason.contains("refused the effect as invalid"), "{reason}");

    // The sweeper's path reads it the same way: nothing left pending for the key.
    let sweep = processor
        .sweep(&bench.pending(), Duration::ZERO, 100)
        .await
        .unwrap();
    assert_counts!(sweep, [failed = 0, poison = 0]);
}

// The sweeper's redrive.

/// An envelope that says it occurred at `at` (the producer's clock).
fn at(mut envelope: Envelope<Moved>, at: &str) -> Envelope<Moved> {
    envelope.occurred_at = at.into();
    envelope
}

#[tokio::test]
async fn a_redrive_reaches_a_keys_lowest_pending_sequence_whatever_the_clocks_said() {
    let bench = Bench::start().await;
    let outbox = bench.outbox(tally_routes());
    // Two producers raced on the key: the later sequence has the earlier clock.
    let first = bench
        .write(
            &outbox,
            &at(Envelope::new(moved("a", 1)), "2026-01-01T00:00:09.000000Z"),
        )
        .await;
    let second = bench
        .write(
            &outbox,
            &at(Envelope::new(moved("a", 2)), "2026-01-01T00:00:01.000000Z"),
        )
        .await;
    assert_eq!((first, second), (1, 2));
    let processor = bench.tally("tally", PoisonPolicy::Wait);
    // One event read per shard and run: the index gives the key's second event first.
    let outcome = processor
        .sweep(&bench.pending(), Duration::ZERO, 1)
        .await
        .unwrap();
    assert_counts!(outcome, [applied = 2, waiting = 0]);
    assert_eq!(bench.balance("a").await, Some(3));
}

#[tokio::test]
async fn stuck_events_under_wait_never_starve_the_keys_behind_them() {
    let bench = Bench::start().await;
    let outbox = bench.outbox(tally_routes());
    let good = "good";
    let shard = schema::pending_pk(good);
    let stuck: Vec<String> = (0..)
        .map(|i| format!("stuck-{i}"))
        .filter(|key| schema::pending_pk(key) == shard)
        .take(4)
        .collect();
    for (i, key) in stuck.iter().enumerate() {
        let poison = Moved {
            poison: true,
            ..moved(key, 1)
        };
        let when = format!("2026-01-01T00:00:0{i}.000000Z");
        bench
            .write(&outbox, &at(Envelope::new(poison), &when))
            .await;
    }
    bench
        .write(
            &outbox,
            &at(Envelope::new(moved(good, 7)), "2026-01-01T00:01:00.000000Z"),
        )
        .await;

    let processor = bench.tally("tally", PoisonPolicy::Wait);
    let pending = bench.pending();
    let mut runs = 0;
    // One event a shard and run (a limit of 8 over 8 shards): the stuck ones come first.
    while bench.balance(good).await.is_none() {
        runs += 1;
        assert!(
            runs <= stuck.len() + 1,
            "the good key was starved for {runs} runs"
        );
        processor
            .sweep(&pending, Duration::ZERO, schema::PENDING_SHARDS as usize)
            .await
            .unwrap();
    }
    assert_eq!(bench.balance(good).await, Some(7));
    // The stuck events are still pending (Wait): nothing lost, nothing parked.
    let still = bench
        .events()
        .await
        .into_iter()
        .filter(|e| s(e, schema::STATUS) == Some(schema::STATUS_PENDING))
        .count();
    assert_eq!(still, stuck.len());
    assert!(bench.parked("tally").await.is_empty());
}

#[tokio::test]
async fn a_sweep_with_a_grace_longer_than_time_finds_nothing_and_does_not_panic() {
    let bench = Bench::start().await;
    let outbox = bench.outbox(tally_routes());
    bench.write(&outbox, &Envelope::new(moved("a", 1))).await;
    let outcome = bench
        .tally("tally", PoisonPolicy::Wait)
        .sweep(&bench.pending(), Duration::MAX, usize::MAX)
        .await
        .unwrap();
    assert_eq!(outcome, Default::default());
}

// Values DynamoDB normalises.

#[tokio::test]
async fn a_redelivered_record_whose_numbers_and_sets_dynamodb_normalised_is_a_duplicate() {
    let bench = Bench::start().await;
    let store = bench.store();
    let record: serde_dynamo::Item = std::collections::HashMap::from([
        ("pk".to_owned(), AttributeValue::S("LINE#1".into())),
        ("sk".to_owned(), AttributeValue::S("LINE".into())),
        ("amount".to_owned(), AttributeValue::N("10.50".into())),
        ("big".to_owned(), AttributeValue::N("1.0E2".into())),
        (
            "tags".to_owned(),
            AttributeValue::Ss(vec!["zeta".into(), "alpha".into(), "mid".into()]),
        ),
        (
            "sizes".to_owned(),
            AttributeValue::Ns(vec!["3.0".into(), "1".into(), "20".into()]),
        ),
    ])
    .into();
    let once = CommitOnce {
        consumer: "ledger",
        event_id: "e-1",
        effect: &Effect::new().put_new_as_record(&bench.stack.tables.rewards, record),
    };
    for expected in [
        Committed::Applied,
        Committed::Duplicate,
        Committed::Duplicate,
    ] {
        assert_eq!(store.commit_once(once).await.unwrap(), expected);
    }
}

// Settings.

#[tokio::test]
async fn processor_settings_past_their_range_are_refused_with_the_range() {
    let bench = Bench::start().await;
    for seconds in [i64::MAX, -1, i64::MIN] {
        let err = bench
            .tally("tally", PoisonPolicy::Wait)
            .retention_seconds(seconds)
            .expect_err("out of range");
        assert!(
            err.to_string()
                .contains("retention_seconds must be between 0 and"),
            "{err}"
        );
    }
    assert!(bench
        .tally("tally", PoisonPolicy::Wait)
        .retention_seconds(dynamodb_outbox::MAX_RETENTION_SECONDS)
        .is_ok());
}
