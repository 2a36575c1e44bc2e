//! The engine knows nothing of the reference application: no customer, reward, points or order id
//! in its sources, README or manifest (*order* and *orders*, in their sense of a sequence, are the
//! engine's own words). A team adopting it reads an engine, not a fork of someone's shop.

use std::path::{Path, PathBuf};

const DOMAIN_WORDS: &[&str] = &[
    "customer",
    "customers",
    "reward",
    "rewards",
    "points",
    "orderplaced",
    "order_id",
    "sku",
];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                files(&path, out);
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "rs" || e == "md" || e == "toml")
        {
            out.push(path);
        }
    }
}

#[test]
fn the_engine_has_no_word_of_the_reference_application() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    files(root, &mut paths);
    assert!(paths.len() > 10, "{paths:?}");
    let this = Path::new(file!()).file_name().unwrap();
    let mut found = Vec::new();
    for path in paths.iter().filter(|p| p.file_name() != Some(this)) {
        let text = std::fs::read_to_string(path).unwrap().to_lowercase();
        for (line_no, line) in text.lines().enumerate() {
            let words = line.split(|c: char| !(c.is_alphanumeric() || c == '_'));
            for word in words.filter(|w| DOMAIN_WORDS.contains(w)) {
                found.push(format!("{}:{}: {word}", path.display(), line_no + 1));
            }
        }
    }
    assert!(found.is_empty(), "domain words in the engine: {found:#?}");
}
