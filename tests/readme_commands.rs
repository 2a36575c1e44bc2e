//! The README's local command lines, checked against what they name: Docker is not available
//! to the tests, so the `sam local invoke` lines cannot run here, but every function id, event
//! file and environment file they name must exist and fit `template.yaml`. The `cargo lambda
//! invoke` lines run for real in `make test-local-paths`; here their names and files are checked
//! too, so a typo fails fast.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use devkit::template::FunctionSpec;
use devkit::Template;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md")
}

/// The README's lines (in code blocks or inline code) that start with `prefix`, split into words
/// up to a `#` comment or the closing backtick.
fn commands(readme: &str, prefix: &str) -> Vec<Vec<String>> {
    readme
        .lines()
        .filter_map(|line| {
            let start = line.find(prefix)?;
            let command = &line[start..];
            let command = command.split(['`', '#']).next().unwrap_or_default();
            Some(command.split_whitespace().map(str::to_owned).collect())
        })
        .collect()
}

/// The value after `flag` (or its short form), if given.
fn option<'a>(words: &'a [String], flags: &[&str]) -> Option<&'a str> {
    words
        .iter()
        .position(|w| flags.contains(&w.as_str()))
        .and_then(|i| words.get(i + 1))
        .map(String::as_str)
}

fn functions() -> Vec<FunctionSpec> {
    Template::load_default().unwrap().functions().unwrap()
}

/// The distinct words at `position` of `lines`, sorted: which function each command names.
fn named(lines: &[Vec<String>], position: usize) -> Vec<&str> {
    let mut named: Vec<&str> = lines
        .iter()
        .filter_map(|w| w.get(position))
        .map(String::as_str)
        .collect();
    named.sort();
    named.dedup();
    named
}

/// What a `sam local invoke` line names that does not fit the template, one problem a line.
fn sam_local_invoke_problems(words: &[String], template: &Template) -> Vec<String> {
    let line = words.join(" ");
    let mut problems = Vec::new();
    let functions = template.functions().unwrap();
    let Some(function) = words.get(3).filter(|w| !w.starts_with('-')) else {
        return vec![format!("`{line}` names no function")];
    };
    let Some(spec) = functions.iter().find(|f| &f.logical_id == function) else {
        return vec![format!(
            "`{line}`: {function} is not a function of template.yaml"
        )];
    };
    match option(words, &["-e", "--event"]) {
        Some(event) if root().join(event).is_file() => {
            if !event.starts_with(&format!("events/{}/", spec.binary)) {
                problems.push(format!(
                    "`{line}`: {event} is not one of {function}'s samples"
                ));
            }
        }
        Some(event) => problems.push(format!("`{line}`: {event} does not exist")),
        None => problems.push(format!("`{line}` passes no event (-e)")),
    }
    match option(words, &["-n", "--env-vars"]) {
        Some(file) => match std::fs::read_to_string(root().join(file)) {
            Ok(text) => {
                let env: BTreeMap<String, BTreeMap<String, String>> =
                    serde_json::from_str(&text).unwrap_or_default();
                // SAM applies only the variables a function declares, keyed by its logical id.
                let Some(vars) = env.get(function) else {
                    problems.push(format!("`{line}`: {file} has no key {function}"));
                    return problems;
                };
                for (name, _) in template.function_environment(function).unwrap() {
                    if !vars.contains_key(&name) {
                        problems.push(format!("`{line}`: {file} lacks {function}.{name}"));
                    }
                }
            }
            Err(e) => problems.push(format!("`{line}`: {file}: {e}")),
        },
        None => problems.push(format!(
            "`{line}` passes no --env-vars: the function would start without its tables"
        )),
    }
    problems
}

#[test]
fn every_sam_local_invoke_line_fits_the_template() {
    let template = Template::load_default().unwrap();
    let lines = commands(&readme(), "sam local invoke ");
    let invoked = named(&lines, 3);
    let mut every: Vec<String> = functions().into_iter().map(|f| f.logical_id).collect();
    every.sort();
    assert_eq!(
        invoked, every,
        "the README shows one sam local invoke per function"
    );
    for words in &lines {
        let problems = sam_local_invoke_problems(words, &template);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

#[test]
fn a_sam_local_invoke_line_that_does_not_fit_the_template_is_caught() {
    let template = Template::load_default().unwrap();
    let words =
        |line: &str| -> Vec<String> { line.split_whitespace().map(str::to_owned).collect() };
    let cases = [
        ("sam local invoke OrderWriter -e events/order-writer/place-order.json --env-vars events/env.json", "not a function"),
        ("sam local invoke OrderWriterFunction -e events/order-writer/no-such.json --env-vars events/env.json", "does not exist"),
        ("sam local invoke OrderWriterFunction -e events/rewards-api/get-rewards.json --env-vars events/env.json", "not one of"),
        ("sam local invoke OrderWriterFunction -e events/order-writer/place-order.json", "no --env-vars"),
        ("sam local invoke OrderWriterFunction -e events/order-writer/place-order.json --env-vars events/local.env", "has no key"),
    ];
    for (line, expected) in cases {
        let problems = sam_local_invoke_problems(&words(line), &template);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{line}: expected a problem with {expected:?}, got {problems:?}"
        );
    }
}

#[test]
fn every_cargo_lambda_invoke_line_names_a_function_binary_and_its_sample() {
    let lines = commands(&readme(), "cargo lambda invoke ");
    let binaries: Vec<String> = functions().into_iter().map(|f| f.binary).collect();
    let invoked = named(&lines, 3);
    let mut every: Vec<&str> = binaries.iter().map(String::as_str).collect();
    every.sort();
    assert_eq!(
        invoked, every,
        "the README invokes each function once at least"
    );
    for words in &lines {
        let function = &words[3];
        let data = option(words, &["--data-file"]).expect("--data-file");
        assert!(
            data.starts_with(&format!("events/{function}/")) && root().join(data).is_file(),
            "{}: {data} is not a sample of {function}",
            words.join(" ")
        );
    }
}

#[test]
fn the_watch_reads_the_generated_environment_file() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let env_file = manifest
        .lines()
        .skip_while(|l| l.trim() != "[workspace.metadata.lambda.watch]")
        .find(|l| l.trim_start().starts_with("env_file"))
        .and_then(|l| l.split('"').nth(1))
        .expect("Cargo.toml's [workspace.metadata.lambda.watch] names an env_file");
    assert_eq!(env_file, devkit::samples::WATCH_ENV_PATH);
}
