//! openraft's storage conformance suite against the sled store, each
//! store in its own temporary directory on disk.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use shoal_proto::command::NodeId;
use shoal_raft::store::{self, LogStore, MemoryHost, StateMachine};
use shoal_raft::TypeConfig;
use std::sync::Arc;

/// Opens a store in a new temporary directory, removed when the guard drops.
struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SledBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let opened = store::open(dir.path())
            .map_err(|e| e.storage(openraft::ErrorSubject::Store, openraft::ErrorVerb::Read))?;
        let (log, machine) = opened.into_parts(Arc::new(MemoryHost::default()));
        Ok((dir, log, machine))
    }
}

/// The suite starts its own runtime per case, so this is a plain test.
#[test]
fn sled_store_passes_openraft_suite() {
    Suite::test_all(SledBuilder).expect("openraft storage suite");
}
