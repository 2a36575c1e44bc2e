//! The SQS side of a template: a function's `Type: SQS` event (its mapping's settings), and the
//! queues (`AWS::SQS::Queue`) created on the local SQS with their visibility timeout, FIFO
//! settings and redrive policy, so the local queue redelivers and dead-letters as the deployed
//! one does.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;
use serde_json::{json, Value as Json};
use serde_yaml::Value;

use super::SqsSettings;
use crate::template::Template;

/// The queue attributes CloudFormation and `CreateQueue` name alike.
const PASSED_ON: [&str; 9] = [
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "MaximumMessageSize",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// A function's SQS event source: the queue it reads and the mapping's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsEventSource {
    /// The queue's logical id (`Queue: !GetAtt <id>.Arn`).
    pub queue_logical_id: String,
    pub settings: SqsSettings,
}

/// An `AWS::SQS::Queue` of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    pub logical_id: String,
    /// `QueueName`, else the logical id (with `.fifo` for a FIFO queue).
    pub name: String,
    /// Attributes passed on to `CreateQueue` as they are.
    pub attributes: Vec<(String, String)>,
    /// `RedrivePolicy`: the dead-letter queue's logical id and `maxReceiveCount`.
    pub dead_letter: Option<(String, i64)>,
}

/// A queue created on the local SQS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalQueue {
    pub url: String,
    pub arn: String,
}

/// The first `Type: SQS` event of `function`: the queue it points at, and `BatchSize` (SAM's
/// default 10), `MaximumBatchingWindowInSeconds` and `FunctionResponseTypes`.
pub fn sqs_source(template: &Template, function: &str) -> Result<SqsEventSource> {
    let events = template
        .resource(function)?
        .get("Properties")
        .and_then(|p| p.get("Events"))
        .and_then(Value::as_mapping)
        .ok_or_else(|| anyhow!("{function} has no Events"))?;
    let event = events
        .values()
        .find(|e| e.get("Type").and_then(Value::as_str) == Some("SQS"))
        .ok_or_else(|| anyhow!("{function} has no SQS event source"))?;
    let props = template.resolve(event.get("Properties").unwrap_or(&Value::Null))?;
    let queue_logical_id = arn_of(&props["Queue"])
        .ok_or_else(|| anyhow!("{function}: Queue must be !GetAtt <queue>.Arn"))?;
    let setting = |key: &str, default: u64| match props.get(key) {
        None => Ok(default),
        Some(v) => number(v).ok_or_else(|| anyhow!("{function}: {key} is not a number")),
    };
    let report_batch_item_failures = props
        .get("FunctionResponseTypes")
        .and_then(Json::as_array)
        .is_some_and(|t| t.iter().any(|v| v == "ReportBatchItemFailures"));
    Ok(SqsEventSource {
        queue_logical_id,
        settings: SqsSettings {
            batch_size: usize::try_from(setting("BatchSize", 10)?)?,
            batching_window: Duration::from_secs(setting("MaximumBatchingWindowInSeconds", 0)?),
            report_batch_item_failures,
        },
    })
}

/// Every `AWS::SQS::Queue` of the template.
pub fn queues(template: &Template) -> Result<Vec<QueueSpec>> {
    let mut queues = Vec::new();
    for (logical_id, _) in template.resources_of_type("AWS::SQS::Queue") {
        let props = template.properties(&logical_id)?;
        let fifo = props.get("FifoQueue").is_some_and(|v| text(v) == "true");
        let name = match props.get("QueueName").and_then(Json::as_str) {
            Some(name) => name.to_owned(),
            None if fifo => format!("{logical_id}.fifo"),
            None => logical_id.clone(),
        };
        let attributes = PASSED_ON
            .iter()
            .filter_map(|key| props.get(*key).map(|v| ((*key).to_owned(), text(v))))
            .collect();
        let dead_letter = match props.get("RedrivePolicy") {
            None => None,
            Some(policy) => {
                let target = arn_of(&policy["deadLetterTargetArn"]).ok_or_else(|| {
                    anyhow!("{logical_id}: deadLetterTargetArn must be !GetAtt <queue>.Arn")
                })?;
                let count = number(&policy["maxReceiveCount"])
                    .ok_or_else(|| anyhow!("{logical_id}: maxReceiveCount is not a number"))?;
                Some((target, i64::try_from(count)?))
            }
        };
        queues.push(QueueSpec {
            logical_id,
            name,
            attributes,
            dead_letter,
        });
    }
    Ok(queues)
}

/// Creates the template's queues on the local SQS (dead-letter queues before the queues that
/// name them), by logical id.
pub async fn create_queues(
    template: &Template,
    client: &Client,
) -> Result<HashMap<String, LocalQueue>> {
    let mut pending = queues(template)?;
    let mut created: HashMap<String, LocalQueue> = HashMap::new();
    while !pending.is_empty() {
        let ready = pending.iter().position(|q| match &q.dead_letter {
            None => true,
            Some((target, _)) => created.contains_key(target),
        });
        let Some(ready) = ready else {
            bail!("the queues' redrive policies name queues that are not in the template, or each other");
        };
        let spec = pending.remove(ready);
        let queue = create(client, &spec, &created).await?;
        created.insert(spec.logical_id, queue);
    }
    Ok(created)
}

async fn create(
    client: &Client,
    spec: &QueueSpec,
    created: &HashMap<String, LocalQueue>,
) -> Result<LocalQueue> {
    let mut request = client.create_queue().queue_name(&spec.name);
    for (key, value) in &spec.attributes {
        request = request.attributes(QueueAttributeName::from(key.as_str()), value);
    }
    if let Some((target, max_receive_count)) = &spec.dead_letter {
        let policy = json!({
            "deadLetterTargetArn": created[target].arn,
            "maxReceiveCount": max_receive_count,
        });
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let url = request
        .send()
        .await
        .with_context(|| format!("CreateQueue {}", spec.name))?
        .queue_url
        .ok_or_else(|| anyhow!("CreateQueue {} returned no url", spec.name))?;
    let arn = super::queue_arn(client, &url).await?;
    Ok(LocalQueue { url, arn })
}

/// The logical id an `Arn` attribute points at: `!GetAtt <id>.Arn` or `Fn::GetAtt: [id, Arn]`.
fn arn_of(value: &Json) -> Option<String> {
    if let Some(text) = value.as_str() {
        let (id, attribute) = text.strip_prefix("!GetAtt ")?.split_once('.')?;
        return (attribute == "Arn").then(|| id.to_owned());
    }
    match value.get("Fn::GetAtt")?.as_array()?.as_slice() {
        [id, attribute] if attribute == "Arn" => id.as_str().map(str::to_owned),
        _ => None,
    }
}

fn number(value: &Json) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}
