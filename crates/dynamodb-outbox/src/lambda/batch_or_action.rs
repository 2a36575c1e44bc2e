//! A function with two kinds of payload: a batch from its event source mapping (it has
//! `Records`), or an action (a sweep, a redrive), told apart by the payload alone.

use std::marker::PhantomData;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use lambda_runtime::{Error, LambdaEvent, Service};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A payload with `Records` read as an `E` and answered by `batches`; any other payload
/// answered by `actions`. Both answers go out as JSON.
#[derive(Debug)]
pub(crate) struct BatchOrAction<'a, E, B, A> {
    batches: B,
    actions: A,
    // The batch event's type, and the life of the handlers' futures.
    event: PhantomData<fn(E) -> &'a ()>,
}

impl<E, B, A> BatchOrAction<'_, E, B, A> {
    /// The function whose batches `batches` answers and whose actions `actions` does.
    pub(crate) fn new(batches: B, actions: A) -> Self {
        Self {
            batches,
            actions,
            event: PhantomData,
        }
    }
}

impl<'a, E, B, A> Service<LambdaEvent<Value>> for BatchOrAction<'a, E, B, A>
where
    E: DeserializeOwned,
    B: Service<LambdaEvent<E>, Error = Error>,
    B::Response: Serialize,
    B::Future: Send + 'a,
    A: Service<LambdaEvent<Value>, Error = Error>,
    A::Response: Serialize,
    A::Future: Send + 'a,
{
    type Response = Value;
    type Error = Error;
    type Future = BoxFuture<'a, Result<Value, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, event: LambdaEvent<Value>) -> Self::Future {
        let LambdaEvent { payload, context } = event;
        if payload.get("Records").is_none() {
            let done = self.actions.call(LambdaEvent::new(payload, context));
            return Box::pin(async move { Ok(serde_json::to_value(done.await?)?) });
        }
        match serde_json::from_value::<E>(payload) {
            Ok(batch) => {
                let answered = self.batches.call(LambdaEvent::new(batch, context));
                Box::pin(async move { Ok(serde_json::to_value(answered.await?)?) })
            }
            Err(e) => Box::pin(async move { Err(e.into()) }),
        }
    }
}
