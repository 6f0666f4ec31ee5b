//! HTTP/2 towards servers: `server ... proto h2` (clear text with prior
//! knowledge, or over TLS with `ssl`), and `ssl alpn h2,...` when the
//! server chooses `h2`.
//!
//! The HTTP/1.1 engine speaks to server sockets, so, as for TLS, a
//! [`bridge`](super::bridge) socket pair stands in for the server: the
//! engine writes HTTP/1.1 on its end; on ours, hyper's HTTP/1.1 server
//! reads each request and sends it as a stream on the server's HTTP/2
//! connection (hyper's client); the answer comes back the same way. The
//! engine's routing, persistence, balancing, rewriting, `maxconn` and
//! queue, retries, timeouts, error pages, logs and counters therefore
//! apply unchanged, and the plain HTTP/1.1 path pays one branch.
//!
//! One HTTP/2 connection per server per node carries every stream (one
//! per SNI value when the server's `sni` is evaluated per connection: a
//! stream only rides a connection opened with its own SNI). The
//! first connect opens it (under `timeout connect`, with the retries and
//! redispatch of any connect, see [`crate::dispatch`]); the first connect
//! after it closed opens another. Simultaneous connects wait for the one
//! opening it instead of opening their own. Bridges are pooled by the
//! engine like server connections; a request on a bridge whose HTTP/2
//! connection has closed gets no answer, which the engine treats as a
//! reused connection closed by the server: one retry, on a new connect.

