//! HTTP mode: Shoal's own HTTP/1.1 proxy engine.
//!
//! Heads are parsed with `httparse` and checked as HAProxy 2.6 checks
//! them; bodies are forwarded as received while their end is tracked
//! (`Content-Length`, chunked, or close); header lines are copied raw
//! (order and case kept) with only the edits the proxy must make. Modules:
//!
//! - [`conn`]: the client connection loop, head timeouts, keep-alive;
//! - [`head`]: parsing and checking request and response heads;
//! - [`proxy`]: one request: routing, server connection, relaying, blame;
//! - [`send`]: sending a request and waiting for the response head;
//! - [`duplex`]: the response body and the rest of the request body, at once;
//! - [`outcome`]: what the access log says about a request;
//! - [`body`]: body framing and socket writes;
//! - [`rewrite`]: the heads Shoal writes (hop-by-hop, XFF, cookies);
//! - [`rules`]: `http-request` redirects and header rules;
//! - [`reuse`] and [`crate::pool`]: `http-reuse` and idle connections;
//! - [`errors`]: HAProxy's error pages; [`local`]: the stats page;
//! - [`tunnel`]: WebSocket and CONNECT tunnels.

mod body;
mod buf;
mod conn;
pub mod cookie;
mod duplex;
mod errors;
mod head;
mod local;
mod outcome;
mod proxy;
mod reuse;
mod rewrite;
pub mod rules;
mod samples;
mod send;
pub mod sweeper;
mod tunnel;

pub use conn::serve;
pub use errors::body as error_body;
pub use samples::{hash_key, query_param, HttpSamples};
