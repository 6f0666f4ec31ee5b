//! Control surfaces: HAProxy's runtime API on `stats socket`, and the
//! admin HTTP API (JSON, metrics). Both turn requests into
//! [`shoal_proto::command::Command`]s applied through `Runtime::submit`.

pub mod admin;
pub mod socket;
