//! The frames nodes exchange on one QUIC stream, their size limits, and the
//! codes a stream is reset with. See [`crate::transport`] for the layout.

use crate::types::{NodeInfo, TypeConfig};
use openraft::{SnapshotMeta, Vote};
use quinn::{RecvStream, SendStream, VarInt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shoal_proto::codec::{self, CodecError};
use shoal_proto::command::NodeId;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// Largest [`Head`] frame.
pub const MAX_HEAD: usize = KIB;
/// Largest AppendEntries request (one batch of log entries).
pub const MAX_APPEND: usize = 64 * MIB;
/// Largest Vote request.
pub const MAX_VOTE: usize = 64 * KIB;
/// Largest application request ([`crate::messages::AppRequest`]).
pub const MAX_APP: usize = 16 * MIB;
/// Largest [`SnapshotHead`] frame (the snapshot's metadata, with the
/// membership).
pub const MAX_SNAPSHOT_HEAD: usize = MIB;
/// Largest snapshot chunk.
pub const MAX_CHUNK: usize = MIB;
/// Largest snapshot, all chunks together.
pub const MAX_SNAPSHOT: u64 = 256 * MIB as u64;
/// Largest answer to an AppendEntries, Vote or snapshot request.
pub const MAX_RAFT_REPLY: usize = MIB;

/// The first frame of every stream: who speaks and what it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The node the client speaks for; the server checks that the client's
    /// certificate names it.
    pub from: NodeId,
    pub rpc: Rpc,
}

/// The kind of request a stream carries. New kinds go at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rpc {
    /// One `AppendEntriesRequest`; answer `Result<AppendEntriesResponse, RaftError>`.
    Append,
    /// One `VoteRequest`; answer `Result<VoteResponse, RaftError>`.
    Vote,
    /// A [`SnapshotHead`], then its bytes in chunk frames; answer
    /// `Result<SnapshotResponse, Fatal>`.
    Snapshot,
    /// One `AppRequest`; answer `AppResponse`.
    App,
}

impl Rpc {
    /// The largest request frame of this kind (for a snapshot: its head).
    pub fn request_limit(self) -> usize {
        match self {
            Rpc::Append => MAX_APPEND,
            Rpc::Vote => MAX_VOTE,
            Rpc::Snapshot => MAX_SNAPSHOT_HEAD,
            Rpc::App => MAX_APP,
        }
    }

    /// The largest answer frame of this kind.
    pub fn reply_limit(self) -> usize {
        match self {
            Rpc::Append | Rpc::Vote | Rpc::Snapshot => MAX_RAFT_REPLY,
            Rpc::App => MAX_APP,
        }
    }
}

/// What precedes a snapshot's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHead {
    /// The leader's vote, for `install_full_snapshot`.
    pub vote: Vote<NodeId>,
    pub meta: SnapshotMeta<NodeId, NodeInfo>,
    /// The snapshot's size in bytes: the chunk frames that follow add up to
    /// exactly this (at most [`MAX_SNAPSHOT`]).
    pub len: u64,
}

/// Openraft's snapshot type, spelled for this configuration.
pub type Snapshot = openraft::Snapshot<TypeConfig>;

/// Why a stream was reset: the application error code of the QUIC
/// RESET_STREAM / STOP_SENDING frames. New codes go at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// A frame was over its kind's limit.
    TooLarge = 1,
    /// A frame did not decode, or the stream ended early.
    Malformed = 2,
    /// The client's certificate does not name the node it claims to be.
    NotAuthorized = 3,
    /// The stream took longer than the server allows.
    Timeout = 4,
}

impl Reset {
    /// The code on the wire.
    pub fn code(self) -> VarInt {
        VarInt::from_u32(self as u32)
    }

    /// A code read from the wire (`None`: a code this version does not know).
    pub fn from_code(code: VarInt) -> Option<Reset> {
        [
            Reset::TooLarge,
            Reset::Malformed,
            Reset::NotAuthorized,
            Reset::Timeout,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }
}

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reset::TooLarge => "a frame was over its size limit",
            Reset::Malformed => "malformed frame",
            Reset::NotAuthorized => "the certificate does not name the node id claimed",
            Reset::Timeout => "the stream timed out",
        })
    }
}

/// Why reading or writing a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is over its limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("stream reset by the peer: {}", describe_code(*.0))]
    Reset(VarInt),
    #[error("{0}")]
    Codec(#[from] CodecError),
    #[error("{0}")]
    Read(quinn::ReadError),
    #[error("{0}")]
    Write(quinn::WriteError),
}

impl FrameError {
    /// The code to reset the stream with after this error, if the stream is
    /// still ours to reset.
    pub fn reset(&self) -> Option<Reset> {
        match self {
            FrameError::TooLarge { .. } => Some(Reset::TooLarge),
            FrameError::Truncated | FrameError::Codec(_) => Some(Reset::Malformed),
            FrameError::Reset(_) | FrameError::Read(_) | FrameError::Write(_) => None,
        }
    }
}

fn describe_code(code: VarInt) -> String {
    match Reset::from_code(code) {
        Some(reset) => reset.to_string(),
        None => format!("code {code}"),
    }
}

impl From<quinn::ReadExactError> for FrameError {
    fn from(e: quinn::ReadExactError) -> Self {
        match e {
            quinn::ReadExactError::FinishedEarly(_) => FrameError::Truncated,
            quinn::ReadExactError::ReadError(quinn::ReadError::Reset(code)) => {
                FrameError::Reset(code)
            }
            quinn::ReadExactError::ReadError(e) => FrameError::Read(e),
        }
    }
}

impl From<quinn::WriteError> for FrameError {
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::Stopped(code) => FrameError::Reset(code),
            e => FrameError::Write(e),
        }
    }
}

/// Read one frame of at most `limit` bytes. The length is checked before
/// anything is allocated.
pub async fn read_frame(recv: &mut RecvStream, limit: usize) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await?;
    Ok(body)
}

/// Read and decode one frame of at most `limit` bytes.
pub async fn read_value<T: DeserializeOwned>(
    recv: &mut RecvStream,
    limit: usize,
) -> Result<T, FrameError> {
    Ok(codec::decode(&read_frame(recv, limit).await?)?)
}

/// Write one frame: its length, then its bytes.
pub async fn write_frame(send: &mut SendStream, body: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        len: body.len(),
        limit: u32::MAX as usize,
    })?;
    send.write_all(&len.to_be_bytes()).await?;
    send.write_all(body).await?;
    Ok(())
}

/// Encode `value` and write it as one frame, refusing (before sending
/// anything) a frame over `limit`.
pub async fn write_value<T: Serialize + ?Sized>(
    send: &mut SendStream,
    value: &T,
    limit: usize,
) -> Result<(), FrameError> {
    let body = codec::encode(value)?;
    if body.len() > limit {
        return Err(FrameError::TooLarge {
            len: body.len(),
            limit,
        });
    }
    write_frame(send, &body).await
}
