//! TCP mode: a line protocol.
//!
//! For each line received (`\n` or `\r\n` terminated) the server replies
//! `NAME LINE\n`. Two lines are commands instead:
//!
//! - `QUIT` closes the connection;
//! - `CONNS` replies with the number of TCP connections accepted so far, in
//!   decimal, followed by `\n`.
//!
//! Lines longer than [`MAX_LINE`] bytes are answered in pieces.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::Shared;

/// Longest line buffered at once.
pub const MAX_LINE: u64 = 64 * 1024;

/// Serves the line protocol on every accepted connection.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let counter = shared.clone();
    crate::accept_loop(listener, counter, move |stream| {
        let shared = shared.clone();
        async move {
            // I/O errors (resets, ...) simply end this connection.
            let _ = handle(stream, &shared).await;
        }
    })
    .await;
}

/// Runs the line protocol on one connection until EOF, `QUIT` or an error.
async fn handle(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = Vec::with_capacity(256);
    let mut out = Vec::with_capacity(256);
    loop {
        line.clear();
        if (&mut rd)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await?
            == 0
        {
            return Ok(());
        }
        let text = trim_eol(&line);
        out.clear();
        match text {
            b"QUIT" => return wr.shutdown().await,
            b"CONNS" => out.extend_from_slice(shared.conn_count().to_string().as_bytes()),
            _ => {
                out.extend_from_slice(shared.name.as_bytes());
                out.push(b' ');
                out.extend_from_slice(text);
            }
        }
        out.push(b'\n');
        wr.write_all(&out).await?;
    }
}

/// Strips a trailing `\n` or `\r\n`.
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
