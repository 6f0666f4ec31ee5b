//! End-to-end tests of a Shoal cluster. Everything lives in `tests/`:
//! `tests/cluster/` (one module per scenario: replicated changes, config
//! apply, leader failover, membership, partition, certificates, drain, five
//! and seven nodes, cluster-mode SIGHUP, the stats page's buttons) and
//! `tests/walkthrough.rs` (the README's cluster walkthrough).
//! They start the `shoal` and `shoal-demo-backend` binaries of the same
//! build; `cargo test --workspace` (or `cargo build -p shoal-node --bins`)
//! builds them.
#![forbid(unsafe_code)]
