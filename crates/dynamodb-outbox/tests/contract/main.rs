//! The batch logic's contract, the same test bodies on both stores: on [`MemoryStore`] (fast,
//! and what consumers' own unit tests use) and on [`DynamoConsumerStore`] over an in-process
//! dynoxide, which is the truth `MemoryStore` must agree with. Grouping, per-key order,
//! hold-back, partial failures, skip versus poison, several consumers, crashes before the marks,
//! parking and redriving, an entity table's changes, a Kinesis stream's records and an SQS
//! queue's messages as events, older schema versions upcast.
//!
//! [`MemoryStore`]: dynamodb_outbox::memory::MemoryStore
//! [`DynamoConsumerStore`]: dynamodb_outbox::dynamodb::DynamoConsumerStore

/// Asserts counts of a batch's outcome, each by its name, showing the whole outcome (or the
/// message given after a `;`) when one is off: `assert_counts!(outcome, applied: 2, parked: 1)`,
/// with `failures.len(): n` for the number of records reported for retry.
macro_rules! assert_counts {
    ($outcome:expr, $($count:ident $(.$len:ident())?: $value:expr),+) => {{
        let outcome = &$outcome;
        assert_eq!(($(outcome.$count $(.$len())?,)+), ($($value,)+), "{outcome:?}");
    }};
    ($outcome:expr, $($count:ident $(.$len:ident())?: $value:expr),+; $($message:tt)+) => {
        assert_eq!(($($outcome.$count $(.$len())?,)+), ($($value,)+), $($message)+)
    };
}

#[path = "../common/accounts.rs"]
mod accounts;
mod changes;
mod failures;
mod fixture;
mod kinesis;
#[path = "../common/ledger.rs"]
mod ledger;
mod order;
mod parked;
#[path = "../common/records.rs"]
mod records;
mod sqs;
mod upcast;

/// Instantiates each body (`module::test`, generic over the store) once per store, as
/// `memory::test` and `dynamodb::test`.
macro_rules! contract {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $test() {
                    crate::$module::$test::<dynamodb_outbox::memory::MemoryStore>().await
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $test() {
                    crate::$module::$test::<dynamodb_outbox::dynamodb::DynamoConsumerStore>().await
                }
            )*
        }
    };
}

contract!(
    changes::inserts_are_applied_once_and_release_their_entity_item,
    changes::a_failure_holds_back_the_keys_later_inserts_and_other_keys_go_on,
    changes::unreadable_entities_and_other_tables_even_same_named_elsewhere_are_poison_and_untaken_events_are_skipped,
    order::each_key_is_applied_in_write_order_however_the_batch_is_shuffled,
    order::an_event_that_arrives_before_its_predecessor_waits_across_batches,
    order::a_redelivered_batch_is_all_duplicates,
    order::a_keys_consecutive_events_commit_in_one_transaction,
    order::a_run_the_consumer_partly_applied_before_applies_only_the_rest,
    order::one_event_per_transaction_commits_each_event_on_its_own_in_order,
    order::a_hot_keys_run_is_cut_at_the_events_per_transaction,
    order::an_event_type_a_consumer_does_not_take_is_skipped_and_its_key_goes_on,
    kinesis::a_record_published_twice_is_applied_once_by_its_event_id,
    kinesis::a_failure_holds_back_its_keys_later_records_and_the_retry_keeps_stream_order,
    kinesis::data_that_names_no_event_is_dropped_an_unplaceable_event_waits_and_other_streams_are_refused,
    kinesis::an_event_without_ordering_key_is_parked_under_its_event_id_once,
    kinesis::a_poison_event_waits_or_is_parked_and_redriven_by_policy,
    kinesis::an_own_record_with_other_content_is_poison_not_a_duplicate,
    kinesis::a_same_named_stream_of_another_account_region_or_partition_is_never_credited,
    kinesis::a_stream_named_without_a_known_account_and_region_admits_nothing,
    failures::under_the_wait_policy_a_poison_event_holds_back_its_key_and_only_its_key,
    failures::under_the_park_policy_a_poison_event_is_parked_and_its_key_goes_on,
    failures::a_transient_failure_holds_back_the_key_and_the_retry_applies_once,
    failures::an_effect_whose_condition_fails_is_poison_and_writes_nothing,
    failures::an_event_expires_only_after_every_consumer_routed_to_it_is_done,
    failures::a_crash_between_the_commits_and_the_marks_is_repaired_by_redelivery,
    failures::an_item_waiting_for_its_consumer_alone_is_finished_with_the_commit,
    failures::a_commit_leaves_no_item_another_consumer_waits_for,
    failures::a_failed_mark_is_reported_without_holding_back_its_key_and_the_retry_marks_it,
    failures::a_run_the_database_refuses_whole_goes_one_event_at_a_time,
    failures::the_last_consumer_out_takes_an_entity_out_of_the_pending_index_without_a_ttl,
    parked::a_fixed_parked_event_is_applied_once_and_its_record_goes,
    parked::racing_redrives_apply_a_parked_event_once,
    parked::an_event_still_poison_stays_parked_with_its_new_reason_and_attempts,
    parked::a_transient_failure_leaves_the_parked_event_as_it_is,
    parked::parked_events_are_listed_oldest_first_up_to_the_limit,
    sqs::an_event_sent_directly_through_sns_or_through_eventbridge_is_applied_once,
    sqs::on_a_fifo_queue_a_failure_holds_back_its_groups_later_messages_and_the_retry_keeps_their_order,
    sqs::poison_is_parked_and_a_body_that_names_no_event_is_dropped,
    sqs::another_queues_messages_are_refused_and_never_credited,
    upcast::older_versions_are_upcast_through_the_chain_and_applied_once_newer_ones_skipped,
    upcast::an_event_whose_upcast_fails_is_poison_waited_on_or_parked_and_redriven_once,
    upcast::a_kinesis_record_in_an_older_version_is_upcast_and_applied_once,
);
