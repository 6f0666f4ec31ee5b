//! The request body Shoal sends to servers: the client's body, with
//! `timeout client` applied to every silence of the client while it
//! uploads (a slow-body client gets 408, as with HAProxy).

use super::body::BodyError;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The error a stalled upload ends with; the HTTP layer maps it to 408.
#[derive(Debug, thiserror::Error)]
#[error("client inactivity timeout while sending the request body")]
pub struct ClientTimeout;

/// A client's request body on its way to a server.
pub struct Upload {
    inner: Incoming,
    idle: Option<Duration>,
    /// Armed on the first wait for client data only.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Upload {
    /// Wrap a client's body; `idle` is the frontend's `timeout client`.
    pub fn new(inner: Incoming, idle: Option<Duration>) -> Upload {
        Upload {
            inner,
            idle,
            timer: None,
        }
    }
}

/// True if a failed exchange ended because the client stalled its upload.
pub fn is_client_timeout(e: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if err.is::<ClientTimeout>() {
            return true;
        }
        source = err.source();
    }
    false
}

impl Body for Upload {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let (Some(timer), Some(idle)) = (this.timer.as_mut(), this.idle) {
                    timer.as_mut().reset(Instant::now() + idle);
                }
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let Some(idle) = this.idle else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(ClientTimeout)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
