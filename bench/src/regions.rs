//! Generated regions of a hand-written document: the tools write their figures between a pair of
//! markers, `<!-- begin: NAME -->` and `<!-- end: NAME -->`, and leave every other line as its
//! author wrote it.

use anyhow::{bail, Result};

/// `doc` with the lines between the markers of region `name` replaced by `content`; an error
/// names the marker that is missing or out of place, so a renamed region fails loudly rather
/// than leaving stale figures behind.
pub fn replace(doc: &str, name: &str, content: &str) -> Result<String> {
    let (begin, end) = (
        format!("<!-- begin: {name} -->"),
        format!("<!-- end: {name} -->"),
    );
    let Some(start) = doc.find(&begin) else {
        bail!("no `{begin}` marker");
    };
    let Some(stop) = doc[start..].find(&end).map(|at| start + at) else {
        bail!("no `{end}` marker after `{begin}`");
    };
    if doc[stop + end.len()..].contains(&begin) {
        bail!("`{begin}` stands twice");
    }
    let (before, after) = (&doc[..start], &doc[stop + end.len()..]);
    Ok(format!(
        "{before}{begin}\n{}\n{end}{after}",
        content.trim_end()
    ))
}

/// Every region of `regions` replaced in `doc`.
pub fn replace_all(doc: &str, regions: &[(&str, String)]) -> Result<String> {
    regions
        .iter()
        .try_fold(doc.to_owned(), |doc, (name, content)| {
            replace(&doc, name, content)
        })
}

/// Whether `doc` has every region of `names`, before a run spends minutes on figures it could
/// not write.
pub fn check(doc: &str, names: &[&str]) -> Result<()> {
    let empty: Vec<(&str, String)> = names.iter().map(|n| (*n, String::new())).collect();
    replace_all(doc, &empty).map(drop)
}

/// The document at `path`, read before a run spends minutes on figures it could not write: an
/// error unless it has every region of `names`.
pub fn read(path: &std::path::Path, names: &[&str]) -> Result<String> {
    use anyhow::Context as _;
    let doc =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    check(&doc, names).with_context(|| format!("{} cannot take the figures", path.display()))?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Title\n\nProse before, by hand.\n\n<!-- begin: table -->\n| old |\n<!-- end: table -->\n\nProse after.\n<!-- begin: chart -->\nold chart\n<!-- end: chart -->\n";

    #[test]
    fn only_the_lines_between_the_markers_change() {
        let new = replace_all(
            DOC,
            &[("table", "| new |\n".into()), ("chart", "new chart".into())],
        )
        .unwrap();
        assert_eq!(
            new,
            "# Title\n\nProse before, by hand.\n\n<!-- begin: table -->\n| new |\n<!-- end: table -->\n\nProse after.\n<!-- begin: chart -->\nnew chart\n<!-- end: chart -->\n"
        );
        // Writing the same figures again changes nothing.
        assert_eq!(
            replace_all(
                &new,
                &[("table", "| new |".into()), ("chart", "new chart".into())]
            )
            .unwrap(),
            new
        );
    }

    #[test]
    fn a_missing_marker_is_an_error_that_names_it() {
        let err = replace(DOC, "latency", "x").unwrap_err().to_string();
        assert!(err.contains("<!-- begin: latency -->"), "{err}");
        let no_end = "<!-- begin: table -->\n| old |\n";
        let err = replace(no_end, "table", "x").unwrap_err().to_string();
        assert!(err.contains("<!-- end: table -->"), "{err}");
        let end_first = "<!-- end: table -->\n<!-- begin: table -->\n";
        let err = replace(end_first, "table", "x").unwrap_err().to_string();
        assert!(err.contains("<!-- end: table -->"), "{err}");
        // One bad region in a list stops the whole write.
        assert!(replace_all(DOC, &[("table", "x".into()), ("gone", "y".into())]).is_err());
        assert!(check(DOC, &["table", "chart"]).is_ok());
        let err = check(DOC, &["table", "gone"]).unwrap_err().to_string();
        assert!(err.contains("<!-- begin: gone -->"), "{err}");
    }

    #[test]
    fn a_region_written_twice_is_an_error() {
        let twice = format!("{DOC}<!-- begin: table -->\n<!-- end: table -->\n");
        let err = replace(&twice, "table", "x").unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
    }
}
