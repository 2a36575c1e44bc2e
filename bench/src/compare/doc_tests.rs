//! The document's tables written from a run into the real `docs/patterns.md`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::storage::Kind;
use super::super::watch::Seen;
use super::super::{KinesisPuts, Side};
use super::*;

fn run(pattern: Pattern, kinesis: Option<KinesisPuts>) -> PatternRun {
    let orders = 4;
    PatternRun {
        pattern,
        writer: Side {
            name: "writer".into(),
            requests: BTreeMap::from([("PutItem".into(), 4)]),
            units: Default::default(),
        },
        consumers: vec![],
        stream_reads: BTreeMap::from([("GetRecords".into(), 9)]),
        kinesis,
        broker: None,
        seen: Seen {
            answered: orders,
            end_to_end_ms: vec![100.0, 200.0, 300.0, 400.0],
            readable_at_once: orders,
            read_gap_ms: vec![],
        },
        storage: BTreeMap::from([(
            ("orders".into(), "ORDER#… / ORDER".into()),
            Kind {
                items: 4,
                bytes: 2000,
                ..Default::default()
            },
        )]),
        mappings: vec![],
        polling: "every second".into(),
        elapsed: Duration::from_secs(1),
    }
}

fn context(opts: &Options) -> Context<'_> {
    Context {
        opts,
        date: "2026-01-01T00:00:00Z".into(),
        commit: "abc1234".into(),
        machine: "- CPU: test\n".into(),
        hottest_customer_orders: 2,
        elapsed_seconds: 3.0,
        chaos: vec![],
        chaos_orders: None,
    }
}

fn options() -> Options {
    Options {
        orders: 4,
        customers: 2,
        seed: 7,
        latency: Duration::from_millis(10),
        rate_per_second: 50.0,
        consumer_concurrency: 100,
        settle_timeout: Duration::from_secs(1),
    }
}

#[test]
fn a_run_rewrites_the_figures_and_keeps_the_prose() {
    let path = crate::workspace_root().join("docs").join("patterns.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let puts = KinesisPuts {
        records: 4,
        payload_units: 4,
        bytes: 2400,
        shards: 2,
    };
    let runs = [
        run(Pattern::Outbox, None),
        run(Pattern::SelfRead, Some(puts)),
    ];
    let opts = options();
    let write = |doc: &str| crate::regions::replace_all(doc, &regions(&runs, &context(&opts)));
    let written = write(&doc).unwrap();
    // Every line outside the regions, the prose, is the document's as written by hand.
    let emptied = |doc: &str| {
        let empty = REGIONS.map(|name| (name, String::new()));
        crate::regions::replace_all(doc, &empty).unwrap()
    };
    assert_eq!(emptied(&written), emptied(&doc));
    assert!(written.contains("| 1 outbox | writer | 1.00: PutItem 1.00 | 0.00 | 0.00 |"));
    assert!(
        written.contains("| end-to-end p50 / p95 / p99, ms | 200 / 400 / 400 | 200 / 400 / 400 |")
    );
    assert!(written.contains("| 3 self-read | 4 | 4 | 2400 | 600 | 4 | 2 |"));
    assert!(written.contains("| DynamoDB write request units | $0.00 | $0.00 |"));
    assert!(written.contains("No chaos runs were given to this run (`--chaos-dir`)."));
    assert!(written.contains(
        "`patterns-compare --orders 4 --customers 2 --latency-ms 10 --rate 50 --seed 7`"
    ));
    // Written again from the same runs, the document does not change.
    assert_eq!(write(&written).unwrap(), written);
}
