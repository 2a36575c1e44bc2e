//! The IAM actions a function's DynamoDB, Kinesis, EventBridge and SQS requests need, read off
//! the wire by the proxy, and the grants its template gives it: a test runs each function's work
//! through the proxy and checks the one against the other, so a policy missing an action fails
//! here and not in production.
//!
//! The mapping follows DynamoDB's authorization reference: a transaction needs the action of
//! each of its items (`TransactWriteItems` with a `Delete` needs `dynamodb:DeleteItem` on that
//! table), a query of an index needs `dynamodb:Query` on the index's ARN.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::Value as Json;

use crate::template::Template;

mod policy;

pub use policy::{grants, Grant};

/// One action on one table (or one of its indexes), stream, event bus or queue, as IAM
/// evaluates it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    /// `dynamodb:GetItem`, `kinesis:PutRecord`.
    pub action: String,
    /// The name of the table, stream, bus or queue, as the request gave it (the name an ARN or
    /// a queue URL ends with).
    pub table: String,
    /// The index queried, if any.
    pub index: Option<String>,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.index {
            Some(index) => write!(f, "{} on {}/index/{index}", self.action, self.table),
            None => write!(f, "{} on {}", self.action, self.table),
        }
    }
}

/// What one request (its `X-Amz-Target`, `DynamoDB_20120810.GetItem`, and JSON body) needs.
pub fn accesses(target: &str, body: &[u8]) -> Vec<Access> {
    let Ok(body) = serde_json::from_slice::<Json>(body) else {
        return Vec::new();
    };
    let (service, operation) = target.split_once('.').unwrap_or(("", target));
    if let Some(accesses) = named_accesses(service, operation, &body) {
        return accesses;
    }
    let access = |action: &str, table: &Json, index: Option<&Json>| Access {
        action: format!("dynamodb:{action}"),
        table: table.as_str().unwrap_or_default().to_owned(),
        index: index.and_then(Json::as_str).map(str::to_owned),
    };
    match operation {
        "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let (kind, action) = [
                    ("Put", "PutItem"),
                    ("Update", "UpdateItem"),
                    ("Delete", "DeleteItem"),
                    ("ConditionCheck", "ConditionCheckItem"),
                    ("Get", "GetItem"),
                ]
                .into_iter()
                .find(|(kind, _)| item.get(kind).is_some())?;
                Some(access(action, &item[kind]["TableName"], None))
            })
            .collect(),
        "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(table, _)| access(operation, &Json::String(table.clone()), None))
            .collect(),
        _ => vec![access(operation, &body["TableName"], body.get("IndexName"))],
    }
}

/// What a Kinesis, EventBridge or SQS request (JSON protocol) needs, by stream, bus or queue
/// name: a Kinesis call its stream, each `PutEvents` entry its bus (the account's `default`
/// when it names none), an SQS call the queue of its URL. IAM authorizes a batch call by the
/// single action (`DeleteMessageBatch` needs `sqs:DeleteMessage`).
fn named_accesses(service: &str, operation: &str, body: &Json) -> Option<Vec<Access>> {
    // A name, or the ARN or queue URL it ends.
    let named = |action: String, resource: &str| Access {
        action,
        table: resource.rsplit('/').next().unwrap_or(resource).to_owned(),
        index: None,
    };
    match service {
        kinesis if kinesis.starts_with("Kinesis_") => {
            let stream = body["StreamName"].as_str().or(body["StreamARN"].as_str());
            let action = format!("kinesis:{operation}");
            Some(vec![named(action, stream.unwrap_or_default())])
        }
        "AWSEvents" => Some(
            body["Entries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|entry| {
                    let bus = entry["EventBusName"].as_str().unwrap_or("default");
                    named(format!("events:{operation}"), bus)
                })
                .collect(),
        ),
        "AmazonSQS" => {
            let queue = body["QueueUrl"].as_str().or(body["QueueName"].as_str());
            let queue = queue.unwrap_or_default();
            let action = operation.strip_suffix("Batch").unwrap_or(operation);
            Some(vec![named(format!("sqs:{action}"), queue)])
        }
        _ => None,
    }
}

