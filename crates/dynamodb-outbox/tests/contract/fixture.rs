//! The two stores under test, and the world the contract's bodies run in: an outbox written in
//! memory, its items stored where the store under test marks them, and a ledger consumer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls;
use dynamodb_outbox::dynamodb::{DynamoConsumerStore, Routes};
use dynamodb_outbox::memory::{MemoryOutbox, MemoryStore};
use dynamodb_outbox::testing::{
    create_tables, Header, Inspect, Parked, Recording, StoreOps, WaitingItem,
};
use dynamodb_outbox::{
    Consumer, Effect, Envelope, HandlerError, Home, ItemKey, PoisonPolicy, Processor, Source, Takes,
};
use serde::Serialize;
use serde_dynamo::{AttributeValue, Item};

pub use crate::accounts::{deposit, Deposited, Frozen};
pub use crate::ledger::{balance_of, TABLE};
/// The outbox table the consumers mark.
pub const OUTBOX: &str = "outbox";

/// A store the contract runs on, started empty.
pub trait StoreUnderTest: Inspect {
    async fn start() -> Self;
}

impl StoreUnderTest for MemoryStore {
    async fn start() -> Self {
        MemoryStore::new(TABLE)
    }
}

impl StoreUnderTest for DynamoConsumerStore {
    /// An in-memory dynoxide of its own, served on a free port, with the engine's tables.
    async fn start() -> Self {
        let db = dynoxide::Database::memory().expect("an in-memory dynoxide");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(dynoxide::server::serve_on(listener, db));
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
            .endpoint_url(endpoint)
            .http_client(http)
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        create_tables(&client, TABLE, OUTBOX).await.unwrap();
        DynamoConsumerStore::new(client, TABLE, OUTBOX)
    }
}

/// Keeps a balance and a journal entry per event per account; a negative deposit is poison.
#[derive(Clone)]
pub struct Ledger {
    pub name: &'static str,
    pub policy: PoisonPolicy,
    pub down: Arc<AtomicBool>,
}

impl Ledger {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            policy: PoisonPolicy::Wait,
            down: Arc::default(),
        }
    }
}

impl Consumer for Ledger {
    type Payload = Deposited;

    fn name(&self) -> &str {
        self.name
    }

    fn takes(&self) -> Vec<Takes> {
        vec![Takes::versions("Deposited", 1..=1)]
    }

    fn on_poison(&self) -> PoisonPolicy {
        self.policy
    }

    async fn effect(&self, event: &Envelope<Deposited>) -> Result<Effect, HandlerError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(HandlerError::Transient("the ledger is down".into()));
        }
        if event.payload.cents < 0 {
            return Err(HandlerError::Poison("a negative deposit".into()));
        }
        let pk = format!("{}#{}", self.name, event.payload.account);
        let entry = Item::from(HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.clone())),
            (
                "sk".to_owned(),
                AttributeValue::S(format!("ENTRY#{}", event.event_id)),
            ),
        ]));
        Ok(Effect::new().put_new(TABLE, entry).add_at_most(
            balance_of(pk),
            event.payload.cents,
            1_000_000,
        ))
    }
}

/// Writes events into an outbox as a producer's transactions would, each item stored where the
/// store under test marks it.
pub struct Producer<S> {
    outbox: MemoryOutbox,
    /// Where `outbox` registers its items; the store under test gets them stored instead.
    scratch: MemoryStore,
    store: S,
}

impl<S: StoreUnderTest> Producer<S> {
    pub fn new(store: &S, routes: Routes) -> Self {
        Self {
            outbox: MemoryOutbox::new(routes),
            scratch: MemoryStore::new(TABLE),
            store: store.clone(),
        }
    }

    /// Writes the event's outbox item, as the producer's transaction would.
    pub async fn write<P: Serialize>(&mut self, event: &Envelope<P>) -> Item {
        let item = self.outbox.write(event, &self.scratch).unwrap();
        self.store.put_waiting(&item).await.unwrap();
        item
    }
}

pub struct World<S> {
    producer: Producer<S>,
    pub store: S,
    /// The store under test, recording its commits (and failing some when told).
    pub recorded: Recording<S>,
}

impl<S: StoreUnderTest> World<S> {
    /// Deposits routed to two consumers, the ledger and an audit.
    pub async fn new() -> Self {
        Self::routed(&["ledger", "audit"]).await
    }

    /// Deposits routed to the ledger alone.
    pub async fn alone() -> Self {
        Self::routed(&["ledger"]).await
    }

