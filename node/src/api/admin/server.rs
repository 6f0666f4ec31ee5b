//! Accepting admin connections and serving each with hyper's HTTP/1
//! server under the bounds described in the module above: the slot
//! table, the idle limit and hyper's own head limits.

use super::slots::{Admission, Slots};
use super::{IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_HEAD_BYTES};
use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Accept until the task is aborted; aborting drops the [`JoinSet`],
/// which aborts every connection.
pub async fn accept_loop(listener: TcpListener, router: Router) {
    let slots = Slots::new(MAX_CONNECTIONS);
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!("admin API accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Admitting first may close an older connection: the new one never waits.
        let admission = slots.admit();
        connections.spawn(serve(stream, admission, router.clone()));
    }
}

/// One connection, until the client closes it, it stays idle for
/// [`IDLE_TIMEOUT`], or the slot table evicts it.
async fn serve(stream: TcpStream, admission: Admission, router: Router) {
    let slot = admission.slot.clone();
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let busy = slot.begin_request();
        let router = router.clone();
        async move {
            let resp = router.oneshot(req.map(Body::new)).await;
            // Idle again while the answer is written: a client that does
            // not read it may be evicted or timed out.
            drop(busy);
            resp
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        // Also bounds a head that trickles in after a keep-alive pause.
        .header_read_timeout(IDLE_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let slot = &admission.slot;
    loop {
        // While busy, look again after a full period: the deadline only
        // starts once the request is answered.
        let wake = slot
            .idle_deadline(IDLE_TIMEOUT)
            .unwrap_or_else(|| tokio::time::Instant::now() + IDLE_TIMEOUT);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = slot.evicted() => return,
            _ = tokio::time::sleep_until(wake) => {
                let now = tokio::time::Instant::now();
                if slot.idle_deadline(IDLE_TIMEOUT).is_some_and(|d| d <= now) {
                    return;
                }
            }
        }
    }
}
