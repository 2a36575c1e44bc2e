//! What the relay suites share: an outbox on the embedded DynamoDB, moto's server for the
//! brokers, a relay's processor, and queues read back in the order they hand messages out.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use devkit::local::{scan_all, LocalDynamo};
use devkit::moto::{queue_arn, LocalMoto};
use dynamodb_outbox::dynamodb::{DynamoConsumerStore, Outbox, Routes};
use dynamodb_outbox::relay::{Relay, Target};
use dynamodb_outbox::testing::schema;
use dynamodb_outbox::testing::{create_tables, Inspect, WaitingItem};
use dynamodb_outbox::{Envelope, Event, ItemKey, Processor, Source, Takes};
use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item};
use serde_json::Value;

pub const OUTBOX: &str = "outbox";
pub const PROGRESS: &str = "relay-progress";
pub const RELAY: &str = "relay";

/// The event the suites publish: the `n`th of its key, padded to a size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Happened {
    pub key: String,
    pub n: u32,
    pub pad: String,
}

impl Event for Happened {
    const EVENT_TYPE: &'static str = "Happened";
    const SCHEMA_VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Thing";
    fn aggregate_id(&self) -> String {
        self.key.clone()
    }
}

pub struct Rig {
    pub moto: LocalMoto,
    pub dynamo: LocalDynamo,
    pub outbox: Outbox,
    pub store: DynamoConsumerStore,
    /// The outbox table's name: [`OUTBOX`], with a suffix of its own on a shared server.
    pub outbox_table: String,
}

impl Rig {
    /// moto and an outbox whose events are routed to `routed` (`None`: moto is missing and the
    /// environment said to skip).
    pub async fn start(test: &str, routed: &[&str]) -> Option<Rig> {
        let moto = LocalMoto::start_or_skip(test)
            .await
            .expect("moto's server")?;
        let dynamo = LocalDynamo::start().await.expect("the local DynamoDB");
        // The tests of a binary run at once: on a shared server (`make test-external`) each
        // takes tables of its own.
        let suffix = dynamo.run_suffix();
        let (progress, outbox_table) = (format!("{PROGRESS}{suffix}"), format!("{OUTBOX}{suffix}"));
        create_tables(&dynamo.client, &progress, &outbox_table)
            .await
            .expect("tables");
        let routes = Routes::new().route(Happened::EVENT_TYPE, routed);
        let outbox = Outbox::new(dynamo.client.clone(), &outbox_table, routes);
        let store = DynamoConsumerStore::new(dynamo.client.clone(), &progress, &outbox_table);
        Some(Rig {
            moto,
            dynamo,
            outbox,
            store,
            outbox_table,
        })
    }

    /// The set-up most relay tests start from: moto, an outbox whose events are routed to
    /// [`RELAY`] alone, and the queue `queue` (FIFO when its name ends in `.fifo`) to read what
    /// arrives: the rig and the queue's URL (`None` as for [`Rig::start`]).
    pub async fn with_queue(test: &str, queue: &str) -> Option<(Rig, String)> {
        let rig = Rig::start(test, &[RELAY]).await?;
        let url = rig.queue(queue).await;
        Some((rig, url))
    }

    /// One event of `key`, its payload padded with `pad` bytes, in a transaction of its own.
    pub async fn write(&self, key: &str, n: u32, pad: usize) -> Envelope<Happened> {
        let event = Envelope::new(Happened {
            key: key.to_owned(),
            n,
            pad: "x".repeat(pad),
        });
        self.outbox
            .transaction()
            .event(&event)
            .expect("an event")
            .commit()
            .await
            .expect("written");
        event
    }

    /// `count` events for each key, the keys interleaved: key k's events are numbered 1..=count.
    pub async fn write_many(&self, keys: &[&str], count: u32) -> Vec<Envelope<Happened>> {
        let mut events = Vec::new();
        for n in 1..=count {
            for key in keys {
                events.push(self.write(key, n, 16).await);
            }
        }
        events
    }

    /// The outbox's events, newest first, so that any order seen downstream is the relay's.
    pub async fn outbox_items(&self) -> Vec<Item> {
        let mut items: Vec<Item> = scan_all(&self.dynamo.client, &self.outbox_table)
            .await
            .expect("scan")
            .into_iter()
            .map(Item::from)
            .filter(|item| text(item, schema::ENTITY) == Some(schema::ENTITY_OUTBOX_EVENT))
            .collect();
        items.sort_by_key(|item| std::cmp::Reverse(text(item, schema::SK).map(str::to_owned)));
        items
    }

