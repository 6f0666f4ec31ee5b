//! Load reports: what each node tells its peers about ~10 times a second,
//! outside Raft, so that `leastconn` and server `maxconn` can act on
//! cluster-wide numbers.
//!
//! A report travels as QUIC datagrams on the sender's connection to the
//! peer (see [`crate::transport::Transport::send_load`]): unreliable,
//! unordered, never retransmitted. Losing one is harmless, the next one
//! follows within an interval. A report lists every server of the
//! sender's routing table in a fixed order (backends, then servers, as in
//! the config); the `layout` hash names that order, so a receiver whose
//! config differs (a change is being applied) ignores the report rather
//! than misread it. A report too big for one datagram is cut into parts,
//! each naming the index of its first server.
//!
//! # Compatibility rule
//!
//! [`LoadReport`] never changes shape within one ALPN version; a new field
//! needs a new version. A receiver drops anything over [`MAX_REPORT`]
//! bytes, anything that does not decode, and parts with more than
//! [`MAX_SERVERS_PER_PART`] servers.

use serde::{Deserialize, Serialize};
use shoal_proto::codec::{self, CodecError};
use shoal_proto::command::NodeId;

/// Largest datagram a receiver decodes. QUIC guarantees 1200-byte
/// packets; a part stays well under that with its headers.
pub const MAX_REPORT: usize = 1200;

/// Most servers in one part: 64 × at most 15 bytes (three varints) plus the
/// head (< 40 bytes) fits [`MAX_REPORT`] and a minimum QUIC datagram.
pub const MAX_SERVERS_PER_PART: usize = 64;

/// One server's load on the reporting node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerLoad {
    /// Sessions in flight on this server from the reporting node.
    pub in_flight: u32,
    /// What the reporting node wants: in flight plus requests waiting in
    /// its queue for this server's backend.
    pub demand: u32,
    /// The most sessions the reporting node allows itself on this server
    /// now ([`NO_LIMIT`]: it sets none).
    pub limit: u32,
}

/// [`ServerLoad::limit`] of a node that sets no cluster limit.
pub const NO_LIMIT: u32 = u32::MAX;

/// One datagram of a node's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReport {
    /// The sender; the receiver checks it against the peer's certificate.
    pub from: NodeId,
    /// Increases with each report round; a part older than the last one
    /// seen is dropped (datagrams may arrive out of order).
    pub seq: u64,
    /// Hash of the sender's server order (see [`layout_hash`]).
    pub layout: u64,
    /// Index of `servers[0]` in that order.
    pub first: u32,
    /// Servers `first..first + servers.len()`.
    pub servers: Vec<ServerLoad>,
}

/// Why a datagram was not taken as a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("load report of {len} bytes is over the {MAX_REPORT}-byte limit")]
    TooLarge { len: usize },
    #[error("load report with {count} servers in one part (at most {MAX_SERVERS_PER_PART})")]
    TooManyServers { count: usize },
    #[error("load report: {0}")]
    Codec(#[from] CodecError),
}

impl LoadReport {
    /// Decode one datagram, refusing what is over the limits.
    pub fn decode(bytes: &[u8]) -> Result<LoadReport, ReportError> {
        if bytes.len() > MAX_REPORT {
            return Err(ReportError::TooLarge { len: bytes.len() });
        }
        let report: LoadReport = codec::decode(bytes)?;
        if report.servers.len() > MAX_SERVERS_PER_PART {
            return Err(ReportError::TooManyServers {
                count: report.servers.len(),
            });
        }
        Ok(report)
    }

