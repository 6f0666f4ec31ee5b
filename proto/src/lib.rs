//! shoal-proto: Shoal's vocabulary. No I/O and no async runtime live here.
//!
//! - [`config`]: the config model, the haproxy.cfg dialect parser and printer.
//! - [`command`]: the one vocabulary of changes.
//! - [`state`]: the replicated state, its validation and its one `apply`.
//! - [`codec`]: the one binary encoding (bincode 2), with decode limits.
//! - [`backup`]: the backup file of the replicated state.
#![forbid(unsafe_code)]

pub mod backup;
pub mod codec;
pub mod command;
pub mod config;
pub mod state;