use super::bridge;
use super::upstream::{bridge_to, Upstream};
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use hyper::http::uri::{Authority, Scheme};
use hyper::{Request, Response, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How a server is reached over HTTP/2.
#[derive(Debug)]
pub struct H2Upstream {
    /// `proto h2`: HTTP/2 whatever ALPN says. Otherwise (`alpn` with
    /// `h2`) HTTP/2 only when the server chooses it.
    forced: bool,
    /// `https` with `ssl`, else `http`: the streams' `:scheme`.
    scheme: Scheme,
    /// The server chose `h2` by ALPN at least once (always true when
    /// forced): connects then wait for a connection being opened.
    speaks_h2: AtomicBool,
    /// The open connections: one, or one per SNI value. Locked only to
    /// find or add one (no I/O under it).
    live: std::sync::Mutex<Vec<Live>>,
    /// Connects in progress, one gate per destination (address and SNI):
    /// a request for a destination being connected to waits for that
    /// connect and then shares it, without waiting for another
    /// destination's (a client choosing a slow SNI stalls only itself).
    opening: std::sync::Mutex<Vec<Gate>>,
    /// Header fields the bridge reads in a request from the engine.
    max_headers: usize,
    /// The backend's `timeout connect`: the most a new connection (TCP,
    /// TLS and HTTP/2 handshakes) may take, also when a request is sent
    /// again after its connection closed (requests for the same
    /// destination wait for it meanwhile).
    connect_timeout: std::time::Duration,
}

/// Header fields the engine may add to a request of `tune.http.maxhdr`
/// lines (`option forwardfor`, `http-request set-header`...) that the
/// bridge still takes; hyper's own default (100) would answer 431 to a
/// request the engine accepted.
const HEADER_ROOM: usize = 64;

/// Open HTTP/2 connections kept per server, each for its own SNI; the
/// oldest is let go (it closes when its streams end) beyond this.
const MAX_LIVE: usize = 64;

/// A connect in progress to one destination.
#[derive(Debug)]
struct Gate {
    addr: SocketAddr,
    sni: Option<Box<str>>,
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// An open HTTP/2 connection and where it goes.
#[derive(Debug)]
struct Live {
    addr: SocketAddr,
    /// The SNI it was opened with (per-connection `sni` only).
    sni: Option<Box<str>>,
    sender: SendRequest<Incoming>,
}

impl H2Upstream {
    /// `forced`: `proto h2`; `ssl`: the server line has `ssl`;
    /// `maxhdr`: `tune.http.maxhdr`, the most lines of a request head the
    /// engine takes; `connect_timeout`: the backend's `timeout connect`.
    pub fn new(
        forced: bool,
        ssl: bool,
        maxhdr: usize,
        connect_timeout: std::time::Duration,
    ) -> H2Upstream {
        H2Upstream {
            connect_timeout,
            // Room for the fields the frontend adds (forwardfor, rules).
            max_headers: maxhdr + HEADER_ROOM,
            forced,
            scheme: if ssl { Scheme::HTTPS } else { Scheme::HTTP },
            speaks_h2: AtomicBool::new(forced),
            live: std::sync::Mutex::new(Vec::new()),
            opening: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A stream for the engine to the server at `addr`: a bridge onto the
    /// open HTTP/2 connection, or onto a new one (TCP, then TLS with
    /// `tls` sending `sni`, then HTTP/2); when ALPN chose HTTP/1.1, the
    /// TLS session itself. The flag says whether a connection was opened.
    pub async fn connect(
        self: &Arc<Self>,
        addr: SocketAddr,
        tls: Option<&Arc<Upstream>>,
        sni: Option<&str>,
    ) -> io::Result<(TcpStream, bool)> {
        match self.open(addr, tls.map(|t| &**t), sni).await? {
            Opened::Http1(session) => Ok((bridge_to(*session)?, true)),
            Opened::Http2(sender, fresh) => {
                let way = Way {
                    upstream: self.clone(),
                    tls: tls.cloned(),
                    addr,
                    sni: sni.map(Arc::from),
                };
                Ok((way.bridge(sender)?, fresh))
            }
        }
    }

    /// The open HTTP/2 connection to `addr` for `sni`, or a new connection.
    async fn open(
        &self,
        addr: SocketAddr,
        tls: Option<&Upstream>,
        sni: Option<&str>,
    ) -> io::Result<Opened> {
        // A server not known to speak HTTP/2 yet is connected to without
        // a gate: its HTTP/1.1 connects must not wait in line.
        if !self.speaks_h2.load(Relaxed) {
            return self.open_new(addr, tls, sni).await;
        }
        if let Some(sender) = self.find(addr, sni) {
            return Ok(Opened::Http2(sender, false));
        }
        let gate = self.gate(addr, sni);
        let opened = async {
            let _turn = gate.lock().await;
            // Opened while this request waited for its turn.
            if let Some(sender) = self.find(addr, sni) {
                return Ok(Opened::Http2(sender, false));
            }
            self.open_new(addr, tls, sni).await
        }
        .await;
        self.lock_opening()
            .retain(|g| !Arc::ptr_eq(&g.turn, &gate) || Arc::strong_count(&gate) > 2);
        opened
    }

    /// An open connection to `addr` for `sni` (closed ones are let go).
    fn find(&self, addr: SocketAddr, sni: Option<&str>) -> Option<SendRequest<Incoming>> {
        let mut live = self.lock_live();
        live.retain(|l| !l.sender.is_closed());
        live.iter()
            .find(|l| l.addr == addr && l.sni.as_deref() == sni)
            .map(|l| l.sender.clone())
    }

    /// The gate of the connect to `addr` for `sni`, made if none is open.
    fn gate(&self, addr: SocketAddr, sni: Option<&str>) -> Arc<tokio::sync::Mutex<()>> {
        let mut opening = self.lock_opening();
        if let Some(g) = opening
            .iter()
            .find(|g| g.addr == addr && g.sni.as_deref() == sni)
        {
            return g.turn.clone();
        }
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        opening.push(Gate {
            addr,
            sni: sni.map(Box::from),
            turn: turn.clone(),
        });
        turn
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, Vec<Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_opening(&self) -> std::sync::MutexGuard<'_, Vec<Gate>> {
        self.opening.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection to `addr` (TCP, TLS sending `sni`, HTTP/2),
    /// bounded by `timeout connect`, kept in `live` when it speaks HTTP/2.
    async fn open_new(
        &self,
        addr: SocketAddr,
        tls: Option<&Upstream>,
        sni: Option<&str>,
    ) -> io::Result<Opened> {
        let connecting = async {
            let tcp = TcpStream::connect(addr).await?;
            let _ = tcp.set_nodelay(true);
            match tls {
                None => handshake(tcp).await.map(Ok),
                Some(tls) => {
                    let session = tls.handshake(tcp, sni).await?;
                    if !self.forced && Upstream::chosen(&session) != Some(b"h2") {
                        // The server moved to HTTP/1.1: its connects stop
                        // waiting for each other.
                        self.speaks_h2.store(false, Relaxed);
                        return Ok(Err(Box::new(session)));
                    }
                    self.speaks_h2.store(true, Relaxed);
                    handshake(session).await.map(Ok)
                }
            }
        };
        let opened = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timeout connect"))??;
        let sender = match opened {
            Ok(sender) => sender,
            Err(session) => return Ok(Opened::Http1(session)),
        };
        let mut live = self.lock_live();
        // It replaces a connection to the same place that has closed (or
        // that a simultaneous connect opened).
        live.retain(|l| !(l.sender.is_closed() || (l.addr == addr && l.sni.as_deref() == sni)));
        if live.len() >= MAX_LIVE {
            live.remove(0);
        }
        live.push(Live {
            addr,
            sni: sni.map(Box::from),
            sender: sender.clone(),
        });
        Ok(Opened::Http2(sender, true))
    }
}

/// What [`H2Upstream::open`] found or opened.
enum Opened {
    /// An HTTP/2 connection; `true` when it was just opened.
    Http2(SendRequest<Incoming>, bool),
    /// ALPN chose HTTP/1.1 on this TLS session (boxed: it is large, and
    /// rare).
    Http1(Box<TlsStream<TcpStream>>),
}

/// What a bridge needs to reach its server again.
#[derive(Clone)]
struct Way {
    upstream: Arc<H2Upstream>,
    tls: Option<Arc<Upstream>>,
    addr: SocketAddr,
    /// The SNI its connection was opened with, to open another alike.
    sni: Option<Arc<str>>,
}

impl Way {
    /// A bridge whose requests become streams on `sender`'s connection.
    fn bridge(self, sender: SendRequest<Incoming>) -> io::Result<TcpStream> {
        let (theirs, ours) = bridge::pair()?;
        let max_headers = self.upstream.max_headers;
        let addr = self.addr;
        let service = hyper::service::service_fn(move |req| {
            let sender = sender.clone();
            let way = self.clone();
            async move { way.forward(sender, req).await }
        });
        tokio::spawn(async move {
            // Ends when the engine closes its end, or after a failed
            // stream (closing the bridge tells the engine).
            let served = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .max_headers(max_headers)
                // The engine bounds the server's silences (`timeout server`).
                .header_read_timeout(None)
                // The server's answer as it sent it: no added `Date`.
                .auto_date_header(false)
                .serve_connection(TokioIo::new(ours), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("HTTP/2 bridge to {addr} ended: {e}");
            }
        });
        Ok(theirs)
    }

    /// One request from the engine, as a stream; the answer goes back as
    /// HTTP/1.1. hyper drops the fields HTTP/2 forbids (`Connection`,
    /// `Keep-Alive`, `Transfer-Encoding`, `Upgrade`, `TE` but `trailers`).
    /// A request that never left because the connection had closed
    /// (the server went away or sent GOAWAY since) is sent again, once,
    /// on the open connection or a new one: the server has not seen it.
    async fn forward(
        &self,
        mut sender: SendRequest<Incoming>,
        mut req: Request<Incoming>,
    ) -> io::Result<Answer> {
        if req.headers().contains_key(UPGRADE) {
            return Ok(upgrade_refused());
        }
        to_http2(&mut req, &self.upstream.scheme, self.addr);
        let resp = match sender.try_send_request(req).await {
            Ok(resp) => resp,
            Err(mut e) => {
                let Some(req) = e.take_message() else {
                    return Err(io::Error::other(e.into_error()));
                };
                let opened = self
                    .upstream
                    .open(self.addr, self.tls.as_deref(), self.sni.as_deref())
                    .await?;
                let Opened::Http2(mut sender, _) = opened else {
                    return Err(io::Error::other("the server chose HTTP/1.1 by ALPN"));
                };
                sender.ready().await.map_err(io::Error::other)?;
                sender.send_request(req).await.map_err(io::Error::other)?
            }
        };
        let mut resp = resp;
        *resp.version_mut() = Version::HTTP_11;
        Ok(resp.map(Either::Left))
    }
}

/// Opens HTTP/2 on a connected stream; the connection runs in its own task.
async fn handshake<S>(io: S) -> io::Result<SendRequest<Incoming>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("HTTP/2 connection to a server ended: {e}");
        }
    });
    Ok(sender)
}

/// What the bridge answers the engine with: the server's answer, or its
/// own refusal.
type Answer = Response<Either<Incoming, Full<Bytes>>>;

/// An upgrade (WebSocket) cannot cross HTTP/2 without the extended
/// CONNECT of RFC 8441, which Shoal does not speak: HAProxy 2.6 answers
/// such a request to an HTTP/2 server 400 with its page, and so does Shoal
/// rather than send the server a plain request in its place.
fn upgrade_refused() -> Answer {
    let page = crate::http::error_body(400);
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(
        page.as_bytes(),
    ))));
    *resp.status_mut() = hyper::StatusCode::BAD_REQUEST;
    let headers = resp.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    resp
}

