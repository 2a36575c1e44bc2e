//! What a function's `Policies` in a template grant: its inline `Statement`s and the SAM policy
//! templates the project uses, each reduced to actions on resources of the template.

use anyhow::{anyhow, Result};
use serde_yaml::Value;

use crate::template::Template;

/// One `Allow` statement of a function's policy: its actions on tables, indexes, streams, buses
/// and queues.
#[derive(Debug, Clone)]
pub struct Grant {
    /// `dynamodb:GetItem`, `sqs:SendMessage*`, `dynamodb:*`.
    pub actions: Vec<String>,
    /// Each resource: the template's logical id of a table, stream, bus or queue (or, for an
    /// ARN the template spells out that names none of them, the name it ends with; `*` for
    /// every resource), and the index when the resource is a table's index.
    pub tables: Vec<(String, Option<String>)>,
}

/// The SAM policy templates read here: the parameter naming the resource, the actions, and
/// whether they are granted on the table's indexes too (`${table}/index/*`).
const POLICY_TEMPLATES: &[(&str, &str, &[&str], bool)] = &[
    (
        "SQSPollerPolicy",
        "QueueName",
        &[
            "sqs:ChangeMessageVisibility",
            "sqs:ChangeMessageVisibilityBatch",
            "sqs:DeleteMessage",
            "sqs:DeleteMessageBatch",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ],
        false,
    ),
    (
        "SQSSendMessagePolicy",
        "QueueName",
        &["sqs:SendMessage*"],
        false,
    ),
    (
        "EventBridgePutEventsPolicy",
        "EventBusName",
        &["events:PutEvents"],
        false,
    ),
    (
        "SNSPublishMessagePolicy",
        "TopicName",
        &["sns:Publish"],
        false,
    ),
    (
        "DynamoDBCrudPolicy",
        "TableName",
        &[
            "dynamodb:GetItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
            "dynamodb:ConditionCheckItem",
        ],
        true,
    ),
    (
        "DynamoDBReadPolicy",
        "TableName",
        &[
            "dynamodb:GetItem",
            "dynamodb:Scan",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable",
        ],
        true,
    ),
    (
        "DynamoDBWritePolicy",
        "TableName",
        &[
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
        ],
        false,
    ),
];

/// The grants of `function`'s policies in `template`: its inline statements whose resources
/// are resources of the template (`!GetAtt T.Arn`: a table, a stream, a bus, a queue), a
/// table's index (`!Sub "${T.Arn}/index/I"`) or an ARN spelled out (`!Sub
/// "arn:${AWS::Partition}:sqs:...:queue-name"`), and the policy templates of
/// [`POLICY_TEMPLATES`] (`EventBridgePutEventsPolicy: {EventBusName: !Ref Bus}`). A managed
/// policy named by a string grants nothing here: the audit cannot know what it holds.
pub fn grants(template: &Template, function: &str) -> Result<Vec<Grant>> {
    let policies = template.resource(function)?["Properties"]["Policies"].as_sequence();
    let policies = policies.ok_or_else(|| anyhow!("{function} has no Policies"))?;
    let mut grants = Vec::new();
    for policy in policies {
        let statements = policy["Statement"].as_sequence().into_iter().flatten();
        let allowed = statements.filter(|s| s["Effect"].as_str() == Some("Allow"));
        grants.extend(allowed.map(|statement| {
            Grant {
                actions: list(&statement["Action"])
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect(),
                tables: list(&statement["Resource"])
                    .iter()
                    .filter_map(|r| resource_of(template, r))
                    .collect(),
            }
        }));
        for (name, parameter, actions, indexes) in POLICY_TEMPLATES {
            let Some(arguments) = policy.get(*name) else {
                continue;
            };
            let id = logical_id(template, &arguments[*parameter])
                .ok_or_else(|| anyhow!("{function}'s {name} names no {parameter}"))?;
            let mut tables = vec![(id.clone(), None)];
            if *indexes {
                tables.push((id, Some("*".to_owned())));
            }
            let actions = actions.iter().map(|a| (*a).to_owned()).collect();
            grants.push(Grant { actions, tables });
        }
    }
    Ok(grants)
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(s) => s.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// A statement's resource: `!GetAtt X.Arn`, `!Sub "${X.Arn}/index/I"`, `!Sub "${X.Arn}"`, an
/// ARN (`!Sub` or as text) or `*`.
fn resource_of(template: &Template, resource: &Value) -> Option<(String, Option<String>)> {
    let (tag, arg) = match resource {
        Value::Tagged(tagged) => (tagged.tag.to_string(), tagged.value.as_str()?),
        Value::String(text) => (String::new(), text.as_str()),
        _ => return None,
    };
    match tag.as_str() {
        "!GetAtt" => arg.strip_suffix(".Arn").map(|id| (id.to_owned(), None)),
        "!Sub" if arg.starts_with("${") => {
            let (id, rest) = arg.strip_prefix("${")?.split_once(".Arn}")?;
            match rest.strip_prefix("/index/") {
                Some(index) => Some((id.to_owned(), Some(index.to_owned()))),
                None if rest.is_empty() => Some((id.to_owned(), None)),
                None => None,
            }
        }
        "!Sub" | "" if arg == "*" => Some(("*".to_owned(), None)),
        "!Sub" | "" => {
            let arn = template.resolve(resource).ok()?;
            Some((by_name(template, arn_name(arn.as_str()?)), None))
        }
        _ => None,
    }
}

/// The name an ARN ends with: a queue's (`...:queue`), a bus's or table's (`.../name`).
fn arn_name(arn: &str) -> &str {
    let last = arn.rsplit(':').next().unwrap_or(arn);
    last.rsplit('/').next().unwrap_or(last)
}

/// The logical id a policy template's parameter names: `!Ref X`, `!GetAtt X.QueueName`, or a
/// resource's name (as text or `!Sub`).
fn logical_id(template: &Template, value: &Value) -> Option<String> {
    if let Value::Tagged(tagged) = value {
        let arg = tagged.value.as_str()?;
        match tagged.tag.to_string().as_str() {
            "!Ref" => return Some(arg.to_owned()),
            "!GetAtt" => return Some(arg.split_once('.')?.0.to_owned()),
            _ => {}
        }
    }
    let name = template.resolve(value).ok()?;
    Some(by_name(template, name.as_str()?))
}

/// The logical id of the resource named `name` in the template (its `TableName`, `QueueName`,
/// `Name`, `StreamName` or `TopicName`, or `${X}` in a `!Sub`), or the name itself when none is.
fn by_name(template: &Template, name: &str) -> String {
    if let Some(id) = name.strip_prefix("${").and_then(|n| n.strip_suffix('}')) {
        return id.to_owned();
    }
    let ids = template.logical_ids();
    let named = ids.into_iter().find(|id| {
        let Ok(properties) = template.properties(id) else {
            return false;
        };
        ["TableName", "QueueName", "Name", "StreamName", "TopicName"]
            .iter()
            .any(|key| properties[key].as_str() == Some(name))
    });
    named.unwrap_or_else(|| name.to_owned())
}
