//! The IAM actions a function's DynamoDB, Kinesis, EventBridge and SQS requests need, read off
//! the wire by the proxy, and the grants its template gives it: a test runs each function's work
//! through the proxy and checks the one against the other, so a policy missing an action fails
//! here and not in production.
//!
//! The mapping follows DynamoDB's authorization reference: a transaction needs the action of
//! each of its items (`TransactWriteItems` with a `Delete` needs `dynamodb:DeleteItem` on that
//! table), a query of an index needs `dynamodb:Query` on the index's ARN.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use serde_json::Value as Json;
use serde_yaml::Value;

use crate::template::Template;

/// One action on one table (or one of its indexes) or stream, as IAM evaluates it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    /// `dynamodb:GetItem`, `kinesis:PutRecord`.
    pub action: String,
    /// The table's or stream's name as the request gave it.
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
    if let Some(accesses) = broker_accesses(service, operation, &body) {
        return accesses;
    }
    if service.starts_with("Kinesis_") {
        let stream = body["StreamName"].as_str().map(str::to_owned).or_else(|| {
            let arn = body["StreamARN"].as_str()?;
            Some(arn.rsplit_once('/')?.1.to_owned())
        });
        return vec![Access {
            action: format!("kinesis:{operation}"),
            table: stream.unwrap_or_default(),
            index: None,
        }];
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

/// What an EventBridge or SQS request (JSON protocol) needs, by bus or queue name: each
/// `PutEvents` entry its bus (the account's `default` when it names none), an SQS call the
/// queue of its URL. IAM authorizes a batch call by the single action (`DeleteMessageBatch`
/// needs `sqs:DeleteMessage`).
fn broker_accesses(service: &str, operation: &str, body: &Json) -> Option<Vec<Access>> {
    let named = |action: String, resource: &str| Access {
        action,
        table: resource.rsplit('/').next().unwrap_or(resource).to_owned(),
        index: None,
    };
    match service {
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
            let queue = body["QueueUrl"].as_str().unwrap_or_default();
            let action = operation.strip_suffix("Batch").unwrap_or(operation);
            Some(vec![named(format!("sqs:{action}"), queue)])
        }
        _ => None,
    }
}

/// One `Allow` statement of a function's policy: its actions on tables and streams.
#[derive(Debug, Clone)]
pub struct Grant {
    pub actions: Vec<String>,
    /// The table's logical id in the template, and the index when the resource is one.
    pub tables: Vec<(String, Option<String>)>,
}

/// The grants of `function`'s inline policy statements in `template` whose resources are
/// resources of the template (`!GetAtt T.Arn`: a table, a stream) or a table's index
/// (`!Sub "${T.Arn}/index/I"`).
pub fn grants(template: &Template, function: &str) -> Result<Vec<Grant>> {
    let policies = template.resource(function)?["Properties"]["Policies"].as_sequence();
    let policies = policies.ok_or_else(|| anyhow!("{function} has no Policies"))?;
    let statements = policies
        .iter()
        .filter_map(|p| p["Statement"].as_sequence())
        .flatten();
    let list = |v: &Value| match v {
        Value::Sequence(s) => s.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    let allowed = statements.filter(|statement| statement["Effect"].as_str() == Some("Allow"));
    let grants = allowed.map(|statement| Grant {
        actions: list(&statement["Action"])
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        tables: list(&statement["Resource"])
            .iter()
            .filter_map(table_of)
            .collect(),
    });
    Ok(grants.collect())
}

fn table_of(resource: &Value) -> Option<(String, Option<String>)> {
    let Value::Tagged(tagged) = resource else {
        return None;
    };
    let arg = tagged.value.as_str()?;
    match tagged.tag.to_string().as_str() {
        "!GetAtt" => arg
            .strip_suffix(".Arn")
            .map(|table| (table.to_owned(), None)),
        "!Sub" => {
            let (table, index) = arg.strip_prefix("${")?.split_once(".Arn}/index/")?;
            Some((table.to_owned(), Some(index.to_owned())))
        }
        _ => None,
    }
}

/// The accesses no grant allows. `tables` names each logical id's table or stream as created
/// locally.
pub fn denied<'a>(
    grants: &[Grant],
    tables: &BTreeMap<&str, &str>,
    accesses: impl IntoIterator<Item = &'a Access>,
) -> Vec<Access> {
    let allows = |grant: &Grant, access: &Access| {
        let action = grant
            .actions
            .iter()
            .any(|a| *a == access.action || a == "dynamodb:*");
        action
            && grant.tables.iter().any(|(id, index)| {
                let table = tables.get(id.as_str()) == Some(&access.table.as_str());
                table
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_needs_the_action_of_each_item_on_its_table() {
        let body = br#"{"TransactItems":[
            {"Put":{"TableName":"r","Item":{}}},
            {"Delete":{"TableName":"r","Key":{}}},
            {"ConditionCheck":{"TableName":"o","Key":{}}},
            {"Update":{"TableName":"o","Key":{}}}]}"#;
        let found: Vec<String> = accesses("DynamoDB_20120810.TransactWriteItems", body)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
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
        let found: Vec<String> = accesses("AWSEvents.PutEvents", publish)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
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
        let refused: Vec<String> = denied(&grants, &tables, &asked)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            refused,
            [
                "dynamodb:Query on orders-x",
                "dynamodb:GetItem on orders-x/index/Pending",
                "dynamodb:DeleteItem on orders-x"
            ]
        );
    }
}
