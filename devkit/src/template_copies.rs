//! The pattern templates' shared parts, copied from `template.yaml` (`make templates`).
//!
//! Each pattern keeps a template of its own, so `sam build -t` compiles only that pattern's
//! functions and a reader sees no `Condition` (why not one template with a `Pattern` parameter:
//! the comment at the top of `template.yaml`). What the patterns share is written once, in
//! `template.yaml`: a pattern template's header names the entries it copies, one section a line,
//!
//! ```yaml
//! # Copied from template.yaml by `make templates`: edit them there (a test fails when a copy
//! # here differs).
//! #   Resources: RewardsTable, HttpApi
//! ```
//!
//! and [`refresh`] rewrites each named entry (its comments included) from `template.yaml`, with
//! the names that differ by pattern renamed: resource names `outbox-${StageName}` become
//! `<pattern>-${StageName}`, and `CodeUri: .` becomes `../..` (the repository root, seen from
//! `patterns/<pattern>/`). Entries the header does not name are the pattern's own.

use std::ops::Range;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};

use crate::Pattern;

/// The first line of a pattern template's list of copied entries.
pub const HEADER: &str = "# Copied from template.yaml by `make templates`";

/// The patterns whose templates copy from `template.yaml` (pattern 1's own).
pub const COPYING: [Pattern; 3] = [Pattern::Cdc, Pattern::SelfRead, Pattern::Broker];

