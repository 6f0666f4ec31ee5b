//! shoal-node: one Shoal node — the data plane and its control surfaces.
//!
//! The request path (see DESIGN.md) runs listener -> frontend rules
//! ([`acl`]) -> [`balance`] -> connect with retries ([`dispatch`]) -> proxy
//! ([`tcp`], [`http`]) -> counters, and reads only an immutable
//! [`routing::Snapshot`] that is swapped whole on every change.
#![forbid(unsafe_code)]

pub mod acl;
pub mod api;
pub mod balance;
pub mod cli;
pub mod cluster;
pub mod dispatch;
pub mod health;
pub mod http;
pub mod identity;
pub mod limits;
pub mod listener;
pub mod load;
pub mod log;
pub mod metrics;
pub mod node;
pub mod observe;
pub mod persist;
pub mod pool;
pub mod routing;
pub mod runtime;
pub mod stats;
pub mod stats_page;
pub mod stick;
pub mod tcp;
pub mod tls;
