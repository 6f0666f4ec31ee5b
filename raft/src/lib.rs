//! Shoal's consensus and node-to-node transport.
//!
//! - [`types`]: the openraft type configuration and the [`StateHost`]
//!   hook through which committed commands reach the node.
//! - [`messages`]: what nodes ask each other besides Raft's RPCs.
//! - [`store`]: the Raft log and state machine on sled, under `--data-dir`.
#![forbid(unsafe_code)]

pub mod messages;
pub mod store;
pub mod types;

pub use types::{NodeInfo, Raft, Reply, StateHost, TypeConfig};