    /// Encode one round's report as datagrams of at most
    /// [`MAX_SERVERS_PER_PART`] servers each (one empty part when there are
    /// no servers, so the peer still hears that the node is alive).
    pub fn encode_parts(
        from: NodeId,
        seq: u64,
        layout: u64,
        servers: &[ServerLoad],
    ) -> Result<Vec<bytes::Bytes>, CodecError> {
        let mut parts = Vec::with_capacity(servers.len() / MAX_SERVERS_PER_PART + 1);
        let mut first = 0;
        loop {
            let end = (first + MAX_SERVERS_PER_PART).min(servers.len());
            let part = LoadReport {
                from,
                seq,
                layout,
                first: u32::try_from(first).unwrap_or(u32::MAX),
                servers: servers[first..end].to_vec(),
            };
            parts.push(bytes::Bytes::from(codec::encode(&part)?));
            first = end;
            if first >= servers.len() {
                return Ok(parts);
            }
        }
    }
}

/// A stable 64-bit FNV-1a hash of the server names in order
/// (`backend/server`), the same on every node and every build.
pub fn layout_hash<'a>(names: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (backend, server) in names {
        eat(backend.as_bytes());
        eat(b"/");
        eat(server.as_bytes());
        eat(b"\n");
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(n: usize) -> Vec<ServerLoad> {
        (0..n)
            .map(|i| ServerLoad {
                in_flight: u32::MAX - i as u32,
                demand: u32::MAX,
                limit: NO_LIMIT,
            })
            .collect()
    }

    #[test]
    fn parts_fit_the_datagram_limit_even_with_the_largest_numbers() {
        let servers = loads(200);
        let parts =
            LoadReport::encode_parts(u64::MAX, u64::MAX, u64::MAX, &servers).expect("test value");
        assert_eq!(parts.len(), 4, "200 servers in parts of 64");
        let mut back = Vec::new();
        for part in &parts {
            assert!(part.len() <= MAX_REPORT, "part of {} bytes", part.len());
            let report = LoadReport::decode(part).expect("test value");
            assert_eq!(report.first as usize, back.len());
            back.extend(report.servers);
        }
        assert_eq!(back, servers);
    }

    #[test]
    fn no_servers_still_makes_one_part() {
        let parts = LoadReport::encode_parts(3, 1, 7, &[]).expect("test value");
        assert_eq!(parts.len(), 1);
        let report = LoadReport::decode(&parts[0]).expect("test value");
        assert_eq!((report.from, report.seq, report.layout), (3, 1, 7));
        assert!(report.servers.is_empty());
    }

    #[test]
    fn oversized_and_malformed_datagrams_are_refused() {
        assert!(matches!(
            LoadReport::decode(&vec![0u8; MAX_REPORT + 1]),
            Err(ReportError::TooLarge { .. })
        ));
        // A part with too many servers, as a hostile peer could send.
        let crowded = LoadReport {
            from: 1,
            seq: 1,
            layout: 1,
            first: 0,
            servers: vec![ServerLoad::default(); MAX_SERVERS_PER_PART + 1],
        };
        let bytes = codec::encode(&crowded).expect("test value");
        assert!(matches!(
            LoadReport::decode(&bytes),
            Err(ReportError::TooManyServers { count: 65 })
        ));
        // A length prefix claiming far more entries than the bytes hold.
        let mut lying = codec::encode(&LoadReport {
            from: 1,
            seq: 1,
            layout: 1,
            first: 0,
            servers: vec![],
        })
        .expect("test value");
        lying.pop();
        lying.extend([0xfc, 0xff, 0xff, 0xff, 0x7f]);
        assert!(LoadReport::decode(&lying).is_err());
        // Trailing garbage after a valid report.
        let mut trailing = codec::encode(&LoadReport {
            servers: vec![ServerLoad::default()],
            ..crowded
        })
        .expect("test value");
        assert!(LoadReport::decode(&trailing).is_ok());
        trailing.push(0);
        assert!(LoadReport::decode(&trailing).is_err());
    }

    #[test]
    fn layout_hash_depends_on_names_and_order() {
        let a = layout_hash([("be", "s1"), ("be", "s2")]);
        assert_eq!(a, layout_hash([("be", "s1"), ("be", "s2")]));
        assert_ne!(a, layout_hash([("be", "s2"), ("be", "s1")]));
        assert_ne!(a, layout_hash([("be", "s1s"), ("be", "2")]));
    }
}
