//! The accept loop of the local HTTP servers (the Lambda Invoke API, the Runtime API, the fault
//! proxy): HTTP/1 connections on a listener, each request answered by one async function.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A running server: dropping it stops the server and ends its open connections, requests held
/// open among them.
pub struct Serving(JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves a free loopback port until the returned [`Serving`] is dropped, every request of
/// every connection answered by `answer`; the port's address. An error from `answer` closes its
/// connection (how the fault proxy loses one).
pub async fn serve<A, F, E>(answer: A) -> std::io::Result<(SocketAddr, Serving)>
where
    A: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let serving = Serving(tokio::spawn(async move {
        // Aborted with this task, it aborts the connections.
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors, say, under a chaos run's load: the server waits and
                // goes on, as a real endpoint stays up.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            while connections.try_join_next().is_some() {}
            let answer = answer.clone();
            connections.spawn(async move {
                let connection = TokioIo::new(stream);
                let _ = http1::Builder::new()
                    .serve_connection(connection, service_fn(answer))
                    .await;
            });
        }
    }));
    Ok((address, serving))
}