/// `text` (a pattern's template) with every entry its header names replaced by `template.yaml`'s
/// (`root`), renamed for `pattern`.
pub fn refresh(root: &str, pattern: Pattern, text: &str) -> Result<String> {
    let root_lines: Vec<&str> = root.lines().collect();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for (section, name) in copied_entries(text)? {
        let from = entry(&root_lines, &section, &name)
            .ok_or_else(|| anyhow!("template.yaml has no {section} entry {name} to copy"))?;
        let own: Vec<&str> = lines.iter().map(String::as_str).collect();
        let to = entry(&own, &section, &name).ok_or_else(|| {
            anyhow!("the {pattern} template names {section} {name} as copied but has no such entry")
        })?;
        let copy: Vec<String> = root_lines[from]
            .iter()
            .map(|line| rename(line, pattern))
            .collect();
        lines.splice(to, copy);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

/// Rewrites every pattern template whose copies differ from `template.yaml`; the paths rewritten.
pub fn write_all() -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (path, now, fresh) in each_template()? {
        if now != fresh {
            std::fs::write(&path, fresh).with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The pattern templates whose copies differ from `template.yaml`.
pub fn stale() -> Result<Vec<PathBuf>> {
    Ok(each_template()?
        .into_iter()
        .filter(|(_, now, fresh)| now != fresh)
        .map(|(path, _, _)| path)
        .collect())
}

/// Each copying pattern's template: its path, its text and its text refreshed.
fn each_template() -> Result<Vec<(PathBuf, String, String)>> {
    let root_path = Pattern::Outbox.template_path();
    let root = std::fs::read_to_string(&root_path)
        .with_context(|| format!("reading {}", root_path.display()))?;
    COPYING
        .into_iter()
        .map(|pattern| {
            let path = pattern.template_path();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let fresh =
                refresh(&root, pattern, &text).with_context(|| format!("{}", path.display()))?;
            Ok((path, text, fresh))
        })
        .collect()
}

/// The `(section, entry)` pairs a pattern template's header names.
fn copied_entries(text: &str) -> Result<Vec<(String, String)>> {
    let mut lines = text.lines().skip_while(|line| !line.starts_with(HEADER));
    if lines.next().is_none() {
        bail!("no `{HEADER}` header naming the entries it copies");
    }
    let mut entries = Vec::new();
    for line in lines.take_while(|line| line.starts_with('#')) {
        let Some(list) = line.strip_prefix("#   ") else {
            continue;
        };
        let (section, names) = list
            .split_once(": ")
            .ok_or_else(|| anyhow!("`{line}` is not `#   Section: Entry, Entry`"))?;
        for name in names.split(", ") {
            entries.push((section.to_owned(), name.trim_end_matches('.').to_owned()));
        }
    }
    if entries.is_empty() {
        bail!("the `{HEADER}` header lists no `#   Section: Entry, Entry` line");
    }
    Ok(entries)
}

/// The lines of `name` in the top-level `section` (`Resources`): the comment lines right above
/// its key, the key and everything indented under it, without the blank lines that follow.
fn entry(lines: &[&str], section: &str, name: &str) -> Option<Range<usize>> {
    let header = format!("{section}:");
    let start = lines.iter().position(|l| l.trim_end() == header)? + 1;
    let end = lines[start..]
        .iter()
        .position(|l| !l.is_empty() && !l.starts_with(' '))
        .map_or(lines.len(), |n| start + n);
    let key = format!("  {name}:");
    let at = (start..end).find(|&n| {
        let line = lines[n];
        line.strip_prefix(&key)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    })?;
    let is_own_comment = |n: usize| lines[n].starts_with("  #");
    let mut first = at;
    while first > start && is_own_comment(first - 1) {
        first -= 1;
    }
    // The entry ends where the next one (or its comments) starts at the entries' indentation.
    let mut last = (at + 1..end)
        .find(|&n| {
            lines[n].starts_with("  ")
                && !lines[n].starts_with("   ")
                && !lines[n].trim().is_empty()
        })
        .unwrap_or(end);
    while last > at + 1 && lines[last - 1].trim().is_empty() {
        last -= 1;
    }
    Some(first..last)
}

/// A line of `template.yaml` as `pattern`'s template has it.
fn rename(line: &str, pattern: Pattern) -> String {
    if line.trim() == "CodeUri: ." {
        return line.replace("CodeUri: .", "CodeUri: ../..");
    }
    let p = pattern.name();
    line.replace("outbox-${StageName}", &format!("{p}-${{StageName}}"))
        .replace("/outbox/${StageName}/", &format!("/{p}/${{StageName}}/"))
        .replace("outbox-<StageName>", &format!("{p}-<StageName>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "\
Parameters:
  StageName:
    Type: String
  Retention:
    Type: Number

Resources:
  # Balances.
  RewardsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub \"outbox-${StageName}-rewards\"

  Api:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: .
Outputs:
  Url:
    Value: x
";

    const CDC: &str = "\
# Copied from template.yaml by `make templates`: edit them there.
#   Parameters: StageName
#   Resources: RewardsTable, Api
Parameters:
  StageName:
    Type: Strin
Resources:
  OrdersTable:
    Type: AWS::DynamoDB::Table
  RewardsTable:
    Type: AWS::DynamoDB::Table

  # Our own.
  Own:
    Type: AWS::SQS::Queue
  Api:
    Type: changed by hand
Outputs:
  Url:
    Value: y
";

    #[test]
    fn named_entries_are_copied_from_the_root_with_the_patterns_names_and_the_rest_is_kept() {
        let fresh = refresh(ROOT, Pattern::Cdc, CDC).unwrap();
        assert_eq!(
            fresh,
            "\
# Copied from template.yaml by `make templates`: edit them there.
#   Parameters: StageName
#   Resources: RewardsTable, Api
Parameters:
  StageName:
    Type: String
Resources:
  OrdersTable:
    Type: AWS::DynamoDB::Table
  # Balances.
  RewardsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub \"cdc-${StageName}-rewards\"

  # Our own.
  Own:
    Type: AWS::SQS::Queue
  Api:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ../..
Outputs:
  Url:
    Value: y
"
        );
        assert_eq!(refresh(ROOT, Pattern::Cdc, &fresh).unwrap(), fresh);
    }

    #[test]
    fn an_entry_named_but_missing_on_either_side_is_an_error_naming_it() {
        let missing_in_root = CDC.replace("RewardsTable, Api", "RewardsTable, Queue");
        let error = refresh(ROOT, Pattern::Cdc, &missing_in_root).unwrap_err();
        assert!(
            error.to_string().contains("Resources entry Queue"),
            "{error}"
        );
        let missing_here = CDC.replace("  Api:\n    Type: changed by hand\n", "");
        let error = refresh(ROOT, Pattern::Cdc, &missing_here).unwrap_err();
        assert!(error.to_string().contains("Resources Api"), "{error}");
        let error = refresh(ROOT, Pattern::Cdc, "Resources:\n").unwrap_err();
        assert!(error.to_string().contains(HEADER), "{error}");
    }

    #[test]
    fn every_pattern_templates_copies_are_what_template_yaml_says() {
        let stale = stale().unwrap();
        assert!(
            stale.is_empty(),
            "these templates' copies of template.yaml's entries differ from it: {stale:?}; edit \
             template.yaml and run `make templates`, or make the entry the pattern's own by taking \
             it out of the template's header"
        );
        for (path, text, _) in each_template().unwrap() {
            assert!(
                copied_entries(&text).unwrap().len() >= 3,
                "{} copies next to nothing",
                path.display()
            );
        }
    }
}
