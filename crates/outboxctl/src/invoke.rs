//! The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`), signed from the SDK's
//! credential chain. Written against the API rather than through the Lambda SDK: one call does
//! not justify a second service client, and the same request reaches `cargo lambda watch`.

use anyhow::{anyhow, bail, Context, Result};
use aws_config::SdkConfig;
use bytes::Bytes;
use serde_json::Value as Json;

use crate::signed::SignedHttp;

/// The service part of `AWS_ENDPOINT_URL_<SERVICE>` for Lambda.
pub const LAMBDA: &str = "LAMBDA";

pub struct LambdaClient {
    http: SignedHttp,
}

impl LambdaClient {
    /// A client for `AWS_ENDPOINT_URL_LAMBDA` (then `AWS_ENDPOINT_URL`), else Lambda's endpoint
    /// in `config`'s region.
    pub fn new(config: &SdkConfig) -> Result<Self> {
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| anyhow!("no AWS region configured (AWS_REGION or a profile)"))?;
        let endpoint = service_runtime::config::endpoint_url(LAMBDA)
            .unwrap_or_else(|| format!("https://lambda.{region}.amazonaws.com"));
        Ok(Self {
            http: SignedHttp::new(&endpoint, "lambda", &region, config)?,
        })
    }

    pub fn endpoint(&self) -> &str {
        self.http.endpoint()
    }

    /// Invokes `function` (a name or ARN) synchronously with `payload`; its answer, or an error
    /// carrying the function's error when it failed.
    pub async fn invoke(&self, function: &str, payload: &Json) -> Result<Json> {
        let path = format!("/2015-03-31/functions/{function}/invocations");
        let body = Bytes::from(serde_json::to_vec(payload)?);
        let headers = [("content-type", "application/json")];
        let response = self
            .http
            .post(&path, &headers, body)
            .await
            .with_context(|| format!("invoking {function}"))?;
        let text = String::from_utf8_lossy(response.body());
        if let Some(kind) = response.headers().get("x-amz-function-error") {
            bail!(
                "{function} failed ({}): {text}",
                kind.to_str().unwrap_or("?")
            );
        }
        if !response.status().is_success() {
            bail!("invoking {function}: {}: {text}", response.status());
        }
        if response.body().is_empty() {
            return Ok(Json::Null);
        }
        serde_json::from_slice(response.body())
            .with_context(|| format!("{function} answered {text}"))
    }
}
