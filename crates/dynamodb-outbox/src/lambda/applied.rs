//! The log line of each event a batch applied, with the link to the trace that wrote it.
//!
//! The aggregate's id goes under the field name the application queries by (its operators'
//! saved queries name it), which the engine cannot know at compile time. `tracing` names fields
//! at compile time, so each name gets one callsite built and registered at run time, once per
//! process: what a `tracing::info!` would have compiled, with that one name chosen later.

use std::sync::{Mutex, OnceLock};

use tracing::callsite::{Callsite, Identifier};
use tracing::field::{Field, FieldSet, Value};
use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata};

use super::trace;
use crate::AppliedEvent;

/// The message of the line: what a log query for the work done for an event filters on.
pub const APPLIED_LOG_MESSAGE: &str = "outbox event applied";

/// The number of fields of the line.
const FIELDS: usize = 7;

struct AppliedLine {
    metadata: OnceLock<Metadata<'static>>,
    fields: OnceLock<Vec<Field>>,
}

impl Callsite for AppliedLine {
    // Whether to log is asked of the dispatcher at each line (`log`), as for a callsite whose
    // interest is "sometimes": nothing to cache.
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        // Set in `callsite` before the callsite is registered or returned: never unset here.
        self.metadata.get().expect("metadata set at creation")
    }
}

/// The callsite whose aggregate field is `aggregate_field`, made on first use.
fn callsite(aggregate_field: &'static str) -> &'static AppliedLine {
    static MADE: Mutex<Vec<(&'static str, &'static AppliedLine)>> = Mutex::new(Vec::new());
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, line)) = made.iter().find(|(name, _)| *name == aggregate_field) {
        return line;
    }
    // One small allocation per field name for the process's life: the metadata of a callsite
    // is `'static`, as a macro's would be.
    let line: &'static AppliedLine = Box::leak(Box::new(AppliedLine {
        metadata: OnceLock::new(),
        fields: OnceLock::new(),
    }));
    let names: &'static [&'static str; FIELDS] = Box::leak(Box::new([
        "message",
        "event_id",
        aggregate_field,
        "trace_id",
        "link_trace_id",
        "link_xray_trace_id",
        "link_span_id",
    ]));
    let metadata = Metadata::new(
        "event applied",
        module_path!(),
        Level::INFO,
        Some(file!()),
        Some(line!()),
        Some(module_path!()),
        FieldSet::new(names, Identifier(line)),
        Kind::EVENT,
    );
    let _ = line.metadata.set(metadata);
    let _ = line.fields.set(line.metadata().fields().iter().collect());
    tracing::callsite::register(line);
    made.push((aggregate_field, line));
    line
}

/// Logs `event`, applied in the invocation traced as `trace_id`, with its aggregate's id under
/// `aggregate_field`.
pub(super) fn log(event: &AppliedEvent, aggregate_field: &'static str, trace_id: &str) {
    // The level checks a macro makes first, without a callsite of their own whose cached
    // interest could disagree with this one's.
    if Level::INFO > STATIC_MAX_LEVEL || Level::INFO > LevelFilter::current() {
        return;
    }
    let line = callsite(aggregate_field);
    let metadata = line.metadata();
    if !tracing::dispatcher::get_default(|d| d.enabled(metadata)) {
        return;
    }
    let Some(
        [message, event_id, aggregate, trace_id_field, link_trace, link_xray_field, link_span_field],
    ) = line.fields.get().map(Vec::as_slice)
    else {
        return;
    };
    let link = event.trace_context.as_ref().and_then(trace::link);
    let link_trace_id = link
        .as_ref()
        .map(|l| l.trace_id.as_str())
        .unwrap_or_default();
    let link_xray = link
        .as_ref()
        .map(|l| l.xray_trace_id.as_str())
        .unwrap_or_default();
    let link_span = link
        .as_ref()
        .and_then(|l| l.span_id.as_deref())
        .unwrap_or_default();
    let values: [(&Field, Option<&dyn Value>); FIELDS] = [
        (message, Some(&APPLIED_LOG_MESSAGE as &dyn Value)),
        (event_id, Some(&event.event_id.as_str() as &dyn Value)),
        (aggregate, Some(&event.aggregate_id.as_str() as &dyn Value)),
        (trace_id_field, Some(&trace_id as &dyn Value)),
        (link_trace, Some(&link_trace_id as &dyn Value)),
        (link_xray_field, Some(&link_xray as &dyn Value)),
        (link_span_field, Some(&link_span as &dyn Value)),
    ];
    Event::dispatch(metadata, &metadata.fields().value_set(&values));
}