/// Rewrites an HTTP/1.1 request head for HTTP/2 (RFC 9113, 8.3.1): the
/// origin-form target gets `:scheme` and, from `Host` (kept, as an
/// intermediary may), `:authority`; without a usable `Host`, the
/// server's address.
fn to_http2<B>(req: &mut Request<B>, scheme: &Scheme, addr: SocketAddr) {
    *req.version_mut() = Version::HTTP_2;
    if req.uri().authority().is_some() {
        return;
    }
    let authority = req
        .headers()
        .get(HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        .or_else(|| Authority::try_from(addr.to_string()).ok());
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(scheme.clone());
    parts.authority = authority;
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(hyper::http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converted(target: &str, host: Option<&str>, scheme: Scheme) -> Request<()> {
        let mut req = Request::get(target);
        if let Some(host) = host {
            req = req.header(HOST, host);
        }
        let mut req = req.body(()).expect("request");
        to_http2(&mut req, &scheme, "10.0.0.1:8443".parse().expect("addr"));
        req
    }

    #[test]
    fn origin_form_gets_scheme_and_authority_from_host() {
        let req = converted("/a/b?c=d", Some("app.test:81"), Scheme::HTTP);
        assert_eq!(req.uri(), "http://app.test:81/a/b?c=d");
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.headers()[HOST], "app.test:81", "Host is kept");
        let req = converted("/", Some("app.test"), Scheme::HTTPS);
        assert_eq!(req.uri(), "https://app.test/");
    }

    #[test]
    fn without_a_usable_host_the_server_address_is_the_authority() {
        assert_eq!(
            converted("/x", None, Scheme::HTTP).uri(),
            "http://10.0.0.1:8443/x"
        );
        assert_eq!(
            converted("/x", Some("bad host"), Scheme::HTTP).uri(),
            "http://10.0.0.1:8443/x"
        );
    }

    #[test]
    fn absolute_form_is_kept() {
        let req = converted("http://other.test/y", Some("app.test"), Scheme::HTTPS);
        assert_eq!(req.uri(), "http://other.test/y");
    }
}
