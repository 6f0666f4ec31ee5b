//! Layer-4 checks: a TCP connect, the default kind and the first step of
//! an HTTP check.

use super::status::{CheckResult, Status};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// Connect within `limit`. The error is the finished check result
/// (`L4TOUT` or `L4CON` with the system's message as info).
pub async fn connect(addr: SocketAddr, limit: Duration) -> Result<TcpStream, CheckResult> {
    match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            // Close with a reset, as HAProxy's checks do: a checker that
            // connects every few hundred milliseconds would otherwise pile
            // up TIME_WAIT sockets.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            Ok(stream)
        }
        Ok(Err(e)) => Err(CheckResult::new(Status::L4Con).info(strerror(&e))),
        Err(_) => Err(CheckResult::new(Status::L4Tout)),
    }
}

/// A plain connect check.
pub async fn check(addr: SocketAddr, limit: Duration) -> CheckResult {
    match connect(addr, limit).await {
        Ok(_) => CheckResult::new(Status::L4Ok),
        Err(result) => result,
    }
}

/// The system's message without Rust's " (os error N)" suffix, so logs
/// read like HAProxy's (`Connection refused`).
pub fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}
