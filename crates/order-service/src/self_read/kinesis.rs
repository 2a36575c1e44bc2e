//! [`EventPublisher`] on a Kinesis data stream: `PutRecord` with the ordering key as partition
//! key. Only the pattern-3 API links this (feature `kinesis`); the outbox order-writer does not.

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::config::Region;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::Client;
use dynamodb_outbox::KinesisPut;
use service_runtime::config;

use super::publish::EventPublisher;
use crate::domain::StoreError;

/// Publishes to the stream `stream`.
#[derive(Clone, Debug)]
pub struct KinesisPublisher {
    client: Client,
    stream: String,
}

impl KinesisPublisher {
    pub fn new(client: Client, stream: impl Into<String>) -> Self {
        Self {
            client,
            stream: stream.into(),
        }
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }
}

impl EventPublisher for KinesisPublisher {
    async fn publish(&self, record: &KinesisPut) -> Result<(), StoreError> {
        self.client
            .put_record()
            .stream_name(&self.stream)
            .partition_key(&record.partition_key)
            .data(Blob::new(record.data.clone()))
            .send()
            .await
            .map(drop)
            .map_err(classify)
    }
}

/// Throttling, 5xx, timeouts and lost connections may pass (and may have put the record);
/// anything else is this request's fault or the configuration's.
fn classify<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            // The SDK's own throttling and transient codes, and Kinesis's throttling by KMS
            // (a put to an encrypted stream), which the SDK's lists do not name.
            service.raw().status().is_server_error()
                || THROTTLING_ERRORS.contains(&code)
                || TRANSIENT_ERRORS.contains(&code)
                || code == "KMSThrottlingException"
                || code.is_empty()
        }
        SdkError::ConstructionFailure(_) => false,
        _ => true,
    };
    let message = DisplayErrorContext(err).to_string();
    if transient {
        StoreError::Unavailable(message)
    } else {
        StoreError::Failed(message)
    }
}

/// The Kinesis client of a function, from the environment Lambda gives it (as
/// [`config::dynamodb_client`] does for DynamoDB): region, the role's credentials, and
/// the endpoint [`config::endpoint_url`] finds (`AWS_ENDPOINT_URL_KINESIS`, then
/// `AWS_ENDPOINT_URL`) for a local kinesalite.
pub fn kinesis_client() -> Client {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mut builder = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .region(
            env("AWS_REGION")
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .map(Region::new),
        )
        .credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
        .retry_config(config::retry_config())
        .timeout_config(config::timeout_config())
        .http_client(config::https_client());
    if let Some(endpoint) = config::endpoint_url(config::KINESIS) {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}
