//! One CLI connection: HAProxy's line protocol.
//!
//! Without `prompt` a connection carries one request line (several
//! commands may be separated by `;`) and closes after the answers; lines
//! that already arrived with it are answered too, as HAProxy does. After
//! `prompt` it stays open, prints `> ` after every answer and closes on
//! `quit`, on a second `prompt`, at end of input or after `stats timeout`
//! of silence. Every answer ends with an empty line.

use super::commands::{execute, Flow, Session};
use super::line::{split, LineReader, ReadError};
use crate::runtime::Runtime;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Longest request line accepted.
pub const MAX_LINE: usize = 64 * 1024;

/// Serve one connection until it ends.
pub async fn serve<S>(stream: S, runtime: Arc<Runtime>, mut session: Session)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let mut reader = LineReader::new(rd, MAX_LINE);
    loop {
        let line = match tokio::time::timeout(session.timeout, reader.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Err(ReadError::TooLong)) => {
                let _ = tokio::time::timeout(session.timeout, async {
                    wr.write_all(b"Command line too long.\n\n").await?;
                    wr.shutdown().await?;
                    reader.discard().await;
                    Ok::<(), std::io::Error>(())
                })
                .await;
                return;
            }
            Ok(Err(ReadError::Io(e))) => {
                tracing::debug!("stats socket client: {e}");
                return;
            }
            // Idle timeout or end of input.
            Err(_) | Ok(Ok(None)) => return,
        };
        let was_interactive = session.interactive;
        let mut out = String::new();
        let mut quit = false;
        for words in split(&line) {
            // A change is settled when `execute` returns: the next command
            // (and the operator) sees its effect.
            let (answer, flow) = execute(&runtime, &mut session, &words).await;
            if flow == Flow::Quit {
                quit = true;
                break;
            }
            out.push_str(&answer);
            out.push('\n');
            // HAProxy prompts after each command of a `;` line.
            if session.interactive {
                out.push_str("> ");
            }
        }
        let written = tokio::time::timeout(session.timeout, async {
            wr.write_all(out.as_bytes()).await?;
            wr.flush().await
        })
        .await;
        if quit || !matches!(written, Ok(Ok(()))) {
            return;
        }
        if !session.interactive && (was_interactive || !reader.has_line()) {
            let _ = wr.shutdown().await;
            return;
        }
    }
}
