//! Invoking a function over the Lambda Invoke API, as `cargo lambda watch` (and AWS) serve it.

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use outboxctl::signed::SignedHttp;

use crate::local::LOCAL_REGION;
use crate::mapping::Invoke;

/// A function behind its Invoke API URL, called signed with a local stack's credentials.
pub struct LambdaInvokeApi {
    http: SignedHttp,
}

impl LambdaInvokeApi {
    /// The function whose invocations `url` takes
    /// (`http://127.0.0.1:9000/2015-03-31/functions/<name>/invocations`).
    pub fn new(url: &str, config: &SdkConfig) -> Result<Self> {
        url.parse::<http::Uri>().context("invoke URL")?;
        let http = SignedHttp::new(url, "lambda", LOCAL_REGION, config)?;
        Ok(Self { http })
    }
}

impl Invoke<Event> for LambdaInvokeApi {
    async fn invoke(&self, event: Event) -> Result<DynamoDbEventResponse, String> {
        let body = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
        let headers = [("content-type", "application/json")];
        let sent = self.http.post("", &headers, body.into()).await;
        let response = sent.map_err(|e| format!("invoke: {e:#}"))?;
        let (status, bytes) = (response.status(), response.body());
        if response.headers().contains_key("x-amz-function-error") || !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(bytes)));
        }
        serde_json::from_slice(bytes).map_err(|e| format!("unexpected response: {e}"))
    }
}
