//! The HTTPS client and the roots it trusts: one TLS stack, and the system's bundle read once.

use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The SDK's HTTP client (hyper, pooled connections, HTTP/1.1 to DynamoDB) with rustls on ring:
/// one TLS stack, and the smaller one (aws-lc, the SDK's default, adds about 0.7 MB). What ring
/// lacks, a FIPS mode and post-quantum key exchange, the engine does not require; a deployment
/// that must have them switches to `CryptoMode::AwsLc` with the `rustls-aws-lc` feature.
pub fn https_client() -> SharedHttpClient {
    https_client_trusting(trust_store(|name| std::env::var_os(name)))
}

fn https_client_trusting(roots: tls::TrustStore) -> SharedHttpClient {
    let context = tls::TlsContext::builder()
        .with_trust_store(roots)
        .build()
        .unwrap_or_default();
    SharedHttpClient::new(RootsParsedOnce(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .tls_context(context)
            .build_https(),
    ))
}

/// The SDK's HTTPS client without its start-up warm-up. When a client is built, the SDK builds
/// a connector and drops it, so that the system's roots (which it caches) load during init; roots
/// given as PEM are not cached, so the warm-up parsed the whole bundle for nothing and the first
/// request parsed it again (about 1 ms of CPU of the 2.8 ms before the first poll here,
/// the repository's docs/benchmarks.md). Skipping it parses the bundle once, when the first request builds the
/// connector it keeps; every request is served exactly as before.
#[derive(Debug)]
struct RootsParsedOnce(SharedHttpClient);

impl HttpClient for RootsParsedOnce {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The system's CA bundle files, in the order distributions place them: Amazon Linux and
/// Fedora (the Lambda `provided.al2023` runtime), Debian and Ubuntu, Alpine and others.
pub const CA_BUNDLE_FILES: &[&str] = &[
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/cert.pem",
];

/// The roots the functions trust: the one bundle file, not the system default. The default
/// (rustls-native-certs) reads the bundle *and* every file of the certificate directory, the
/// same certificates again one file at a time: most of a cold start (the repository's docs/benchmarks.md). The
/// bundle holds every root the system trusts, so nothing is lost; AWS endpoints chain to the
/// Amazon Trust Services roots (and Starfield's, cross-signing them), which it contains.
/// `SSL_CERT_FILE` still names another bundle; with `SSL_CERT_DIR`, or no bundle file at all,
/// the system default decides, as before.
fn trust_store(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> aws_smithy_http_client::tls::TrustStore {
    use aws_smithy_http_client::tls::TrustStore;
    if env("SSL_CERT_DIR").is_some() {
        return TrustStore::default();
    }
    let bundle = match env("SSL_CERT_FILE") {
        Some(file) => std::fs::read(file)
            .ok()
            .map(|pem| parsable_certificates(&pem)),
        None => CA_BUNDLE_FILES.iter().find_map(|f| std::fs::read(f).ok()),
    };
    match bundle {
        Some(pem) if !pem.is_empty() => TrustStore::empty().with_pem_certificate(pem),
        _ => TrustStore::default(),
    }
}

/// The certificates of an operator's `SSL_CERT_FILE` that rustls accepts as roots, as PEM, up to
/// the first section that is not valid PEM. The SDK parses its PEM roots with `expect`, when the
/// first request builds its connector (see [`RootsParsedOnce`]): a bad file would panic there,
/// and every later request with it. The system's bundle, which every TLS library on the machine
/// reads, is handed over as it is: checking it would cost what skipping the warm-up saves.
fn parsable_certificates(pem: &[u8]) -> Vec<u8> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut parsable = Vec::new();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let Ok(certificate) = certificate else { break };
        if rustls::RootCertStore::empty()
            .add(certificate.clone())
            .is_err()
        {
            continue;
        }
        parsable.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in STANDARD.encode(certificate.as_ref()).as_bytes().chunks(64) {
            parsable.extend_from_slice(line);
            parsable.push(b'\n');
        }
        parsable.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    parsable
}

#[cfg(test)]
mod tests {
    use aws_config::retry::RetryConfig;
    use aws_config::BehaviorVersion;
    use aws_sdk_dynamodb::config::Region;
    use aws_sdk_dynamodb::Client;

    use super::*;

