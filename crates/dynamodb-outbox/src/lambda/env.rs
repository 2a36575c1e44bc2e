//! A function's settings, read from its environment once at its cold start.

use std::str::FromStr;

/// A setting the environment lacks or holds in a shape its reader refuses: a function that
/// cannot start, its variable named.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The variable is unset, empty or not Unicode: the template sets it.
    #[error("environment variable {0} is not set")]
    Missing(String),
    /// The variable's value does not parse as the setting.
    #[error("environment variable {name} is {value:?}: {source}")]
    Invalid {
        /// The variable.
        name: String,
        /// What it holds.
        value: String,
        /// Why it does not parse.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The environment variable `name`, parsed as `T` (a `String`, a number of seconds, ...).
///
/// ```
/// # use dynamodb_outbox::lambda::{env_var, EnvError};
/// let missing = env_var::<u64>("OUTBOX_DOCTEST_UNSET_VARIABLE");
/// assert!(matches!(missing, Err(EnvError::Missing(name)) if name == "OUTBOX_DOCTEST_UNSET_VARIABLE"));
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
        .ok_or_else(|| EnvError::Missing(name.to_owned()))?;
    value.parse().map_err(|e: T::Err| EnvError::Invalid {
        name: name.to_owned(),
        value,
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_blank_or_unparsable_variable_is_an_error_naming_it() {
        let seconds = |value: Option<&str>| parse::<u64>("GRACE", value.map(str::to_owned));
        assert_eq!(seconds(Some("900")).unwrap(), 900);
        assert!(matches!(seconds(None), Err(EnvError::Missing(n)) if n == "GRACE"));
        assert!(matches!(seconds(Some(" ")), Err(EnvError::Missing(n)) if n == "GRACE"));
        let invalid = seconds(Some("15m")).unwrap_err();
        assert_eq!(
            invalid.to_string(),
            r#"environment variable GRACE is "15m": invalid digit found in string"#
        );
        assert!(std::error::Error::source(&invalid).is_some());
    }
}
