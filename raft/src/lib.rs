//! Shoal's consensus and node-to-node transport.
//!
//! - [`types`]: the openraft type configuration and the [`StateHost`]
//!   hook through which committed commands reach the node.
//! - [`cluster`]: one node's membership: Raft, its endpoint, writes, joins, status.
//! - [`load`]: the load reports nodes exchange outside Raft.
//! - [`messages`]: what nodes ask each other besides Raft's RPCs.
//! - [`store`]: the Raft log and state machine on sled, under `--data-dir`.
//! - [`tls`]: the cluster CA, node certificates and their TLS configs.
//! - [`transport`]: the QUIC endpoint carrying Raft RPCs and messages.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod load;
pub mod messages;
pub mod store;
pub mod tls;
pub mod transport;
pub mod types;

pub use types::{NodeInfo, Raft, Reply, StateHost, TypeConfig};
