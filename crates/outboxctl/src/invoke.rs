//! The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`), signed with SigV4
//! from the SDK's credential chain. Written against the API rather than through the Lambda SDK:
//! one call does not justify a second service client, and the same request reaches
//! `cargo lambda watch` locally.

use std::time::SystemTime;

use anyhow::{anyhow, bail, Context, Result};
use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value as Json;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// The service part of `AWS_ENDPOINT_URL_<SERVICE>` for Lambda.
pub const LAMBDA: &str = "LAMBDA";

pub struct LambdaClient {
    http: Client<Https, Full<Bytes>>,
    endpoint: String,
    region: String,
    config: SdkConfig,
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
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .context("loading TLS roots")?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            http: Client::builder(TokioExecutor::new()).build(https),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region,
            config: config.clone(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Invokes `function` (a name or ARN) synchronously with `payload`; its answer, or an error
    /// carrying the function's error when it failed.
    pub async fn invoke(&self, function: &str, payload: &Json) -> Result<Json> {
        let body = Bytes::from(serde_json::to_vec(payload)?);
        let uri = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.endpoint
        );
        let host = uri
            .parse::<http::Uri>()?
            .authority()
            .map(|a| a.to_string())
            .ok_or_else(|| anyhow!("endpoint {} has no host", self.endpoint))?;
        let mut request = http::Request::post(uri)
            .header("content-type", "application/json")
            .header("host", host)
            .body(Full::new(body.clone()))?;
        self.sign(&mut request, &body).await?;
        let response = self
            .http
            .request(request)
            .await
            .with_context(|| format!("invoking {function}"))?;
        let function_error = response.headers().get("x-amz-function-error").cloned();
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        if let Some(kind) = function_error {
            bail!(
                "{function} failed ({}): {text}",
                kind.to_str().unwrap_or("?")
            );
        }
        if !status.is_success() {
            bail!("invoking {function}: {status}: {text}");
        }
        if bytes.is_empty() {
            return Ok(Json::Null);
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{function} answered {text}"))
    }

    async fn sign(&self, request: &mut http::Request<Full<Bytes>>, body: &[u8]) -> Result<()> {
        let provider = self
            .config
            .credentials_provider()
            .ok_or_else(|| anyhow!("no AWS credentials configured"))?;
        let identity = provider.provide_credentials().await?.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("lambda")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            request.uri().to_string(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}