/// The accesses no grant allows. `tables` names each logical id's table, stream, bus or queue
/// as created locally.
pub fn denied<'a>(
    grants: &[Grant],
    tables: &BTreeMap<&str, &str>,
    accesses: impl IntoIterator<Item = &'a Access>,
) -> Vec<Access> {
    let allows = |grant: &Grant, access: &Access| {
        let action = grant.actions.iter().any(|a| matches(a, &access.action));
        action
            && grant.tables.iter().any(|(id, index)| {
                let name = tables.get(id.as_str()).copied().unwrap_or(id);
                if name == "*" {
                    return true;
                }
                name == access.table
                    && match (index.as_deref(), access.index.as_deref()) {
                        (None, None) | (Some("*"), Some(_)) => true,
                        (Some(granted), Some(used)) => granted == used,
                        _ => false,
                    }
            })
    };
    let accesses = accesses.into_iter();
    let denied = accesses.filter(|access| !grants.iter().any(|grant| allows(grant, access)));
    denied.cloned().collect()
}

/// Whether the statement's action `granted` (`sqs:SendMessage*`, `dynamodb:*`) covers `action`.
fn matches(granted: &str, action: &str) -> bool {
    match granted.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => granted == action,
    }
}

/// Each of `accesses` that `function`'s policies in `template` do not allow, as a sentence
/// naming the function, the action and the resource; `names` as for [`denied`].
pub fn refusals<'a>(
    template: &Template,
    function: &str,
    names: &BTreeMap<&str, &str>,
    accesses: impl IntoIterator<Item = &'a Access>,
) -> Result<Vec<String>> {
    let grants = grants(template, function)?;
    let denied = denied(&grants, names, accesses);
    let sentence = |access: &Access| {
        let resource = match &access.index {
            Some(index) => format!("{}/index/{index}", access.table),
            None => access.table.clone(),
        };
        let id = names.iter().find(|(_, name)| **name == access.table);
        let id = id.map(|(id, _)| format!(" ({id})")).unwrap_or_default();
        format!(
            "{function}'s policy does not allow {} on {resource}{id}: add it to {function}'s Policies",
            access.action
        )
    };
    Ok(denied.iter().map(sentence).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each access as a line, in order.
    fn shown(accesses: &[Access]) -> Vec<String> {
        accesses.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_transaction_needs_the_action_of_each_item_on_its_table() {
        let body = br#"{"TransactItems":[
            {"Put":{"TableName":"r","Item":{}}},
            {"Delete":{"TableName":"r","Key":{}}},
            {"ConditionCheck":{"TableName":"o","Key":{}}},
            {"Update":{"TableName":"o","Key":{}}}]}"#;
        assert_eq!(
            shown(&accesses("DynamoDB_20120810.TransactWriteItems", body)),
            [
                "dynamodb:PutItem on r",
                "dynamodb:DeleteItem on r",
                "dynamodb:ConditionCheckItem on o",
                "dynamodb:UpdateItem on o"
            ]
        );
        let query = br#"{"TableName":"o","IndexName":"PendingOutbox"}"#;
        assert_eq!(
            accesses("DynamoDB_20120810.Query", query)[0].to_string(),
            "dynamodb:Query on o/index/PendingOutbox"
        );
        let put = br#"{"StreamName":"events","PartitionKey":"c-1","Data":""}"#;
        assert_eq!(
            accesses("Kinesis_20131202.PutRecord", put)[0].to_string(),
            "kinesis:PutRecord on events"
        );
        let publish = br#"{"Entries":[{"EventBusName":"arn:aws:events:us-east-1:1:event-bus/bus-x"},{"Source":"s"}]}"#;
        assert_eq!(
            shown(&accesses("AWSEvents.PutEvents", publish)),
            ["events:PutEvents on bus-x", "events:PutEvents on default"]
        );
        let delete = br#"{"QueueUrl":"http://127.0.0.1:5000/123456789012/inbox","Entries":[]}"#;
        assert_eq!(
            accesses("AmazonSQS.DeleteMessageBatch", delete)[0].to_string(),
            "sqs:DeleteMessage on inbox"
        );
    }

    #[test]
    fn an_access_is_denied_unless_a_statement_grants_its_action_on_its_table_or_index() {
        let template = Template::parse(
            r#"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: [dynamodb:Query]
              Resource: !Sub "${Orders.Arn}/index/Pending"
            - Effect: Allow
              Action: dynamodb:GetItem
              Resource: !GetAtt Orders.Arn
"#,
        )
        .unwrap();
        let grants = grants(&template, "Fn").unwrap();
        let tables = BTreeMap::from([("Orders", "orders-x")]);
        let access = |action: &str, index: Option<&str>| Access {
            action: format!("dynamodb:{action}"),
            table: "orders-x".into(),
            index: index.map(str::to_owned),
        };
        let asked = [
            access("GetItem", None),
            access("Query", Some("Pending")),
            access("Query", None),
            access("GetItem", Some("Pending")),
            access("DeleteItem", None),
        ];
        assert_eq!(
            shown(&denied(&grants, &tables, &asked)),
            [
                "dynamodb:Query on orders-x",
                "dynamodb:GetItem on orders-x/index/Pending",
                "dynamodb:DeleteItem on orders-x"
            ]
        );
    }

    const BROKER: &str = r#"
Parameters:
  StageName:
    Type: String
    Default: dev
Resources:
  Bus:
    Type: AWS::Events::EventBus
    Properties:
      Name: !Sub "bus-${StageName}"
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "inbox-${StageName}"
  NoPublish:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: [dynamodb:PutItem, events:PutEvents]
              Resource: !GetAtt Orders.Arn
  Templates:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - EventBridgePutEventsPolicy:
            EventBusName: !Ref Bus
        - SQSPollerPolicy:
            QueueName: !GetAtt Queue.QueueName
  SpelledOut:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: sqs:ReceiveMessage
              Resource: !Sub "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:inbox-${StageName}"
"#;

    #[test]
    fn a_publish_or_a_poll_is_denied_unless_a_policy_grants_it_on_that_bus_or_queue() {
        let template = Template::parse(BROKER).unwrap();
        let names = BTreeMap::from([("Bus", "bus-local"), ("Queue", "inbox-local")]);
        let publish = br#"{"Entries":[{"EventBusName":"bus-local","Source":"orders"}]}"#;
        let publish = accesses("AWSEvents.PutEvents", publish);
        let queue = r#"{"QueueUrl":"http://127.0.0.1:5000/123456789012/inbox-local"}"#;
        let poll: Vec<Access> = ["ReceiveMessage", "DeleteMessageBatch", "GetQueueAttributes"]
            .iter()
            .flat_map(|op| accesses(&format!("AmazonSQS.{op}"), queue.as_bytes()))
            .collect();
        let refused = |function: &str, asked: &[Access]| {
            refusals(&template, function, &names, asked).unwrap()
        };

        assert_eq!(
            refused("NoPublish", &publish),
            ["NoPublish's policy does not allow events:PutEvents on bus-local (Bus): add it to NoPublish's Policies"]
        );
        assert_eq!(refused("Templates", &publish), Vec::<String>::new());
        assert_eq!(refused("Templates", &poll), Vec::<String>::new());
        let elsewhere = br#"{"Entries":[{"Source":"orders"}]}"#;
        let default_bus = accesses("AWSEvents.PutEvents", elsewhere);
        assert_eq!(
            refused("Templates", &default_bus),
            ["Templates's policy does not allow events:PutEvents on default: add it to Templates's Policies"]
        );
        // The ARN written out names the queue the template creates: only its action is allowed.
        let refused_poll: Vec<String> = refused("SpelledOut", &poll);
        assert_eq!(refused_poll.len(), 2, "{refused_poll:?}");
        assert!(refused_poll[0].contains("sqs:DeleteMessage on inbox-local (Queue)"));
        assert!(refused_poll[1].contains("sqs:GetQueueAttributes on inbox-local (Queue)"));
    }
}
