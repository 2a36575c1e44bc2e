//! The broker deployment's own resources on moto's server ([`crate::moto::LocalMoto`]): the
//! order events bus, the rule delivering `OrderPlaced` to the rewards inbox's queue, the queue
//! and its dead-letter queue, created from `patterns/broker/template.yaml` as CloudFormation
//! would create them (names, the rule's event pattern, the queue's visibility timeout and
//! redrive policy, the target's dead-letter queue). The relay publishes to this bus and the
//! inbox reads this queue, so what runs locally is what the template deploys.

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_eventbridge::types::{DeadLetterConfig, Target};
use serde_json::Value as Json;

use crate::mapping::sqs::{create_queues, queues};
use crate::moto::LocalMoto;
use crate::template::Template;

mod race;
mod stack;
pub use stack::{
    inbox_in_process, relay_in_process, BrokerStack, InboxProcessor, RelayProcessor, EVENT_SOURCE,
    INBOX_MAPPING, RELAY_FUNCTION,
};

/// The template's logical ids of the broker's resources.
pub const BUS: &str = "OrderEventsBus";
pub const RULE: &str = "OrderPlacedRule";
pub const QUEUE: &str = "RewardsInboxQueue";
pub const DEAD_LETTER_QUEUE: &str = "RewardsInboxDeadLetterQueue";

/// A queue as created.
#[derive(Debug, Clone)]
pub struct Queue {
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// The bus, the rule and the two queues, created on one moto server.
pub struct LocalBroker {
    /// The bus's name (what the relay's `PutEvents` entries name).
    pub bus: String,
    pub rule: String,
    pub queue: Queue,
    pub dead_letter_queue: Queue,
    /// Receives after which the queue moves a message to the dead-letter queue.
    pub max_receive_count: i64,
    pub events: aws_sdk_eventbridge::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl LocalBroker {
    /// Creates the broker's resources of `template` on `moto`.
    pub async fn create(moto: &LocalMoto, template: &Template) -> Result<Self> {
        let sqs = moto.sqs().await;
        let events = moto.eventbridge().await;
        // Every queue of the template, as the mapping emulator creates them (the relay's
        // on-failure queue too): the inbox's and its dead-letter queue are picked by id.
        let specs = queues(template)?;
        let mut created = create_queues(template, &sqs).await?;
        // Each with its RedrivePolicy's maxReceiveCount, if it has one.
        let mut take = |id: &str| -> Result<(Queue, Option<i64>)> {
            let spec = specs.iter().find(|spec| spec.logical_id == id);
            let (Some(spec), Some(local)) = (spec, created.remove(id)) else {
                bail!("{id} is not a queue of the template");
            };
            let (name, url, arn) = (spec.name.clone(), local.url, local.arn);
            let max_receive_count = spec.dead_letter.as_ref().map(|(_, count)| *count);
            Ok((Queue { name, url, arn }, max_receive_count))
        };
        let ((queue, redrive), (dead_letter_queue, _)) = (take(QUEUE)?, take(DEAD_LETTER_QUEUE)?);
        let max_receive_count = redrive.ok_or_else(|| anyhow!("{QUEUE} has no RedrivePolicy"))?;

        let bus = text(&template.properties(BUS)?, "Name")?;
        events
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .context("creating the event bus on moto")?;
        let rule_properties = template.properties(RULE)?;
        let rule = text(&rule_properties, "Name")?;
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(&bus)
            .event_pattern(rule_properties["EventPattern"].to_string())
            .send()
            .await
            .context("creating the rule on moto")?;
        for target in rule_properties["Targets"].as_array().into_iter().flatten() {
            if target["Arn"] != format!("!GetAtt {QUEUE}.Arn") {
                bail!("{RULE} has a target other than {QUEUE}: {target}");
            }
            let dead_letters = DeadLetterConfig::builder()
                .arn(&dead_letter_queue.arn)
                .build();
            let target = Target::builder()
                .id(text(target, "Id")?)
                .arn(&queue.arn)
                .dead_letter_config(dead_letters)
                .build()?;
            events
                .put_targets()
                .rule(&rule)
                .event_bus_name(&bus)
                .targets(target)
                .send()
                .await
                .context("adding the rule's target on moto")?;
        }
        Ok(Self {
            bus,
            rule,
            queue,
            dead_letter_queue,
            max_receive_count,
            events,
            sqs,
        })
    }
}

fn text(properties: &Json, key: &str) -> Result<String> {
    properties[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no {key} in {properties}"))
}

#[cfg(test)]
mod tests {
    use aws_sdk_eventbridge::types::PutEventsRequestEntry;
    use aws_sdk_sqs::types::Message;

    use serde_json::json;

    use super::*;
    use crate::Pattern;

    async fn receive(broker: &LocalBroker, queue: &Queue) -> Vec<Message> {
        broker
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_rule_delivers_only_order_placed_to_the_inbox_and_what_it_keeps_failing_goes_to_the_dead_letters(
    ) {
        let Some(moto) = LocalMoto::start_or_skip("broker: the template's bus, rule and queues")
            .await
            .unwrap()
        else {
            return;
        };
        let template = Template::load(&Pattern::Broker.template_path()).unwrap();
        let broker = LocalBroker::create(&moto, &template).await.unwrap();
        let envelope = json!({"event_id": "e-1", "event_type": "OrderPlaced", "payload": {}});
        for (source, detail_type) in [
            ("orders", "OrderPlaced"),
            ("orders", "OrderCancelled"),
            ("someone-else", "OrderPlaced"),
        ] {
            let entry = PutEventsRequestEntry::builder()
                .event_bus_name(&broker.bus)
                .source(source)
                .detail_type(detail_type)
                .detail(envelope.to_string())
                .build();
            let put = broker.events.put_events().entries(entry).send().await;
            assert_eq!(put.unwrap().failed_entry_count, 0);
        }

        let mut receives = 0;
        loop {
            let messages = receive(&broker, &broker.queue).await;
            if messages.is_empty() {
                break;
            }
            receives += 1;
            assert_eq!(
                messages.len(),
                1,
                "only the orders' OrderPlaced: {messages:?}"
            );
            let body: Json = serde_json::from_str(messages[0].body().unwrap()).unwrap();
            assert_eq!(
                (&body["source"], &body["detail-type"], &body["detail"]),
                (&json!("orders"), &json!("OrderPlaced"), &envelope)
            );
            assert!(receives <= broker.max_receive_count, "never moved");
        }
        assert_eq!(
            receives, broker.max_receive_count,
            "received, never deleted"
        );
        let dead = receive(&broker, &broker.dead_letter_queue).await;
        assert_eq!(dead.len(), 1, "moved to the dead-letter queue: {dead:?}");
    }
}
