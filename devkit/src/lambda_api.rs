//! A local Lambda Invoke API: `POST /2015-03-31/functions/{name}/invocations` on 127.0.0.1,
//! each function a handler served in process. What `outboxctl` (and any SDK) invokes a deployed
//! function through, so the operator's command runs against the same handlers the functions
//! run, with no container.
//!
//! A handler's error is answered as Lambda answers an unhandled one: status 200, the header
//! `X-Amz-Function-Error: Unhandled`, and `{"errorType", "errorMessage"}`; an unknown function as
//! `ResourceNotFoundException` (404).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value as Json};

use crate::serve::{serve, Serving};

/// A function's handler: the invocation's payload in, its result or its error out.
pub type Handler = Arc<dyn Fn(Json) -> BoxFuture<'static, Result<Json, String>> + Send + Sync>;

/// A handler from an async closure.
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Json) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Json, String>> + Send + 'static,
{
    Arc::new(move |payload| Box::pin(f(payload)))
}

/// The Invoke API, served until dropped.
pub struct LocalLambda {
    /// `http://127.0.0.1:<port>`, as `AWS_ENDPOINT_URL_LAMBDA` takes it.
    pub endpoint: String,
    _server: Serving,
}

impl LocalLambda {
    /// Serves `functions` (name → handler) on a free port.
    pub async fn serve(functions: HashMap<String, Handler>) -> Result<Self> {
        let functions = Arc::new(functions);
        let (address, server) = serve(move |req| invoke(req, functions.clone())).await?;
        Ok(Self {
            endpoint: format!("http://{address}"),
            _server: server,
        })
    }
}

/// The function a path names: `/2015-03-31/functions/{name}/invocations`.
fn function_of(path: &str) -> Option<&str> {
    path.strip_prefix("/2015-03-31/functions/")?
        .strip_suffix("/invocations")
}

async fn invoke(
    req: Request<Incoming>,
    functions: Arc<HashMap<String, Handler>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let answer = |status: u16, error: Option<&str>, body: Json| {
        let mut response = Response::builder()
            .status(status)
            .header("content-type", "application/json");
        if let Some(kind) = error {
            response = response.header("x-amz-function-error", kind);
        }
        Ok(response
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a valid response"))
    };
    let Some(handler) = function_of(&path).and_then(|name| functions.get(name)) else {
        let message = format!("Function not found: {path}");
        return answer(404, None, json!({"Type": "User", "message": message}));
    };
    let payload = match body.ok().map(|b| serde_json::from_slice::<Json>(&b)) {
        Some(Ok(payload)) => payload,
        _ => {
            let message = "Could not parse request body into json";
            return answer(400, None, json!({"Type": "User", "message": message}));
        }
    };
    match handler(payload).await {
        Ok(result) => answer(200, None, result),
        Err(message) => answer(
            200,
            Some("Unhandled"),
            json!({"errorType": "Error", "errorMessage": message}),
        ),
    }
}
