//! The article's three patterns, each deployed from its own SAM template: the outbox (the root
//! `template.yaml`, which every tool reads by default), CDC on the order table
//! (`patterns/cdc/`), self-read through a Kinesis stream (`patterns/self-read/`).

use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One of the patterns; `outbox|cdc|self-read` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pattern {
    #[default]
    Outbox,
    Cdc,
    SelfRead,
}

impl Pattern {
    pub const ALL: [Pattern; 3] = [Pattern::Outbox, Pattern::Cdc, Pattern::SelfRead];

    /// The name `FromStr` reads and `make PATTERN=` takes.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Outbox => "outbox",
            Pattern::Cdc => "cdc",
            Pattern::SelfRead => "self-read",
        }
    }

    /// The pattern's SAM template, from the repository's root.
    pub fn template_path(self) -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        match self {
            Pattern::Outbox => root.join("template.yaml"),
            Pattern::Cdc => root.join("patterns/cdc/template.yaml"),
            Pattern::SelfRead => root.join("patterns/self-read/template.yaml"),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Pattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Pattern::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| format!("unknown pattern {text:?}: outbox, cdc or self-read"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_read_from_their_names_and_nothing_else() {
        for pattern in Pattern::ALL {
            assert_eq!(pattern.name().parse::<Pattern>(), Ok(pattern));
        }
        assert!("self_read".parse::<Pattern>().is_err());
        assert!(Pattern::SelfRead.template_path().exists());
    }
}
