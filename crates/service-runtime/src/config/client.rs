//! The DynamoDB client: the engine's ([`dynamodb_client`]) for the functions, and the same
//! settings on aws-config's standard sources for the local tools.

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;

use dynamodb_outbox::dynamodb::TransientCancellation;
pub use dynamodb_outbox::lambda::{
    dynamodb_client, endpoint_url, https_client, retry_config, timeout_config, CA_BUNDLE_FILES,
};

/// The service part of `AWS_ENDPOINT_URL_<SERVICE>` for DynamoDB.
pub const DYNAMODB: &str = "DYNAMODB";
/// The service part of `AWS_ENDPOINT_URL_<SERVICE>` for Kinesis.
pub const KINESIS: &str = "KINESIS";

/// The project's SDK settings on aws-config's standard sources (environment, profiles, ...), for
/// the local tools and tests; the functions use the same settings in [`dynamodb_client`].
pub fn sdk_defaults() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .http_client(https_client())
}

/// A client for an already-loaded configuration, with this project's retry rules added.
pub fn client_from(shared: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::from(shared)
        .retry_classifier(TransientCancellation)
        .build();
    Client::from_conf(config)
}
