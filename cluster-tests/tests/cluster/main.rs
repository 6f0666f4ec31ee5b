//! End-to-end scenarios of a Shoal cluster: real `shoal` processes on
//! 127.0.0.11, .12, ... (one config for all, `"${NODE_IP}"` and
//! `"${SHOAL_DIR}"` filled in per node), real `shoal-demo-backend` servers,
//! clients through every node. One module per scenario; one cluster runs
//! at a time (see `support::serial`).

#![forbid(unsafe_code)]

#[path = "../support/mod.rs"]
mod support;

mod backup;
mod cert_store;
mod certs;
mod changes;
mod chaos;
mod config;
mod drain;
mod failover;
mod five;
mod five_drills;
mod health;
mod load;
mod membership;
mod partition;
mod seven;
mod sighup;
mod stats_page;
mod sticky;
mod zero_downtime;
