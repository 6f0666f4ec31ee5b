//! The frames' values survive the one codec (bincode 2 cannot encode every
//! serde shape, so each type that crosses the wire is checked once).

use super::wire::{Head, Reset, Rpc, SnapshotHead};
use crate::types::{NodeInfo, TypeConfig};
use openraft::error::{Fatal, RaftError};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_proto::codec;
use shoal_proto::command::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T) {
    let bytes = codec::encode(&value).expect("encodes");
    assert_eq!(codec::decode::<T>(&bytes).expect("decodes"), value);
}

/// For types without `PartialEq`: equal as debug text.
fn round_trip_debug<T: Serialize + DeserializeOwned + Debug>(value: T) {
    let bytes = codec::encode(&value).expect("encodes");
    let back: T = codec::decode(&bytes).expect("decodes");
    assert_eq!(format!("{back:?}"), format!("{value:?}"));
}

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn membership() -> Membership<NodeId, NodeInfo> {
    let nodes = BTreeMap::from([(
        1,
        NodeInfo {
            cluster: "127.0.0.1:7000".into(),
            admin: "127.0.0.1:9090".into(),
            incarnation: 1,
        },
    )]);
    Membership::new(vec![BTreeSet::from([1])], nodes)
}

#[test]
fn raft_messages_survive_the_codec() {
    round_trip(Head {
        from: 7,
        rpc: Rpc::Snapshot,
    });
    round_trip(VoteRequest::new(Vote::new(3, 1), Some(log_id(2, 9))));
    let entries: Vec<Entry<TypeConfig>> = vec![
        Entry {
            log_id: log_id(3, 10),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(3, 11),
            payload: EntryPayload::Membership(membership()),
        },
    ];
    round_trip_debug(AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        prev_log_id: Some(log_id(2, 9)),
        entries,
        leader_commit: Some(log_id(2, 9)),
    });
    let ok: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> =
        Ok(AppendEntriesResponse::Conflict);
    round_trip(ok);
    let failed: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> =
        Err(RaftError::Fatal(Fatal::Panicked));
    round_trip(failed);
    round_trip(SnapshotHead {
        vote: Vote::new_committed(3, 1),
        meta: SnapshotMeta {
            last_log_id: Some(log_id(3, 11)),
            last_membership: StoredMembership::new(Some(log_id(3, 11)), membership()),
            snapshot_id: "3-11-x".into(),
        },
        len: 5 << 20,
    });
    let answered: Result<SnapshotResponse<NodeId>, Fatal<NodeId>> =
        Ok(SnapshotResponse::new(Vote::new(3, 1)));
    round_trip(answered);
}

#[test]
fn reset_codes_read_back() {
    for reset in [
        Reset::TooLarge,
        Reset::Malformed,
        Reset::NotAuthorized,
        Reset::Timeout,
    ] {
        assert_eq!(Reset::from_code(reset.code()), Some(reset));
    }
    assert_eq!(Reset::from_code(quinn::VarInt::from_u32(99)), None);
}