    async fn routed(deposits_to: &[&str]) -> Self {
        let store = S::start().await;
        let routes = Routes::new()
            .route("Deposited", deposits_to)
            .route("Frozen", &["ledger"]);
        Self {
            producer: Producer::new(&store, routes),
            recorded: Recording::new(store.clone()),
            store,
        }
    }

    /// Writes the event's outbox item, as the producer's transaction would.
    pub async fn write<P: Serialize>(&mut self, event: &Envelope<P>) -> Item {
        self.producer.write(event).await
    }

    /// Writes a deposit on `account` of each amount in `cents`, in order.
    pub async fn deposits(&mut self, account: &str, cents: &[i64]) -> Vec<Item> {
        let mut items = Vec::new();
        for &cents in cents {
            items.push(self.write(&deposit(account, cents)).await);
        }
        items
    }

    pub fn processor(&self, ledger: Ledger) -> Processor<Ledger, Recording<S>> {
        Processor::new(ledger, self.recorded.clone(), outbox()).concurrency(4)
    }

    /// The processor of the consumer named `ledger`.
    pub fn ledger(&self) -> Processor<Ledger, Recording<S>> {
        self.processor(Ledger::new("ledger"))
    }

    pub async fn balance(&self, consumer: &str, account: &str) -> i64 {
        let pk = format!("{consumer}#{account}");
        self.store
            .number(TABLE, &pk, "BALANCE", "cents")
            .await
            .unwrap()
    }

    /// The consumer's balances of `accounts`, in their order: one assertion over them shows them
    /// all when one is off.
    pub async fn balances(&self, consumer: &str, accounts: &[&str]) -> Vec<i64> {
        let mut balances = Vec::new();
        for account in accounts {
            balances.push(self.balance(consumer, account).await);
        }
        balances
    }

    /// The sequences the consumer applied on the key, in the order its commits happened (every
    /// event of these tests reaches every consumer, so a commit from progress `a` to `b` applied
    /// `a+1..=b`).
    pub fn applied_order(&self, consumer: &str, key: &str) -> Vec<u64> {
        self.commits(consumer, key)
            .into_iter()
            .flat_map(|(from, to)| from + 1..=to)
            .collect()
    }

    /// The consumer's commits on the key: (progress before, progress after).
    pub fn commits(&self, consumer: &str, key: &str) -> Vec<(u64, u64)> {
        self.recorded.spans(consumer, key)
    }

    pub async fn waiting(&self, item: &Item) -> WaitingItem {
        self.store.waiting(&key_of(item)).await.unwrap()
    }
}

/// The `cents` of `account`'s balance, as the ledgers of the sources' tests keep it.
pub async fn balance<S: StoreUnderTest>(store: &S, account: &str) -> i64 {
    let pk = format!("ACCOUNT#{account}");
    store.number(TABLE, &pk, "BALANCE", "cents").await.unwrap()
}

/// The `cents` of the last deposit on `account` those ledgers applied.
pub async fn last<S: StoreUnderTest>(store: &S, account: &str) -> i64 {
    let pk = format!("ACCOUNT#{account}");
    store.number(TABLE, &pk, "LAST", "cents").await.unwrap()
}

/// A store under test, started empty, and a processor of `consumer` over it, reading `source`
/// in the account and region of `arn`.
pub async fn processor_at<S: StoreUnderTest, C: Consumer>(
    consumer: C,
    source: Source,
    arn: &str,
) -> (Processor<C, S>, S) {
    let store = S::start().await;
    let processor =
        Processor::new(consumer, store.clone(), source).home(Home::of_arn(arn).unwrap());
    (processor, store)
}

/// Up to 10 of the `ledger`'s parked events in the store `processor` runs on.
pub async fn parked_of<C: Consumer, S: StoreUnderTest>(processor: &Processor<C, S>) -> Vec<Parked> {
    StoreOps::parked(processor.store(), "ledger", 10)
        .await
        .unwrap()
}

/// The outbox table as the processors' source.
pub fn outbox() -> Source {
    Source::table(OUTBOX).unwrap()
}

pub fn key_of(item: &Item) -> ItemKey {
    let header = Header::peek(item);
    ItemKey {
        pk: header.pk,
        sk: header.sk,
    }
}

pub fn name_of(item: &Item) -> String {
    let key = key_of(item);
    format!("{}/{}", key.pk, key.sk)
}
