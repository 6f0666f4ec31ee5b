//! shoal-proto: Shoal's vocabulary. No I/O and no async runtime live here.
//!
//! - [`config`]: the config model, the haproxy.cfg dialect parser and printer.
//! - [`command`]: the one vocabulary of changes to server state.
#![forbid(unsafe_code)]

pub mod command;
pub mod config;
