//! Invoking a function over the Lambda Invoke API, as `cargo lambda watch` (and AWS) serve it.

use anyhow::{Context, Result};
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::streams::{DynamoDbEventResponse, KinesisEventResponse};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::mapping::Function;

pub struct LambdaInvokeApi {
    url: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl LambdaInvokeApi {
    pub fn new(url: &str) -> Result<Self> {
        url.parse::<http::Uri>().context("invoke URL")?;
        Ok(Self {
            url: url.to_owned(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    async fn post<E: Serialize, R: DeserializeOwned>(&self, event: E) -> Result<R, String> {
        let body = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
        let request = http::Request::post(&self.url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| format!("invoke: {e}"))?;
        let function_error = response.headers().contains_key("x-amz-function-error");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if function_error || !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("unexpected response: {e}"))
    }
}

impl Function<Event> for LambdaInvokeApi {
    type Response = DynamoDbEventResponse;
    async fn call(&self, event: Event) -> Result<DynamoDbEventResponse, String> {
        self.post(event).await
    }
}

impl Function<KinesisEvent> for LambdaInvokeApi {
    type Response = KinesisEventResponse;
    async fn call(&self, event: KinesisEvent) -> Result<KinesisEventResponse, String> {
        self.post(event).await
    }
}
