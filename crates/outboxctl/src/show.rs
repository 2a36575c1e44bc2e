//! `status` and `inspect`: what a deployed outbox holds, read from its tables through the
//! engine's read-only view ([`OutboxView`]). Nothing here writes.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use dynamodb_outbox::dynamodb::{OutboxView, ParkedRecord, StoredEvent};
use dynamodb_outbox::Envelope;
use serde_json::{json, Value as Json};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Events read per pending-index shard, and parked events per consumer: enough for any outbox
/// that is working, and a bound on what one look costs when one is not.
pub const READ_CAP: usize = 10_000;

/// The tables a look reads.
pub struct Tables<'a> {
    /// The outbox table.
    pub outbox: &'a str,
    /// Where the consumers keep their progress and parked events.
    pub consumers: &'a str,
}

/// Per consumer: its pending events (count, oldest), its parked events (count, oldest), and its
/// lag (how long ago the oldest event it has yet to apply occurred). `consumers` empty: those
/// the pending events are routed to.
pub async fn status(view: &OutboxView, tables: &Tables<'_>, consumers: &[String]) -> Result<Json> {
    let pending = view
        .pending(READ_CAP)
        .await
        .context("reading the pending index")?;
    let consumers: BTreeSet<String> = if consumers.is_empty() {
        pending
            .iter()
            .flat_map(|e| e.routed.iter().cloned())
            .collect()
    } else {
        consumers.iter().cloned().collect()
    };
    let now = OffsetDateTime::now_utc();
    let mut rows = Vec::new();
    for consumer in consumers {
        let waiting: Vec<&StoredEvent> =
            pending.iter().filter(|e| e.waits_for(&consumer)).collect();
        let oldest = waiting
            .iter()
            .filter_map(|e| e.occurred_at.as_deref())
            .min();
        let parked = view
            .parked(tables.consumers, &consumer, READ_CAP)
            .await
            .with_context(|| format!("reading {consumer}'s parked events"))?;
        let oldest_parked = parked.iter().map(|p| p.parked_at.as_str()).min();
        let lag = oldest.and_then(|t| age_seconds(t, now));
        rows.push(json!({
            "consumer": consumer,
            "pending": {"count": waiting.len(), "oldest_occurred_at": oldest,
                        "oldest_age_seconds": lag},
            "parked": {"count": parked.len(), "oldest_parked_at": oldest_parked,
                       "oldest_age_seconds": oldest_parked.and_then(|t| age_seconds(t, now))},
            "lag_seconds": lag.unwrap_or(0),
        }));
    }
    Ok(json!({
        "table": tables.outbox,
        "consumer_table": tables.consumers,
        "pending_total": pending.len(),
        "consumers": rows,
    }))
}

/// `status`'s answer as a table for people.
pub fn status_text(status: &Json) -> String {
    let mut out = format!(
        "outbox {} ({} pending events; consumers' records in {})\n",
        status["table"].as_str().unwrap_or_default(),
        status["pending_total"],
        status["consumer_table"].as_str().unwrap_or_default(),
    );
    let rows = status["consumers"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        out.push_str("no consumer waits for anything (name consumers with --consumer to see their parked events)\n");
        return out;
    }
    out.push_str(&format!(
        "{:<24} {:>8} {:>12} {:>8} {:>12} {:>10}\n",
        "CONSUMER", "PENDING", "OLDEST", "PARKED", "OLDEST", "LAG"
    ));
    for row in rows {
        out.push_str(&format!(
            "{:<24} {:>8} {:>12} {:>8} {:>12} {:>10}\n",
            row["consumer"].as_str().unwrap_or_default(),
            text(&row["pending"]["count"]),
            duration(&row["pending"]["oldest_age_seconds"]),
            text(&row["parked"]["count"]),
            duration(&row["parked"]["oldest_age_seconds"]),
            duration(&row["lag_seconds"]),
        ));
    }
    out
}

/// The events `target` names: the event with that id, or the events of that ordering key. With
/// each, who is done with it, who waits, and why those who parked it did.
pub async fn inspect(
    view: &OutboxView,
    tables: &Tables<'_>,
    target: &str,
    consumers: &[String],
) -> Result<Json> {
    let mut events = view
        .events_of_key(target, READ_CAP)
        .await
        .context("reading the ordering key's events")?;
    let by = if events.is_empty() {
        events.extend(
            view.event_by_id(target)
                .await
                .context("finding the event")?,
        );
        "event_id"
    } else {
        "ordering_key"
    };
    let mut shown = Vec::new();
    for event in &events {
        shown.push(event_json(view, tables, event).await?);
    }
    // An event that left the outbox (processed and expired) may still be parked.
    let mut parked_only = Vec::new();
    if events.is_empty() {
        for consumer in consumers {
            if let Some(p) = view
                .parked_event(tables.consumers, consumer, target)
                .await?
            {
                parked_only.push(parked_json(&p));
            }
        }
    }
    Ok(json!({"target": target, "found_by": by, "events": shown, "parked_elsewhere": parked_only}))
}

