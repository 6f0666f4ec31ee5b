//! The data directory's incarnation: a random number drawn when the
//! directory is created and kept with it. A member's incarnation is
//! recorded in the membership when it joins, so a node that comes back
//! with a new (wiped, replaced) directory is told apart from the member it
//! was: it must not vote as that member, having lost what it acknowledged.

use super::StoreError;
use std::hash::{BuildHasher, Hasher};

const TREE: &str = "node";
const KEY: &[u8] = b"incarnation";

/// The incarnation of the directory behind `db`, drawn and flushed to
/// disk on first use.
pub(super) fn load_or_create(db: &sled::Db) -> Result<u64, StoreError> {
    let tree = db.open_tree(TREE)?;
    if let Some(known) = super::read(&tree, KEY, "incarnation")? {
        return Ok(known);
    }
    let drawn = draw();
    tree.insert(KEY, super::encode("incarnation", &drawn)?)?;
    db.flush()?;
    Ok(drawn)
}

/// 64 random bits: std's hasher keys come from the operating system's
/// random source, mixed with the time and process id for good measure.
fn draw() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    // Zero means "unknown" nowhere, but keep it out anyway.
    hasher.finish().max(1)
}
