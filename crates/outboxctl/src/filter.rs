//! Lambda event filtering (the `FilterCriteria` patterns of an event source mapping), for the
//! subset of the pattern language that stream filters use: exact values, `prefix`, `exists`,
//! `anything-but` and `numeric` comparisons, nested objects, and "any of" arrays.

use serde_json::Value as Json;

/// A record passes if any pattern matches it (no patterns: every record passes).
pub fn passes(patterns: &[Json], record: &Json) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| matches(p, record))
}

fn matches(pattern: &Json, value: &Json) -> bool {
    match pattern {
        Json::Object(fields) => fields.iter().all(|(key, sub)| match sub {
            Json::Array(alternatives) => any_of(alternatives, value.get(key)),
            Json::Object(_) => value.get(key).is_some_and(|v| matches(sub, v)),
            _ => false,
        }),
        _ => false,
    }
}

fn any_of(alternatives: &[Json], value: Option<&Json>) -> bool {
    alternatives.iter().any(|alt| match alt {
        Json::Object(rule) => rule_matches(rule, value),
        literal => match value {
            Some(Json::Array(items)) => items.contains(literal),
            Some(v) => v == literal,
            None => false,
        },
    })
}

fn rule_matches(rule: &serde_json::Map<String, Json>, value: Option<&Json>) -> bool {
    rule.iter().all(|(op, arg)| match op.as_str() {
        "exists" => arg.as_bool() == Some(value.is_some()),
        "prefix" => match (value.and_then(Json::as_str), arg.as_str()) {
            (Some(v), Some(p)) => v.starts_with(p),
            _ => false,
        },
        "anything-but" => match (value, arg) {
            (None, _) => false,
            (Some(v), Json::Array(excluded)) => !excluded.contains(v),
            (Some(v), excluded) => v != excluded,
        },
        "numeric" => numeric(arg, value),
        _ => false,
    })
}

fn numeric(arg: &Json, value: Option<&Json>) -> bool {
    let Some(v) = value.and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok())) else {
        return false;
    };
    let Some(terms) = arg.as_array() else {
        return false;
    };
    terms.chunks(2).all(|pair| match pair {
        [Json::String(op), bound] => {
            let Some(b) = bound.as_f64() else {
                return false;
            };
            match op.as_str() {
                "=" => v == b,
                "<" => v < b,
                "<=" => v <= b,
                ">" => v > b,
                ">=" => v >= b,
                _ => false,
            }
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_outbox_pattern_selects_outbox_inserts_only() {
        let pattern = json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"entity": {"S": ["OutboxEvent"]}}}});
        let insert = json!({"eventName": "INSERT", "dynamodb": {"NewImage": {"entity": {"S": "OutboxEvent"}}}});
        let order =
            json!({"eventName": "INSERT", "dynamodb": {"NewImage": {"entity": {"S": "Order"}}}});
        let modify = json!({"eventName": "MODIFY", "dynamodb": {"NewImage": {"entity": {"S": "OutboxEvent"}}}});
        let remove = json!({"eventName": "REMOVE", "dynamodb": {"Keys": {}}});
        let patterns = [pattern];
        assert!(passes(&patterns, &insert));
        for other in [order, modify, remove] {
            assert!(!passes(&patterns, &other));
        }
    }

    #[test]
    fn rules_and_alternatives() {
        let p = json!({"a": [{"prefix": "x"}, "yes"], "b": [{"exists": false}], "c": [{"numeric": [">", 1, "<=", 5]}]});
        let p = [p];
        assert!(passes(&p, &json!({"a": "xyz", "c": 5})));
        assert!(passes(&p, &json!({"a": "yes", "c": "2"})));
        assert!(!passes(&p, &json!({"a": "no", "c": 2})));
        assert!(!passes(&p, &json!({"a": "x", "b": 1, "c": 2})));
        assert!(!passes(&p, &json!({"a": "x", "c": 6})));
    }
}
