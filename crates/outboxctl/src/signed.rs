//! AWS JSON APIs over HTTP, signed with SigV4 from the SDK's credential chain: for the calls a
//! service client would be too much for (one Lambda call here, the DynamoDB Streams API in the
//! local tools, whose records the SDK's types would reshape).

use std::time::SystemTime;

use anyhow::{anyhow, Context, Result};
use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// A signed client for one service at one endpoint.
#[derive(Clone)]
pub struct SignedHttp {
    http: Client<Https, Full<Bytes>>,
    endpoint: String,
    /// The signing name (`dynamodb`, `lambda`).
    service: &'static str,
    region: String,
    config: SdkConfig,
}

impl SignedHttp {
    pub fn new(
        endpoint: &str,
        service: &'static str,
        region: &str,
        config: &SdkConfig,
    ) -> Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .context("loading TLS roots")?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            http: Client::builder(TokioExecutor::new()).build(https),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            service,
            region: region.to_owned(),
            config: config.clone(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// POSTs `body` to `path` with `headers`, signed; the response with its whole body.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<http::Response<Bytes>> {
        let uri: http::Uri = format!("{}{path}", self.endpoint).parse()?;
        let host = uri
            .authority()
            .map(|a| a.to_string())
            .ok_or_else(|| anyhow!("endpoint {} has no host", self.endpoint))?;
        let mut request = http::Request::post(uri).header("host", host);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(Full::new(body.clone()))?;
        self.sign(&mut request, &body).await?;
        let (parts, body) = self.http.request(request).await?.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok(http::Response::from_parts(parts, bytes))
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
            .name(self.service)
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