    /// Each event's waiting state, by event id.
    pub async fn waiting(&self) -> BTreeMap<String, WaitingItem> {
        let mut waiting = BTreeMap::new();
        for item in self.outbox_items().await {
            let key = ItemKey {
                pk: text(&item, schema::PK).unwrap_or_default().to_owned(),
                sk: text(&item, schema::SK).unwrap_or_default().to_owned(),
            };
            let id = text(&item, "event_id").unwrap_or_default().to_owned();
            waiting.insert(id, self.store.waiting(&key).await.expect("waiting"));
        }
        waiting
    }

    /// The events no consumer waits for any more (their items expire).
    pub async fn done(&self) -> BTreeSet<String> {
        let waiting = self.waiting().await;
        waiting
            .into_iter()
            .filter(|(_, w)| w.consumers.is_empty() && !w.pending)
            .map(|(id, _)| id)
            .collect()
    }

    /// The relay named [`RELAY`] to `target`, reading this outbox.
    pub fn processor<T: Target>(&self, target: T) -> Processor<Relay<T>, DynamoConsumerStore> {
        self.processor_named(RELAY, target)
    }

    /// A relay named `name` to `target`, reading this outbox.
    pub fn processor_named<T: Target>(
        &self,
        name: &str,
        target: T,
    ) -> Processor<Relay<T>, DynamoConsumerStore> {
        let takes = vec![Takes::versions(Happened::EVENT_TYPE, 1..=1)];
        Processor::new(
            Relay::new(name, takes, target),
            self.store.clone(),
            Source::table(&self.outbox_table).expect("a table name"),
        )
    }

    /// An SNS topic (FIFO when `name` ends in `.fifo`) to which the queue `queue` subscribes:
    /// the topic's ARN.
    pub async fn topic_into(&self, name: &str, queue: &str) -> String {
        let sns = self.moto.sns().await;
        let mut topic = sns.create_topic().name(name);
        if name.ends_with(".fifo") {
            topic = topic.attributes("FifoTopic", "true");
        }
        let topic = topic.send().await.expect("a topic");
        let topic = topic.topic_arn.expect("an ARN");
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(queue_arn(queue))
            .send()
            .await
            .expect("subscribed");
        topic
    }

    /// A queue (FIFO when `name` ends in `.fifo`): its URL.
    pub async fn queue(&self, name: &str) -> String {
        let mut create = self.moto.sqs().await.create_queue().queue_name(name);
        if name.ends_with(".fifo") {
            create = create.attributes(QueueAttributeName::FifoQueue, "true");
        }
        let out = create.send().await.expect("a queue");
        out.queue_url().expect("its URL").to_owned()
    }
}

pub fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// A message as a queue handed it out.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: String,
    pub group: Option<String>,
    pub deduplication: Option<String>,
    pub event_type: Option<String>,
}

/// Every message of a queue, in the order it hands them out (each deleted once read, so a FIFO
/// queue hands out a group's next one).
pub async fn drain(moto: &LocalMoto, url: &str) -> Vec<Received> {
    let sqs = moto.sqs().await;
    let mut received = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        let messages = out.messages.unwrap_or_default();
        empty = if messages.is_empty() { empty + 1 } else { 0 };
        for message in messages {
            let system = message.attributes.clone().unwrap_or_default();
            received.push(Received {
                body: message.body.clone().unwrap_or_default(),
                group: system
                    .get(&MessageSystemAttributeName::MessageGroupId)
                    .cloned(),
                deduplication: system
                    .get(&MessageSystemAttributeName::MessageDeduplicationId)
                    .cloned(),
                event_type: message
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get("event_type"))
                    .and_then(|v| v.string_value.clone()),
            });
            let receipt = message.receipt_handle.unwrap_or_default();
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(receipt)
                .send()
                .await
                .expect("delete");
        }
    }
    received
}

/// The envelope a message carries: the body itself, inside an SNS notification's `Message`, or
/// an EventBridge event's `detail`.
pub fn envelope(body: &str) -> Value {
    let value: Value = serde_json::from_str(body).expect("a JSON body");
    if let Some(Value::String(message)) = value.get("Message") {
        return serde_json::from_str(message).expect("an envelope in the notification");
    }
    if let Some(detail) = value.get("detail") {
        return detail.clone();
    }
    value
}

/// Each key's event numbers in the order the messages came.
pub fn numbers_by_key(messages: &[Received]) -> BTreeMap<String, Vec<u64>> {
    let mut by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for message in messages {
        let envelope = envelope(&message.body);
        let key = envelope["ordering_key"].as_str().expect("a key").to_owned();
        let n = envelope["payload"]["n"].as_u64().expect("a number");
        by_key.entry(key).or_default().push(n);
    }
    by_key
}

/// `1..=count` for each key.
pub fn in_order(keys: &[&str], count: u64) -> BTreeMap<String, Vec<u64>> {
    keys.iter()
        .map(|key| (key.to_string(), (1..=count).collect()))
        .collect()
}
