//! A function's settings, read from its environment once at its cold start.

use std::str::FromStr;

/// A setting the environment lacks or holds in a shape its reader refuses: a function that
/// cannot start, its variable named, with why its value does not parse as its source.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name} {problem}")]
pub struct EnvError {
    name: String,
    problem: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The environment variable `name`, parsed as `T` (a `String`, a number of seconds, ...).
///
/// ```
/// # use dynamodb_outbox::lambda::env_var;
/// let missing = env_var::<u64>("OUTBOX_DOCTEST_UNSET").unwrap_err();
/// assert_eq!(missing.to_string(), "environment variable OUTBOX_DOCTEST_UNSET is not set");
/// ```
pub fn env_var<T>(name: &str) -> Result<T, EnvError>
where
    T: FromStr,
    T::Err: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    parse(name, std::env::var(name).ok())
}

fn parse<T>(name: &str, value: Option<String>) -> Result<T, EnvError>
where
    T: FromStr,
    T::Err: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let value = value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| EnvError {
            name: name.to_owned(),
            problem: "is not set".into(),
            source: None,
        })?;
    value.parse().map_err(|e: T::Err| {
        let source = e.into();
        EnvError {
            name: name.to_owned(),
            problem: format!("is {value:?}: {source}"),
            source: Some(source),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_blank_or_unparsable_variable_is_an_error_naming_it() {
        let seconds = |value: Option<&str>| parse::<u64>("GRACE", value.map(str::to_owned));
        assert_eq!(seconds(Some("900")).unwrap(), 900);
        for unset in [None, Some(" ")] {
            let missing = seconds(unset).unwrap_err().to_string();
            assert_eq!(missing, "environment variable GRACE is not set");
        }
        let invalid = seconds(Some("15m")).unwrap_err();
        assert_eq!(
            invalid.to_string(),
            r#"environment variable GRACE is "15m": invalid digit found in string"#
        );
        assert!(std::error::Error::source(&invalid).is_some());
    }
}