    #[test]
    fn the_trust_store_is_the_bundle_file_unless_a_certificate_directory_is_asked_for() {
        let bundle = std::env::temp_dir().join(format!("outbox-roots-{}.pem", std::process::id()));
        std::fs::write(&bundle, AMAZON_ROOT_CA_1).unwrap();
        let file_only = |name: &str| (name == "SSL_CERT_FILE").then(|| bundle.clone().into());
        let store = format!("{:?}", trust_store(file_only));
        assert!(store.contains("enable_native_roots: false"), "{store}");
        assert!(store.contains("CertificatePEM"), "{store}");
        let with_dir = |name: &str| match name {
            "SSL_CERT_DIR" => Some("/etc/ssl/certs".into()),
            "SSL_CERT_FILE" => Some(bundle.clone().into()),
            _ => None,
        };
        let store = format!("{:?}", trust_store(with_dir));
        assert!(store.contains("enable_native_roots: true"), "{store}");
        let missing = |name: &str| (name == "SSL_CERT_FILE").then(|| "/nonexistent/ca.pem".into());
        let store = format!("{:?}", trust_store(missing));
        assert!(
            store.contains("enable_native_roots: true"),
            "an unreadable file falls back to the system default: {store}"
        );
        std::fs::remove_file(&bundle).unwrap();
    }

    /// A real root (Amazon Root CA 1, from the system's bundle): rustls takes it.
    const AMAZON_ROOT_CA_1: &str = "-----BEGIN CERTIFICATE-----
MIIDQTCCAimgAwIBAgITBmyfz5m/jAo54vB4ikPmljZbyjANBgkqhkiG9w0BAQsF
ADA5MQswCQYDVQQGEwJVUzEPMA0GA1UEChMGQW1hem9uMRkwFwYDVQQDExBBbWF6
b24gUm9vdCBDQSAxMB4XDTE1MDUyNjAwMDAwMFoXDTM4MDExNzAwMDAwMFowOTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoTBkFtYXpvbjEZMBcGA1UEAxMQQW1hem9uIFJv
b3QgQ0EgMTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBALJ4gHHKeNXj
ca9HgFB0fW7Y14h29Jlo91ghYPl0hAEvrAIthtOgQ3pOsqTQNroBvo3bSMgHFzZM
9O6II8c+6zf1tRn4SWiw3te5djgdYZ6k/oI2peVKVuRF4fn9tBb6dNqcmzU5L/qw
IFAGbHrQgLKm+a/sRxmPUDgH3KKHOVj4utWp+UhnMJbulHheb4mjUcAwhmahRWa6
VOujw5H5SNz/0egwLX0tdHA114gk957EWW67c4cX8jJGKLhD+rcdqsq08p8kDi1L
93FcXmn/6pUCyziKrlA4b9v7LWIbxcceVOF34GfID5yHI9Y/QCB/IIDEgEw+OyQm
jgSubJrIqg0CAwEAAaNCMEAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMC
AYYwHQYDVR0OBBYEFIQYzIU07LwMlJQuCFmcx7IQTgoIMA0GCSqGSIb3DQEBCwUA
A4IBAQCY8jdaQZChGsV2USggNiMOruYou6r4lK5IpDB/G/wkjUu0yKGX9rbxenDI
U5PMCCjjmCXPI6T53iHTfIUJrU6adTrCC2qJeHZERxhlbI1Bjjt/msv0tadQ1wUs
N+gDS63pYaACbvXy8MWy7Vu33PqUXHeeE6V/Uq2V8viTO96LXFvKWlJbYK8U90vv
o/ufQJVtMVT8QtPHRh8jrdkPSHCa2XV4cdFyQzR1bldZwgJcJmApzyMZFo6IQ6XU
5MsI+yMRQ+hDKXJioaldXgjUkK642M4UwtBV8ob2xJNDd2ZhwLnoQdeXeGADbkpy
rqXRfboQnoZsG4q5WTP468SQvvG5
-----END CERTIFICATE-----
";

    /// What the SDK made of an `SSL_CERT_FILE` holding a certificate rustls refuses (valid
    /// base64, not a certificate) before the real root: it panicked building its connector.
    #[tokio::test]
    async fn an_operators_bundle_with_a_bad_certificate_keeps_its_good_roots_and_never_panics() {
        let bundle =
            std::env::temp_dir().join(format!("outbox-bad-roots-{}.pem", std::process::id()));
        std::fs::write(
            &bundle,
            format!(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n{AMAZON_ROOT_CA_1}"
            ),
        )
        .unwrap();
        let file_only = |name: &str| (name == "SSL_CERT_FILE").then(|| bundle.clone().into());
        let roots = trust_store(file_only);
        let kept = format!("{roots:?}");
        assert!(kept.contains("enable_native_roots: false"), "{kept}");
        assert_eq!(kept.matches("CertificatePEM").count(), 1, "{kept}");

        // The first request builds the connector, parsing the roots: it fails to connect (nothing
        // listens on port 9 over TLS here), it does not panic.
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .retry_config(RetryConfig::disabled())
            .http_client(https_client_trusting(roots))
            .endpoint_url("https://127.0.0.1:9")
            .build();
        let outcome = Client::from_conf(config).list_tables().send().await;
        assert!(outcome.is_err(), "{outcome:?}");
        std::fs::remove_file(&bundle).unwrap();
    }
}
