//! A seeded, smaller chaos run (`make chaos` runs 10,000 orders): faults, duplicates, racing
//! consumers and crashes, then every invariant of the outbox checked on the tables.

use devkit::chaos::{run, ChaosOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_and_nothing_is_applied_twice_under_chaos() {
    let report = run(ChaosOptions::new(250, 42)).await.unwrap();
    println!("{}", report.summary());
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert!(
        report.orders_ok > 200,
        "most orders get through: {}",
        report.summary()
    );
    // The run proves something only if the faults really happened.
    assert!(
        report.faults_summary.contains("lost responses")
            && !report.faults_summary.starts_with("0 requests")
    );
    assert!(
        report.crashes > 0 && report.duplicated_in_batch > 0,
        "{}",
        report.summary()
    );
    assert!(
        report.deliveries >= 2 * report.orders_ok,
        "two mappings deliver every record"
    );
}
