//! shoal-proto: Shoal's vocabulary. No I/O and no async runtime live here.
//!
//! - [`config`]: the config model, the haproxy.cfg dialect parser and printer.
#![forbid(unsafe_code)]

pub mod config;
