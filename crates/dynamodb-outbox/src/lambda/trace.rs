//! Links from a consumer's work back to the trace of the request that wrote each event.
//!
//! The hop through the stream is asynchronous, so OpenTelemetry and X-Ray both model it as a
//! *link* from the consumer's own trace to the writer's, never as the writer being the consumer's
//! parent (one batch serves many writers, each from another trace).

use crate::TraceContext;

/// Length of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
const TRACEPARENT_LEN: usize = 55;

/// How a consumer's work leads back to the request that wrote the event. Each id is given in
/// both notations, so a search by either finds the consumer's work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLink {
    /// W3C trace id (32 lower-case hex digits): the `traceparent`'s when the client sent one,
    /// else the writer's X-Ray trace in W3C notation.
    pub trace_id: String,
    /// X-Ray trace id (`1-<8 hex>-<24 hex>`): the writer's X-Ray trace when Lambda gave it one,
    /// else the `traceparent`'s trace in X-Ray notation.
    pub xray_trace_id: String,
    /// The writer's span: the `traceparent`'s parent id, else the X-Ray `Parent`.
    pub span_id: Option<String>,
}

/// The link to put on the consumer's logs and metrics for an event, if either header of its
/// trace context names a trace.
pub fn link(context: &TraceContext) -> Option<TraceLink> {
    // A decoded event's headers were never checked by this process: only a valid
    // traceparent is split (its ids then have their fixed lengths).
    let w3c = context
        .traceparent
        .as_deref()
        .filter(|t| is_valid_traceparent(t))
        .and_then(|t| {
            let mut fields = t.split('-').skip(1);
            Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
        });
    let xray = context.xray_trace_id.as_deref().and_then(|header| {
        let field = |name: &str| {
            header
                .split(';')
                .find_map(|f| f.trim().strip_prefix(name))
                .map(str::to_owned)
        };
        let root = field("Root=").filter(|r| xray_to_w3c(r).is_some())?;
        Some((root, field("Parent=")))
    });
    match (w3c, xray) {
        (None, None) => None,
        (Some((trace_id, span_id)), xray) => Some(TraceLink {
            xray_trace_id: match &xray {
                Some((root, _)) => root.clone(),
                None => w3c_to_xray(&trace_id),
            },
            trace_id,
            span_id: Some(span_id),
        }),
        (None, Some((root, parent))) => Some(TraceLink {
            trace_id: xray_to_w3c(&root)?,
            xray_trace_id: root,
            span_id: parent,
        }),
    }
}

/// `1-5759e988-bd862e3fe1be46a994272793` → `5759e988bd862e3fe1be46a994272793`: the mapping
/// X-Ray uses for W3C trace ids.
fn xray_to_w3c(root: &str) -> Option<String> {
    let (time, random) = root.strip_prefix("1-")?.split_once('-')?;
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    (time.len() == 8 && random.len() == 24 && hex(time) && hex(random))
        .then(|| format!("{time}{random}").to_ascii_lowercase())
}

fn w3c_to_xray(trace_id: &str) -> String {
    format!("1-{}-{}", &trace_id[..8], &trace_id[8..])
}

/// A W3C trace-context `traceparent`: `version-traceid-parentid-flags` in lower-case hex, where
/// the version is not `ff` and neither id is all zeros.
pub fn is_valid_traceparent(value: &str) -> bool {
    let fields: Vec<&str> = value.split('-').collect();
    let hex = |field: &str, len: usize| {
        field.len() == len
            && field
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let not_zero = |field: &str| field.bytes().any(|b| b != b'0');
    value.len() == TRACEPARENT_LEN
        && matches!(fields.as_slice(), [version, trace_id, parent_id, flags]
            if hex(version, 2) && *version != "ff"
                && hex(trace_id, 32) && not_zero(trace_id)
                && hex(parent_id, 16) && not_zero(parent_id)
                && hex(flags, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const XRAY: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    fn context(traceparent: Option<&str>, xray: Option<&str>) -> TraceContext {
        TraceContext {
            traceparent: traceparent.map(str::to_owned),
            xray_trace_id: xray.map(str::to_owned),
        }
    }

    #[test]
    fn only_well_formed_traceparents_are_valid() {
        assert!(is_valid_traceparent(TRACEPARENT));
        for invalid in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        ] {
            assert!(!is_valid_traceparent(invalid), "{invalid}");
        }
    }

    #[test]
    fn the_link_names_the_writers_trace_in_both_notations() {
        assert_eq!(
            link(&context(Some(TRACEPARENT), None)),
            Some(TraceLink {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                xray_trace_id: "1-4bf92f35-77b34da6a3ce929d0e0e4736".into(),
                span_id: Some("00f067aa0ba902b7".into()),
            })
        );
        assert_eq!(
            link(&context(None, Some(XRAY))),
            Some(TraceLink {
                trace_id: "5759e988bd862e3fe1be46a994272793".into(),
                xray_trace_id: "1-5759e988-bd862e3fe1be46a994272793".into(),
                span_id: Some("53995c3f42cd8ad8".into()),
            })
        );
        let joined = link(&context(Some(TRACEPARENT), Some(XRAY))).unwrap();
        assert_eq!(
            (joined.trace_id.as_str(), joined.xray_trace_id.as_str()),
            (
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "1-5759e988-bd862e3fe1be46a994272793"
            )
        );
    }

    #[test]
    fn headers_decoded_from_a_record_are_checked_before_they_are_split() {
        assert_eq!(link(&context(None, Some("Root=1-zz;Parent=1"))), None);
        let forged = context(Some("00-4bf9"), Some("Root=1-\u{e9}\u{e9}\u{e9}\u{e9}-x"));
        assert_eq!(link(&forged), None);
    }
}
