//! Clients from chosen loopback source addresses (for `stick on src`),
//! stick tables read over the runtime socket, and the demo backend's
//! concurrency high-water mark.

use super::{get, socat, Backend, Node};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One GET `/` to `addr` from local address `src`: status, `x-server`,
/// `set-cookie`; `Err` when no answer came.
pub async fn get_from(
    src: IpAddr,
    addr: SocketAddr,
    cookie: Option<&str>,
) -> Result<(u16, String, String), String> {
    let exchange = async {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(|e| format!("bind {src}: {e}"))?;
        let stream = socket
            .connect(addr)
            .await
            .map_err(|e| format!("connect {addr} from {src}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .uri("/")
            .header("host", addr.to_string());
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("GET / on {addr} from {src}: {e}"))?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let out = (
            resp.status().as_u16(),
            header("x-server"),
            header("set-cookie"),
        );
        let _ = resp.into_body().collect().await;
        Ok(out)
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .map_err(|_| format!("GET / on {addr} from {src}: no answer in 20 s"))?
}

/// [`get_from`] that must answer 200: the answering server and `set-cookie`.
pub async fn ok_from(src: IpAddr, addr: SocketAddr, cookie: Option<&str>) -> (String, String) {
    let (status, server, set_cookie) = get_from(src, addr, cookie)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200, "GET / through {addr} from {src}");
    (server, set_cookie)
}

/// `show table NAME` on a node's runtime socket: key -> server.
pub fn stick_table(node: &Node, name: &str) -> BTreeMap<String, String> {
    socat(&node.socket(), &format!("show table {name}"))
        .lines()
        .filter_map(|line| {
            let key = line.split(" key=").nth(1)?.split(' ').next()?;
            let server = line.split(" server_key=").nth(1)?;
            Some((key.to_string(), server.trim().to_string()))
        })
        .collect()
}

/// The most `/delay` requests `backend` ever served at once.
pub async fn peak(backend: &Backend) -> u64 {
    get(backend.addr, "/peak")
        .await
        .body
        .trim()
        .parse()
        .expect("a peak count")
}
