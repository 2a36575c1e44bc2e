//! An HTTP client that never leaves the process: every request gets the same canned DynamoDB
//! answer. Criterion then times what a handler costs in CPU (parsing, validation, serialization,
//! SigV4 signing, the SDK's orchestrator, logging) with no network or server time in it.

use aws_sdk_dynamodb::config::http::{HttpRequest, HttpResponse};
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// Answers every request with `200` and an empty JSON object: a successful `TransactWriteItems`,
/// `UpdateItem` or `PutItem` as DynamoDB returns it when no return values are asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Replay;

impl HttpConnector for Replay {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let mut response = HttpResponse::new(
            200u16.try_into().expect("200 is a status code"),
            SdkBody::from("{}"),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Replay {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(*self)
    }
}

/// The functions' own client (the project's retry, timeout and classifier settings), with the
/// replaying HTTP client in place of the network. Region and credentials are fixed so nothing is
/// looked up; the endpoint is DynamoDB's real one, so endpoint resolution is timed too.
pub async fn client() -> aws_sdk_dynamodb::Client {
    let config = service_runtime::config::sdk_defaults()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .http_client(Replay)
        .load()
        .await;
    service_runtime::config::client_from(&config)
}
