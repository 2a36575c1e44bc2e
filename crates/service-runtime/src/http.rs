//! API Gateway HTTP API (payload v2) plumbing shared by the order and rewards APIs: routing,
//! bodies, and the one mapping from errors to statuses.
//!
//! Written here rather than taken from `lambda_http` (1.3.2, only its `apigw_http` feature),
//! because measuring order-writer served through its adapter said so (docs/benchmarks.md, "Kept
//! crates, measured"; release profile, x86_64):
//! - about 147 KB more per stripped binary (order-writer with both kept crates 4,649,552 bytes
//!   against 4,390,048; the EMF crate alone adds 112,816 to stream-consumer), which the arm64
//!   order-writer, 108 KB under its 4 MB budget, cannot take;
//! - its request conversion panics, failing the invocation, on a body flagged base64 that is not
//!   base64 (`Body::from_maybe_encoded` expects it valid), where [`body_bytes`] answers 400
//!   `malformed_body` as the hostile-input corpus asks, and on a `Host` header that is no host
//!   name (`bad host`: it unwraps `Url::parse`), which the handlers here never read;
//! - no measurable cold-start difference (spawn to first `next`, median of 25 starts each,
//!   interleaved on a loaded machine: 14.3 ms with it, 16.4 ms without, within the noise);
//! - it puts the stage into the path rather than taking it out (and
//!   `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` leaves `rawPath`, which still carries a named stage),
//!   so [`route`] would strip it all the same; the body limit, the error mapping and a 405's
//!   `Allow` are ours either way.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{validate_id, StoreError, ValidationError};

/// Largest request body accepted; API Gateway allows more, orders never need it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An error as the client sees it: a status and `{"error": {"code", "message", "field"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            allow: None,
        }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token does not allow access to this customer",
        )
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this resource supports {allow}"),
            )
        }
    }

    pub fn into_response(self) -> ApiGatewayV2httpResponse {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message, "field": self.field }
        });
        let mut response = json(self.status, &body);
        if let Some(allow) = self.allow {
            response
                .headers
                .insert(http::header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

impl From<ValidationError> for ApiError {
    fn from(v: ValidationError) -> Self {
        Self {
            field: Some(v.field),
            ..Self::new(StatusCode::BAD_REQUEST, v.code, v.message)
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "database unavailable after retries");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is busy or unreachable; retry later",
                )
            }
            StoreError::Failed(why) | StoreError::Corrupt(why) => {
                tracing::error!(error = %why, "database request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status.as_u16());
    response
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let text = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    response.body = Some(Body::Text(text));
    response
}

pub fn with_header(
    mut response: ApiGatewayV2httpResponse,
    name: &'static str,
    value: &str,
) -> ApiGatewayV2httpResponse {
    if let Ok(value) = HeaderValue::from_str(value) {
        response
            .headers
            .insert(HeaderName::from_static(name), value);
    }
    response
}

/// The method and the path segments below the stage, whatever invoked the function: API Gateway
/// (whose `rawPath` carries the stage name for a named stage), `sam local`, or a test.
pub fn route(req: &ApiGatewayV2httpRequest) -> (Method, Vec<&str>) {
    let method = req.request_context.http.method.clone();
    let path = req
        .raw_path
        .as_deref()
        .or(req.request_context.http.path.as_deref())
        .unwrap_or("/");
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(stage) = req.request_context.stage.as_deref() {
        if stage != "$default" && segments.first() == Some(&stage) {
            segments.remove(0);
        }
    }
    (method, segments)
}

/// Who is calling, as far as the HTTP API vouches for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller<'a> {
    /// The API runs without an authorizer (local use, or a deployment without `JwtIssuer`): the
    /// request may name any customer.
    Unrestricted,
    /// An authorizer vouched for this customer: the request may act only as, and read only, them.
    Customer(&'a str),
}

impl Caller<'_> {
    /// Whether this caller may act as, or read the data of, `customer_id`.
    pub fn may_access(self, customer_id: &str) -> bool {
        match self {
            Caller::Unrestricted => true,
            Caller::Customer(own) => own == customer_id,
        }
    }
}

/// The JWT claims that can name the customer, in order of precedence.
pub const CUSTOMER_CLAIMS: [&str; 2] = ["customer_id", "sub"];

/// The one place that decides who the caller is; every handler asks it before reading or writing.
///
/// Without an authorizer in the request context the API is unrestricted. With one, the customer
/// is the first of [`CUSTOMER_CLAIMS`] that is present and not empty; it must be a valid customer
/// id (a malformed winner is refused, it never falls through to the next claim). An authorizer
/// that names no customer (no JWT, no usable claim) is refused: it fails closed.
pub fn caller(req: &ApiGatewayV2httpRequest) -> Result<Caller<'_>, ApiError> {
    let Some(authorizer) = req.request_context.authorizer.as_ref() else {
        return Ok(Caller::Unrestricted);
    };
    let unauthenticated = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the token names no customer: it needs a non-empty customer_id or sub claim",
        )
    };
    let claims = &authorizer.jwt.as_ref().ok_or_else(unauthenticated)?.claims;
    let customer = CUSTOMER_CLAIMS
        .iter()
        .find_map(|claim| claims.get(*claim).filter(|value| !value.is_empty()))
        .ok_or_else(unauthenticated)?;
    validate_id("customer_id", customer).map_err(|_| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token's customer claim is not a valid customer id",
        )
    })?;
    Ok(Caller::Customer(customer))
}

pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| {
            let err = ValidationError::new("invalid_header", name, "must be visible ASCII");
            ApiError::from(err)
        }),
    }
}

/// The request body as bytes, decoded from base64 when API Gateway encoded it, within the limit.
pub fn body_bytes(req: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, ApiError> {
    let raw = req.body.as_deref().unwrap_or_default();
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    if req.is_base64_encoded {
        if raw.len() / 4 * 3 > MAX_BODY_BYTES + 3 {
            return Err(too_large());
        }
        let bytes = STANDARD.decode(raw.trim()).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "the body is not valid base64",
            )
        })?;
        if bytes.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        Ok(bytes)
    } else if raw.len() > MAX_BODY_BYTES {
        Err(too_large())
    } else {
        Ok(raw.as_bytes().to_vec())
    }
}

/// Parses a JSON body, naming the field at fault when the JSON is valid but the shape is not.
pub fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(ct) = header(headers, "content-type")? {
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the order as application/json",
            ));
        }
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the body is empty",
        ));
    }
    let malformed = |e: serde_json::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_data() {
            ApiError {
                field: (path != ".").then_some(path),
                ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", inner.to_string())
            }
        } else {
            malformed(inner)
        }
    })?;
    de.end().map_err(malformed)?;
    Ok(value)
}
