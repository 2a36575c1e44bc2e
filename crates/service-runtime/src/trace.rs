//! Trace context across the asynchronous hop: what a producer may carry into an event, and how a
//! consumer links its work back to the producer's trace.

use dynamodb_outbox::TraceContext;

/// How a consumer links its work to a writer's trace: the engine's, which the consumers' batch
/// report uses.
pub use dynamodb_outbox::lambda::{is_valid_traceparent, link, TraceLink};
/// Longest X-Ray trace header kept (`Root=1-…;Parent=…;Sampled=…` is about 80 characters; the
/// rest is room for the `Lineage` field the runtime may add).
pub const MAX_XRAY_TRACE_ID_LEN: usize = 256;

/// The context worth carrying into an event, or `None`. Values come from a client's header
/// or the runtime, so each is checked against its format and size: a malformed or oversized
/// one is dropped (the W3C rule for a `traceparent` a receiver cannot parse: start a new
/// trace), never stored in every event.
pub fn checked(traceparent: Option<String>, xray_trace_id: Option<String>) -> Option<TraceContext> {
    let traceparent = traceparent.filter(|t| is_valid_traceparent(t));
    let xray_trace_id = xray_trace_id.filter(|x| {
        !x.is_empty() && x.len() <= MAX_XRAY_TRACE_ID_LEN && x.bytes().all(|b| b.is_ascii_graphic())
    });
    (traceparent.is_some() || xray_trace_id.is_some()).then_some(TraceContext {
        traceparent,
        xray_trace_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_trace_headers_of_a_bounded_size_are_carried() {
        // Which traceparents are well formed is the engine's test (`lambda::trace`); here, what
        // `checked` keeps of a request's headers.
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(checked(Some("00_malformed".into()), None), None);
        let huge = "a".repeat(9 * 1024);
        assert_eq!(checked(Some(huge.clone()), None), None);
        assert_eq!(
            checked(Some(huge.clone()), Some(huge)),
            None,
            "an oversized X-Ray id is dropped too"
        );
        let kept = checked(
            Some(valid.into()),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793".into()),
        );
        assert_eq!(kept.and_then(|t| t.traceparent).as_deref(), Some(valid));
    }
}
