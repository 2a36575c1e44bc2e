//! The runbook's `outboxctl` commands, run as written against the local stack: every fenced
//! command line of docs/operations.md that starts with `outboxctl`, in the page's order, with its
//! shell variables set to the local stack's tables and functions. A command the page changes
//! must still run; one that names something the stack does not have fails here.

mod rig;

use std::path::{Path, PathBuf};

use rig::{parked_and_pending, Rig, STREAM_CONSUMER, SWEEPER};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fenced command lines of `page` that start with `outboxctl`: continuation lines joined,
/// `#` comments cut.
fn fenced_commands(page: &str) -> Vec<String> {
    let (mut commands, mut fenced, mut current) = (Vec::new(), false, String::new());
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            continue;
        }
        let line = line.split(" #").next().unwrap_or_default().trim();
        if current.is_empty() && !line.starts_with("outboxctl ") {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    commands
}

/// The words of `command` with the runbook's variables and placeholders filled in.
fn words(command: &str, fill: &[(&str, &str)]) -> Vec<String> {
    let filled = fill.iter().fold(command.to_owned(), |c, (name, value)| {
        c.replace(name, value)
    });
    filled
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_fenced_commands_are_found_with_their_continuations() {
    let page = "text `outboxctl inline` text\n```sh\noutboxctl a \\\n  --b c # why\naws x\n```\n";
    assert_eq!(fenced_commands(page), ["outboxctl a --b c"]);
}

#[tokio::test]
async fn every_outboxctl_command_of_the_runbook_runs_against_the_local_stack() {
    let page = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    let commands = fenced_commands(&page);
    assert!(commands.len() >= 6, "the runbook's commands: {commands:?}");

    let rig = Rig::start().await;
    let parked = parked_and_pending(&rig).await;
    let event_id = rig.event_id_of(&parked[0]).await;
    // The fix has landed: the redrive applies the parked events.
    for customer in &parked {
        rig.set_balance(customer, 0).await;
    }
    let message = rig::stream_failure_message(&rig).await;
    let message_file = std::env::temp_dir().join(format!("runbook-{}.json", std::process::id()));
    std::fs::write(&message_file, message.to_string()).unwrap();
    let t = &rig.stack.tables;
    let fill = [
        ("$ORDERS", t.orders.as_str()),
        ("$REWARDS", t.rewards.as_str()),
        ("$SWEEPER", SWEEPER),
        ("$CONSUMER", STREAM_CONSUMER),
        ("<event id>", event_id.as_str()),
        ("<customer id>", "c-late"),
        ("message.json", message_file.to_str().unwrap()),
    ];
    let mut ran = 0;
    for command in &commands {
        // Pattern 3's replay reads a Kinesis stream: run on kinesalite by
        // self_read::a_range_the_mapping_gave_up_on_is_replayed_once_by_the_operators_tool.
        if command.contains("RewardsKinesisConsumerFunction") {
            continue;
        }
        let args = words(command, &fill);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = rig.outboxctl_in(&root(), &args).await;
        assert!(run.ok, "`{command}` failed: {run:?}");
        ran += 1;
    }
    assert!(ran >= 6, "{ran} commands ran");
    for customer in &parked {
        assert_eq!(
            outbox_tests::balance(&rig.stack, customer).await,
            (7, 1),
            "redriven once"
        );
    }
    assert_eq!(
        outbox_tests::balance(&rig.stack, "c-late").await,
        (9, 1),
        "swept once"
    );
    std::fs::remove_file(message_file).ok();
}
