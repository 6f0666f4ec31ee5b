//! The backup file of a cluster's replicated state: what `shoal cluster
//! backup` writes and `shoal cluster restore` reads.
//!
//! A file is [`MAGIC`] followed by a [`Backup`] in the project's codec
//! (bincode 2). The state's hash travels with it, so a damaged or edited
//! file is refused before anything is proposed.
//!
//! A backup holds no certificates: the cluster's private keys never leave
//! it through a file an operator copies around. Restoring one keeps the
//! certificates the cluster has (see `ClusterState::apply`).

use crate::codec::{self, CodecError};
use crate::command::{Millis, NodeId};
use crate::state::ClusterState;
use serde::{Deserialize, Serialize};

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"SHOALBK\x01";

/// The format this build writes and reads. 2: the state gained the
/// certificate store (always empty in a backup).
pub const FORMAT: u32 = 2;

/// Largest backup file, written or read: a restore is one change, and a
/// change must reach the leader from any node in one forwarded request
/// (16 MiB between nodes, less room for the request around it). A backup
/// is refused when larger, rather than written and found unrestorable.
pub const MAX_BYTES: usize = 16 * 1024 * 1024 - 64 * 1024;

/// A backup: the whole replicated state and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Backup {
    /// [`FORMAT`] when written.
    pub format: u32,
    /// When it was taken (milliseconds since the Unix epoch).
    pub taken_at: Millis,
    /// The node that wrote it.
    pub node: NodeId,
    /// The Raft log index the state had applied (0: unknown).
    pub applied: u64,
    /// [`ClusterState::hash`] of `state`.
    pub hash: u64,
    pub state: ClusterState,
}

/// Why a file is not a backup this build can restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a Shoal backup (it does not start with the backup header)")]
    NotABackup,
    #[error("backup format {0} is not one this build reads (format {FORMAT})")]
    Format(u32),
    #[error("the backup does not decode: {0}")]
    Decode(#[from] CodecError),
    #[error("the backup is damaged: its state hashes to {found:016x}, it says {said:016x}")]
    Hash { found: u64, said: u64 },
    #[error("the backup is {0} bytes, more than the {MAX_BYTES} a restore can carry (what one change may carry between nodes)")]
    TooLarge(usize),
}

impl Backup {
    /// A backup of `state`, taken by `node` at log index `applied`,
    /// without its certificates.
    pub fn of(state: ClusterState, node: NodeId, applied: u64, taken_at: Millis) -> Backup {
        let state = state.without_certificates();
        Backup {
            format: FORMAT,
            taken_at,
            node,
            applied,
            hash: state.hash(),
            state,
        }
    }

    /// The file's bytes; refused beyond [`MAX_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, BackupError> {
        let mut out = MAGIC.to_vec();
        out.extend(codec::encode(self)?);
        if out.len() > MAX_BYTES {
            return Err(BackupError::TooLarge(out.len()));
        }
        Ok(out)
    }

    /// Read a file's bytes, checking size, header, format and hash.
    pub fn from_bytes(bytes: &[u8]) -> Result<Backup, BackupError> {
        if bytes.len() > MAX_BYTES {
            return Err(BackupError::TooLarge(bytes.len()));
        }
        let body = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or(BackupError::NotABackup)?;
        // The format comes first, as one byte while it is below 251
        // (bincode's varint): an older file is named as such rather than
        // failing to decode.
        match body.first() {
            Some(&b) if u32::from(b) != FORMAT && b < 251 => {
                return Err(BackupError::Format(u32::from(b)))
            }
            _ => {}
        }
        let backup: Backup = codec::decode(body)?;
        if backup.format != FORMAT {
            return Err(BackupError::Format(backup.format));
        }
        let found = backup.state.hash();
        if found != backup.hash {
            return Err(BackupError::Hash {
                found,
                said: backup.hash,
            });
        }
        Ok(backup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;

    fn state() -> ClusterState {
        let text = "defaults\n    mode http\nbackend app\n    server s1 127.0.0.1:1 weight 5\n";
        let mut state = ClusterState::default();
        let load = Command::load_config("t.cfg", text, 1).expect("loads");
        state.apply(&load);
        state
    }

    #[test]
    fn a_backup_reads_back_as_written() {
        let backup = Backup::of(state(), 2, 17, 1_000);
        let back = Backup::from_bytes(&backup.to_bytes().expect("encodes")).expect("decodes");
        assert_eq!((back.node, back.applied, back.taken_at), (2, 17, 1_000));
        assert_eq!(back.state, backup.state);
        assert_eq!(back.hash, backup.state.hash());
    }

    #[test]
    fn restoring_makes_any_state_equal_to_the_backup() {
        let backup = state();
        let mut other = ClusterState::default();
        let text = "defaults\n    mode http\nbackend web\n    server a 127.0.0.1:2\n    \
                    server b 127.0.0.1:3\n";
        other.apply(&Command::load_config("o.cfg", text, 5).expect("loads"));
        assert_ne!(other.hash(), backup.hash());
        let restore = Command::restore(backup.clone(), Default::default(), 9).expect("loads here");
        assert_eq!(other.validate(&restore), Ok(()));
        let applied = other.apply(&restore);
        assert!(applied.routing);
        assert_eq!(applied.effects, vec![crate::state::Effect::Restored]);
        assert_eq!(other, backup);
        assert_eq!(other.hash(), backup.hash());
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_unread() {
        let huge = vec![0u8; MAX_BYTES + 1];
        assert!(matches!(
            Backup::from_bytes(&huge),
            Err(BackupError::TooLarge(n)) if n == MAX_BYTES + 1
        ));
    }

    #[test]
    fn other_files_and_damage_are_refused() {
        let bytes = Backup::of(state(), 1, 1, 1).to_bytes().expect("encodes");
        assert!(matches!(
            Backup::from_bytes(b"global\n"),
            Err(BackupError::NotABackup)
        ));
        assert!(matches!(
            Backup::from_bytes(&bytes[..bytes.len() - 3]),
            Err(BackupError::Decode(_))
        ));
        // A flipped byte in the config text (near the end of the state).
        let mut damaged = bytes.clone();
        let at = damaged
            .windows(5)
            .position(|w| w == b"weigh")
            .expect("the config text");
        damaged[at] = b'W';
        assert!(matches!(
            Backup::from_bytes(&damaged),
            Err(BackupError::Hash { .. })
        ));
    }
}
