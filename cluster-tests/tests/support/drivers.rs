//! The chaos run's drivers, each a task that runs until told to stop and
//! returns its record: clients through every node as round-robin DNS
//! would spread them, new stick entries all the time, and writers of
//! strictly increasing weights through random nodes.

use super::{get_from, try_admin, Request, Rng, Write};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The frontends of the chaos config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// `stick on src`.
    Web,
    /// Cookie persistence.
    Cookies,
}

impl Front {
    pub fn name(self) -> &'static str {
        match self {
            Front::Web => "web",
            Front::Cookies => "cookies",
        }
    }
}

/// What DNS answers for the service: every node's frontends as last
/// opened. A node restarted from its data directory binds `:0` again on
/// new ports, and the chaos loop updates its entry; a dead node's entry
/// stays and refuses connections, as a dead address would.
#[derive(Clone, Default)]
pub struct Dns(Arc<RwLock<BTreeMap<u64, [SocketAddr; 2]>>>);

impl Dns {
    pub fn set(&self, id: u64, web: SocketAddr, cookies: SocketAddr) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, [web, cookies]);
    }

    /// Take node `id`'s record out, as a DNS health check does once the
    /// node's `/ready` answers 503 ([`Dns::set`] puts it back).
    pub fn withdraw(&self, id: u64) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// The `i`th node in the rotation (wrapping) and its `front`.
    fn nth(&self, i: usize, front: Front) -> (u64, SocketAddr) {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        let (&id, addrs) = map.iter().nth(i % map.len()).expect("a node");
        (id, addrs[front as usize])
    }

    fn len(&self) -> usize {
        self.0.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One GET `/` from `src` as a client behind round-robin DNS: request `n`
/// starts at the `n`th node and moves on to the next one when a node
/// refuses the connection. Returns the node of the last attempt and what
/// [`get_from`] said.
async fn get_via_dns(
    dns: &Dns,
    n: usize,
    front: Front,
    src: IpAddr,
    cookie: Option<&str>,
) -> (u64, Result<(u16, String, String), String>) {
    let mut last = None;
    for i in n..n + dns.len() {
        let (id, addr) = dns.nth(i, front);
        let answer = get_from(src, addr, cookie).await;
        match &answer {
            Err(e) if e.contains("refused") => last = Some((id, answer)),
            _ => return (id, answer),
        }
    }
    last.expect("at least one node")
}

/// One client's request as a record.
fn record(
    who: String,
    started: Instant,
    via: u64,
    pinned: Option<String>,
    answer: &Result<(u16, String, String), String>,
) -> Request {
    let outcome = match answer {
        Ok((200, server, _)) => Ok(server.clone()),
        Ok((status, server, _)) => Err(format!("status {status} from {server:?}")),
        Err(e) => Err(e.clone()),
    };
    Request {
        who,
        started,
        ended: Instant::now(),
        via,
        pinned,
        outcome,
    }
}

/// Client `i` (source 127.0.2.i): GETs through `web` and `cookies` in
/// turn, keeping its persistence cookie, every 20 ms until `stop`.
pub fn spawn_client(i: u8, dns: Dns, stop: Arc<AtomicBool>) -> JoinHandle<Vec<Request>> {
    tokio::spawn(async move {
        let src = IpAddr::V4(Ipv4Addr::new(127, 0, 2, i));
        let mut requests = Vec::new();
        let mut cookie: Option<String> = None;
        // The server each frontend last answered from (cookie or stick entry).
        let mut pinned: [Option<String>; 2] = [None, None];
        for n in 0usize.. {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let front = if n % 2 == 0 {
                Front::Web
            } else {
                Front::Cookies
            };
            let sent_cookie = cookie.as_deref().filter(|_| front == Front::Cookies);
            let started = Instant::now();
            let (via, answer) =
                get_via_dns(&dns, n / 2 + i as usize, front, src, sent_cookie).await;
            let who = format!("client {i} {}", front.name());
            requests.push(record(
                who,
                started,
                via,
                pinned[front as usize].clone(),
                &answer,
            ));
            if let Ok((200, server, set_cookie)) = &answer {
                pinned[front as usize] = Some(server.clone());
                if let Some(c) = set_cookie
                    .split(';')
                    .next()
                    .filter(|c| c.starts_with("SRV="))
                {
                    cookie = Some(c.to_string());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        requests
    })
}

/// New stick entries all the time: a GET through `web` from a new source
/// address (127.3.x.y) every 50 ms until `stop`.
pub fn spawn_sticker(dns: Dns, stop: Arc<AtomicBool>) -> JoinHandle<Vec<Request>> {
    tokio::spawn(async move {
        let mut requests = Vec::new();
        for n in 0usize.. {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            // 254 addresses per /24 (no .0, no .255), 256 of those.
            let src = IpAddr::V4(Ipv4Addr::new(
                127,
                3,
                (n / 254 % 256) as u8,
                (1 + n % 254) as u8,
            ));
            let started = Instant::now();
            let (via, answer) = get_via_dns(&dns, n, Front::Web, src, None).await;
            requests.push(record("sticker web".into(), started, via, None, &answer));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        requests
    })
}

/// Weights per server of a writer: 2..=256 (1 is the config's).
const PER_SERVER: usize = 255;

/// Writer `k`'s servers in backend `w`: `k{k}n0`, `k{k}n1`, ...; it moves
/// to the next one when it has written every weight to the current one.
pub fn writer_servers(k: usize, series: usize) -> Vec<String> {
    (0..series).map(|n| format!("k{k}n{n}")).collect()
}

/// How many servers a writer needs for `secs` of writing (at most 10
/// writes a second), with room for the heal at the end.
pub fn writer_series(secs: u64) -> usize {
    ((secs as usize + 120) * 10).div_ceil(PER_SERVER)
}

/// Writer `k`: strictly increasing weights on its servers of backend `w`
/// through the admin API of a random node (`admins`), one at a time,
/// every 100 ms until `stop` (or until its servers are used up).
pub fn spawn_writer(
    k: usize,
    series: usize,
    admins: Vec<(u64, SocketAddr)>,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Vec<Write>> {
    tokio::spawn(async move {
        let servers = writer_servers(k, series);
        let mut rng = Rng::new(seed);
        let mut writes: Vec<Write> = Vec::new();
        while !stop.load(Ordering::SeqCst) && writes.len() < series * PER_SERVER {
            let n = writes.len();
            let server = servers[n / PER_SERVER].clone();
            let weight = 2 + (n % PER_SERVER) as u32;
            let (via, admin) = admins[rng.below(admins.len())];
            // Longer than the node's own write deadline (5 s): the node
            // answers before this client gives up.
            let answer = try_admin(
                admin,
                "PUT",
                &format!("/v1/backends/w/servers/{server}/weight"),
                &format!("{{\"weight\":{weight}}}"),
                Duration::from_secs(20),
            )
            .await;
            let (acked, why) = match answer {
                Ok(r) if r.status == 200 => (true, String::new()),
                Ok(r) => (false, format!("{}: {}", r.status, r.body.trim())),
                Err(e) => (false, e),
            };
            writes.push(Write {
                server,
                weight,
                via,
                acked,
                why,
            });
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        writes
    })
}
