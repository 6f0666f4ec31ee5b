//! The files of `shoal cluster backup` and `shoal cluster restore`.

use super::client::CliError;
use super::commands::Output;
use shoal_proto::backup::Backup;
use std::path::Path;

/// Check that `bytes` (read from `file`) is a backup this build restores.
pub fn check(bytes: &[u8], file: &Path) -> Result<Backup, CliError> {
    Backup::from_bytes(bytes).map_err(|e| CliError::Backup(format!("{}: {e}", file.display())))
}

/// Write a backup the admin API sent to `out`, once it checks out.
pub fn save(bytes: &[u8], out: &Path) -> Result<Output, CliError> {
    let backup = Backup::from_bytes(bytes)
        .map_err(|e| CliError::Backup(format!("the node sent no valid backup: {e}")))?;
    write(bytes, out)?;
    Ok(summary(&backup, bytes.len(), out))
}

/// `--data-dir`: read the state a stopped node persisted. sled locks the
/// directory, so a running node's is refused.
pub fn offline(dir: &Path, out: &Path) -> Result<Output, CliError> {
    if !dir.join("raft.sled").exists() {
        return Err(CliError::Backup(format!(
            "{}: no Shoal data directory (no raft.sled in it)",
            dir.display()
        )));
    }
    let mut store = shoal_raft::store::open(dir).map_err(|e| match e {
        // sled locks the directory of a running node.
        shoal_raft::store::StoreError::Open { .. } => {
            CliError::Backup(format!("{e} (is the node still running?)"))
        }
        e => CliError::Backup(e.to_string()),
    })?;
    let applied = store.applied_index();
    let state = store.take_state().ok_or_else(|| {
        CliError::Backup(format!(
            "{}: the node never applied a replicated state",
            dir.display()
        ))
    })?;
    // Node 0: taken from a directory, not by a running node.
    let backup = Backup::of(state, 0, applied.unwrap_or(0), crate::runtime::now_ms());
    let bytes = backup
        .to_bytes()
        .map_err(|e| CliError::Backup(e.to_string()))?;
    write(&bytes, out)?;
    Ok(summary(&backup, bytes.len(), out))
}

/// Write `bytes` to `out` through a temporary file in the same directory,
/// so a reader never sees half a backup.
fn write(bytes: &[u8], out: &Path) -> Result<(), CliError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    let tmp = std::path::PathBuf::from(name);
    let failed = |e: std::io::Error| CliError::Output(format!("{}: {e}", out.display()));
    // Mode 0600: a backup holds the config (its `stats auth` passwords
    // too) and the stick tables (client addresses).
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&tmp, out).map_err(failed)
}

fn summary(backup: &Backup, size: usize, out: &Path) -> Output {
    let tables: usize = backup
        .state
        .tables()
        .values()
        .map(|t| t.entries().len())
        .sum();
    Output {
        stdout: format!(
            "backup written to {}: {size} bytes, applied index {}, state hash {:016x}, \
             {} servers, {tables} stick entries\n",
            out.display(),
            backup.applied,
            backup.hash,
            backup.state.servers().len(),
        ),
        warnings: Vec::new(),
    }
}