async fn event_json(view: &OutboxView, tables: &Tables<'_>, event: &StoredEvent) -> Result<Json> {
    // A consumer that parked the event went on past it: out of the waiting set, not done.
    let (mut parked, mut done) = (Vec::new(), Vec::new());
    for consumer in event.routed.difference(&event.waiting) {
        let id = event.event_id.as_deref().unwrap_or_default();
        match view.parked_event(tables.consumers, consumer, id).await? {
            Some(p) => parked.push(parked_json(&p)),
            None => done.push(consumer),
        }
    }
    let envelope = serde_dynamo::from_item::<_, Envelope<Json>>(event.item.clone())
        .ok()
        .and_then(|e| serde_json::to_value(e).ok());
    Ok(json!({
        "event_id": event.event_id,
        "ordering_key": event.ordering_key,
        "sequence": event.sequence,
        "occurred_at": event.occurred_at,
        "status": if event.pending { "PENDING" } else { "PROCESSED" },
        "consumers": {"routed": event.routed, "done": done, "waiting": event.waiting},
        "parked": parked,
        "envelope": envelope,
    }))
}

/// A parked event as `inspect` and `redrive --dry-run` show it.
pub fn parked_json(parked: &ParkedRecord) -> Json {
    json!({
        "consumer": parked.consumer,
        "event_id": parked.event_id,
        "ordering_key": parked.ordering_key,
        "sequence": parked.sequence,
        "reason": parked.reason,
        "attempts": parked.attempts,
        "parked_at": parked.parked_at,
        "record": {"pk": parked.key.pk, "sk": parked.key.sk},
    })
}

/// `inspect`'s answer for people.
pub fn inspect_text(found: &Json) -> String {
    let events = found["events"].as_array().cloned().unwrap_or_default();
    let elsewhere = found["parked_elsewhere"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let target = found["target"].as_str().unwrap_or_default();
    if events.is_empty() && elsewhere.is_empty() {
        return format!("no event with id or ordering key {target} in the outbox (processed events expire; name --consumer to look among parked events)\n");
    }
    let mut out = String::new();
    for event in &events {
        out.push_str(&format!(
            "event {} | ordering key {} | sequence {} | occurred {} | {}\n",
            text(&event["event_id"]),
            text(&event["ordering_key"]),
            text(&event["sequence"]),
            text(&event["occurred_at"]),
            text(&event["status"]),
        ));
        let consumers = &event["consumers"];
        out.push_str(&format!("  done:    {}\n", list(&consumers["done"])));
        out.push_str(&format!("  waiting: {}\n", list(&consumers["waiting"])));
        for parked in event["parked"].as_array().into_iter().flatten() {
            out.push_str(&parked_line("  parked by", parked));
        }
        out.push_str(&format!("  envelope: {}\n", event["envelope"]));
    }
    for parked in &elsewhere {
        out.push_str(&parked_line("no longer in the outbox; parked by", parked));
    }
    out
}

/// One line for a parked event.
pub fn parked_line(prefix: &str, parked: &Json) -> String {
    format!(
        "{prefix} {}: event {} (key {}, sequence {}), parked {}, {} attempt(s): {}\n",
        text(&parked["consumer"]),
        text(&parked["event_id"]),
        text(&parked["ordering_key"]),
        text(&parked["sequence"]),
        text(&parked["parked_at"]),
        text(&parked["attempts"]),
        text(&parked["reason"]),
    )
}

fn text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn list(value: &Json) -> String {
    let names: Vec<String> = value.as_array().into_iter().flatten().map(text).collect();
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(", ")
    }
}

/// Whole seconds from `rfc3339` to `now` (0 for a time ahead of this machine's clock).
fn age_seconds(rfc3339: &str, now: OffsetDateTime) -> Option<i64> {
    let at = OffsetDateTime::parse(rfc3339, &Rfc3339).ok()?;
    Some((now - at).whole_seconds().max(0))
}

/// Seconds as people read them: `45s`, `3m 20s`, `2h 5m`, `3d 4h`; `-` for none.
fn duration(seconds: &Json) -> String {
    let Some(s) = seconds.as_i64() else {
        return "-".to_owned();
    };
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        let d = |s: i64| duration(&json!(s));
        assert_eq!(d(0), "0s");
        assert_eq!(d(200), "3m 20s");
        assert_eq!(d(7500), "2h 5m");
        assert_eq!(d(273_600), "3d 4h");
        assert_eq!(duration(&Json::Null), "-");
    }
}
