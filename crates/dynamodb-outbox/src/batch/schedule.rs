//! Scheduling: a batch's records grouped by ordering key, and each key's events handed out in
//! sequence order as runs to commit in one transaction, single events, or events held back.

use std::collections::{HashMap, VecDeque};

use super::{Outcome, Work};

/// The group a record joins: its ordering key's, or one of its own.
#[derive(PartialEq, Eq, Hash)]
enum Lane {
    Key(String),
    Record(usize),
}

/// Groups records by ordering key, each group in sequence order (stable for equal ones), groups
/// in the order their first record arrived. A record is named by its position in `works`.
pub(super) fn group_by_key<P>(works: Vec<Work<'_, P>>) -> Vec<Vec<(usize, Work<'_, P>)>> {
    let mut groups: Vec<Vec<(usize, Work<'_, P>)>> = Vec::new();
    let mut group_of: HashMap<Lane, usize> = HashMap::new();
    for (position, work) in works.into_iter().enumerate() {
        let lane = match &work {
            Work::Apply(_, step, _)
            | Work::Skip(step, _, _)
            | Work::Poison {
                at: Some((step, _)),
                ..
            } => Lane::Key(step.ordering_key.clone()),
            Work::Once(_, once) | Work::Unreadable(once, ..) => match once.lane() {
                Some(key) => Lane::Key(key.clone()),
                // Without an ordering key it is no key's event: it waits for none.
                None => Lane::Record(position),
            },
            _ => Lane::Record(position),
        };
        let slot = *group_of.entry(lane).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[slot].push((position, work));
    }
    for group in &mut groups {
        group.sort_by_key(|(_, work)| work.place().map_or(0, |(step, _)| step.sequence));
    }
    groups
}

/// What a key does next.
pub(super) enum Next<'r, P> {
    /// Not tried, as an earlier event of the key blocked it: its outcome.
    HeldBack(usize, Outcome),
    /// Consecutive events to commit in one transaction.
    Run(Vec<(usize, Work<'r, P>)>),
    /// One record to apply by itself.
    One(usize, Work<'r, P>),
}

/// One key's events in sequence order, handed out one step at a time.
pub(super) struct KeyQueue<'r, P> {
    pending: VecDeque<(usize, Work<'r, P>)>,
    /// An outcome blocked the key: the rest is held back.
    blocked: bool,
    /// Events to apply one at a time before trying to combine again: those of a run that did
    /// not commit as one (never a second try at combining them).
    singles: usize,
    events_per_transaction: usize,
}

impl<'r, P> KeyQueue<'r, P> {
    /// A key's group (in sequence order), whose runs take up to `events_per_transaction` events.
    pub(super) fn new(group: Vec<(usize, Work<'r, P>)>, events_per_transaction: usize) -> Self {
        Self {
            pending: group.into(),
            blocked: false,
            singles: 0,
            events_per_transaction,
        }
    }

    /// The key's next step, `None` once every record has had one.
    pub(super) fn next(&mut self) -> Option<Next<'r, P>> {
        let (position, work) = self.pending.pop_front()?;
        if self.blocked {
            let held = match work {
                Work::Ignore => Outcome::Ignored,
                _ => Outcome::HeldBack,
            };
            return Some(Next::HeldBack(position, held));
        }
        if self.singles == 0 && matches!(work, Work::Apply(..)) {
            let mut run = take_run(
                (position, work),
                &mut self.pending,
                self.events_per_transaction,
            );
            if run.len() > 1 {
                return Some(Next::Run(run));
            }
            let (position, work) = run.remove(0);
            return Some(Next::One(position, work));
        }
        self.singles = self.singles.saturating_sub(1);
        Some(Next::One(position, work))
    }

    /// A run that did not commit as one: its events go one at a time, each saying for itself
    /// what it comes to.
    pub(super) fn one_at_a_time(&mut self, run: Vec<(usize, Work<'r, P>)>) {
        self.singles = run.len();
        for item in run.into_iter().rev() {
            self.pending.push_front(item);
        }
    }

    /// Takes in what a record came to: after a blocking outcome, the rest of the key waits.
    pub(super) fn settle(&mut self, outcome: &Outcome) {
        self.blocked |= outcome.blocks();
    }
}

/// The events at the front of a key's group that form a chain after `first` (each one's
/// predecessor is the one before it), up to `limit`: what one transaction may commit.
fn take_run<'r, P>(
    first: (usize, Work<'r, P>),
    pending: &mut VecDeque<(usize, Work<'r, P>)>,
    limit: usize,
) -> Vec<(usize, Work<'r, P>)> {
    let Work::Apply(_, step, _) = &first.1 else {
        return vec![first];
    };
    let mut last = step.sequence;
    let mut run = vec![first];
    while let Some((_, Work::Apply(_, next, _))) = pending.front() {
        if next.after != last || run.len() >= limit {
            break;
        }
        last = next.sequence;
        run.extend(pending.pop_front());
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Arrived, Once};
    use crate::envelope::Envelope;
    use crate::store::{ItemKey, Step};

    fn envelope(key: &str) -> Envelope<()> {
        Envelope {
            event_id: format!("{key}-event"),
            event_type: "Happened".into(),
            schema_version: 1,
            aggregate_type: "Thing".into(),
            aggregate_id: key.into(),
            ordering_key: key.into(),
            occurred_at: "2026-01-01T00:00:00Z".into(),
            trace_context: None,
            payload: (),
        }
    }

    fn step(key: &str, sequence: u64, after: u64) -> Step {
        Step {
            ordering_key: key.into(),
            sequence,
            after,
        }
    }

    fn item(key: &str, sequence: u64) -> ItemKey {
        ItemKey {
            pk: format!("OUTBOX#{key}"),
            sk: format!("SEQ#{sequence}"),
        }
    }

    /// An event of `key` to apply, at `sequence`, whose predecessor is `after`.
    fn apply(key: &str, sequence: u64, after: u64) -> Work<'static, ()> {
        let arrived = Arrived {
            envelope: envelope(key),
            item: None,
            alone: true,
        };
        Work::Apply(
            Box::new(arrived),
            step(key, sequence, after),
            item(key, sequence),
        )
    }

    /// An event of `key` the consumer does not take.
    fn skip(key: &str, sequence: u64, after: u64) -> Work<'static, ()> {
        Work::Skip(
            step(key, sequence, after),
            item(key, sequence),
            "Other v1".into(),
        )
    }

    /// An unreadable event without an outbox sequence.
    fn unreadable(key: Option<&str>, event_id: &str) -> Work<'static, ()> {
        let once = Once {
            ordering_key: key.map(str::to_owned),
            event_id: event_id.into(),
            entity: None,
            group: None,
        };
        Work::Unreadable(once, "not an envelope".into(), None)
    }

    fn positions(groups: &[Vec<(usize, Work<'static, ()>)>]) -> Vec<Vec<usize>> {
        groups
            .iter()
            .map(|group| group.iter().map(|(position, _)| *position).collect())
            .collect()
    }

    /// Every step of a key's queue, as text, settling each record with `outcome_of` its position.
    fn steps(mut queue: KeyQueue<()>, outcome_of: impl Fn(usize) -> Outcome) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(next) = queue.next() {
            match next {
                Next::HeldBack(position, outcome) => {
                    seen.push(format!("held {position} {outcome:?}"))
                }
                Next::Run(run) => {
                    let positions: Vec<String> = run.iter().map(|(p, _)| p.to_string()).collect();
                    for (position, _) in &run {
                        queue.settle(&outcome_of(*position));
                    }
                    seen.push(format!("run {}", positions.join(",")));
                }
                Next::One(position, _) => {
                    queue.settle(&outcome_of(position));
                    seen.push(format!("one {position}"));
                }
            }
        }
        seen
    }

    fn chain(key: &str, events: u64) -> Vec<(usize, Work<'static, ()>)> {
        (1..=events)
            .map(|sequence| (sequence as usize - 1, apply(key, sequence, sequence - 1)))
            .collect()
    }

    #[test]
    fn grouping_puts_each_keys_events_together_in_sequence_order_whatever_their_arrival() {
        let works = vec![
            apply("a", 2, 1),
            apply("b", 1, 0),
            apply("a", 1, 0),
            skip("a", 3, 2),
            apply("b", 2, 1),
        ];
        let groups = group_by_key(works);
        assert_eq!(positions(&groups), vec![vec![2, 0, 3], vec![1, 4]]);
    }

    #[test]
    fn grouping_gives_each_record_without_a_key_a_group_of_its_own() {
        let works = vec![
            Work::Ignore,
            apply("a", 1, 0),
            Work::Drop("not JSON".into()),
            Work::Poison {
                reason: "from elsewhere".into(),
                at: None,
                event: None,
            },
            unreadable(None, "e1"),
            unreadable(None, "e2"),
        ];
        let groups = group_by_key(works);
        assert_eq!(
            positions(&groups),
            vec![vec![0], vec![1], vec![2], vec![3], vec![4], vec![5]]
        );
    }

    #[test]
    fn grouping_keeps_events_without_a_sequence_in_arrival_order_within_their_key() {
        let works = vec![
            unreadable(Some("a"), "e1"),
            unreadable(Some("b"), "e2"),
            unreadable(Some("a"), "e3"),
            unreadable(Some("a"), "e4"),
        ];
        let groups = group_by_key(works);
        assert_eq!(positions(&groups), vec![vec![0, 2, 3], vec![1]]);
    }

    #[test]
    fn a_keys_consecutive_events_go_as_one_run_up_to_a_gap_a_skip_or_the_limit() {
        let gap = vec![
            (0, apply("a", 1, 0)),
            (1, apply("a", 2, 1)),
            (2, apply("a", 4, 3)),
            (3, apply("a", 5, 4)),
        ];
        let skipped = vec![
            (0, apply("a", 1, 0)),
            (1, apply("a", 2, 1)),
            (2, skip("a", 3, 2)),
            (3, apply("a", 4, 3)),
            (4, apply("a", 5, 4)),
        ];
        let cases: [(&str, _, usize, &[&str]); 5] = [
            ("consecutive", chain("a", 3), 25, &["run 0,1,2"]),
            ("a gap in the sequence", gap, 25, &["run 0,1", "run 2,3"]),
            (
                "the events per transaction limit",
                chain("a", 5),
                2,
                &["run 0,1", "run 2,3", "one 4"],
            ),
            (
                "one event per transaction",
                chain("a", 3),
                1,
                &["one 0", "one 1", "one 2"],
            ),
            (
                "an event that is not applied",
                skipped,
                25,
                &["run 0,1", "one 2", "run 3,4"],
            ),
        ];
        for (case, group, limit, expected) in cases {
            let queue = KeyQueue::new(group, limit);
            assert_eq!(steps(queue, |_| Outcome::Applied), expected, "{case}");
        }
    }

    #[test]
    fn a_run_that_did_not_commit_as_one_goes_one_event_at_a_time_then_combining_resumes() {
        let mut queue = KeyQueue::new(chain("a", 5), 3);
        let Some(Next::Run(run)) = queue.next() else {
            panic!("the first three events form a run");
        };
        queue.one_at_a_time(run);
        assert_eq!(
            steps(queue, |_| Outcome::Applied),
            ["one 0", "one 1", "one 2", "run 3,4"]
        );
    }

    #[test]
    fn after_a_blocking_outcome_the_rest_of_the_key_is_held_back_and_ignored_records_stay_ignored()
    {
        let group = vec![
            (0, apply("a", 1, 0)),
            (1, skip("a", 2, 1)),
            (2, Work::Ignore),
            (3, apply("a", 3, 2)),
        ];
        let queue = KeyQueue::new(group, 25);
        let outcome_of = |position| match position {
            1 => Outcome::Waiting,
            _ => Outcome::Applied,
        };
        assert_eq!(
            steps(queue, outcome_of),
            ["one 0", "one 1", "held 2 Ignored", "held 3 HeldBack"]
        );
    }

    #[test]
    fn only_refused_poison_waiting_and_failed_outcomes_block_a_key() {
        let outcomes = [
            (Outcome::Refused("too large".into()), true),
            (Outcome::Poison, true),
            (Outcome::Waiting, true),
            (Outcome::Failed, true),
            (Outcome::Applied, false),
            (Outcome::Duplicate, false),
            (Outcome::Skipped, false),
            (Outcome::Ignored, false),
            (Outcome::Parked, false),
            (Outcome::Dropped, false),
        ];
        for (outcome, blocks) in outcomes {
            let mut queue = KeyQueue::new(vec![(0, skip("a", 1, 0)), (1, skip("a", 2, 1))], 25);
            assert!(matches!(queue.next(), Some(Next::One(0, _))));
            queue.settle(&outcome);
            let next = queue.next();
            if blocks {
                let held = matches!(next, Some(Next::HeldBack(1, Outcome::HeldBack)));
                assert!(held, "{outcome:?} blocks");
            } else {
                let next_goes = matches!(next, Some(Next::One(1, _)));
                assert!(next_goes, "{outcome:?} lets the key go on");
            }
        }
    }
}
