//! The backup file format, pinned: a small fixed state written as a
//! backup must give exactly the bytes of `tests/data/backup-format-2.bin`,
//! and that file must read back as that state. A change to the encoding
//! of the state, the commands' model or the backup header fails here;
//! files written by earlier builds would then no longer restore.
//!
//! When the format changes on purpose (a new `FORMAT`, with a way to read
//! the old files, or a release note saying old backups do not restore),
//! write the new file deliberately and check it in:
//!
//! ```sh
//! SHOAL_WRITE_GOLDEN=1 cargo test -p shoal-proto --test backup_format
//! ```

use shoal_proto::backup::{Backup, FORMAT, MAGIC};
use shoal_proto::command::{AdminState, Command, ServerRef, StickWrite};
use shoal_proto::state::ClusterState;
use std::path::PathBuf;

/// The checked-in file.
fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/backup-format-2.bin")
}

fn server(name: &str) -> ServerRef {
    ServerRef::parse(&format!("app/{name}")).expect("a server name")
}

/// A state with a little of everything a backup carries: a config, a
/// weight, an admin state, a health report, a stick entry and a drained
/// node. Every time in it is fixed.
fn state() -> ClusterState {
    let text = "global\n    grace 3s\n\
                defaults\n    mode http\n    timeout connect 1s\n\
                frontend web\n    bind 127.0.0.1:8080\n    default_backend app\n\
                backend app\n    stick-table type ip size 100 expire 30m\n    stick on src\n\
                \x20   server s1 127.0.0.1:9001 check\n    server s2 127.0.0.1:9002 check\n";
    let mut state = ClusterState::default();
    let commands = [
        Command::load_config("golden.cfg", text, 1_700_000_000_000).expect("loads"),
        Command::SetWeight {
            server: server("s1"),
            weight: 7,
        },
        Command::SetAdminState {
            server: server("s2"),
            state: AdminState::Drain,
            at: 1_700_000_000_100,
        },
        Command::ReportObservation {
            server: server("s1"),
            node: 2,
            up: true,
            reason: "Layer7 check passed".into(),
            at: 1_700_000_000_200,
        },
        Command::StickBatch {
            node: 1,
            at: 1_700_000_000_300,
            writes: vec![StickWrite {
                table: "app".into(),
                key: "192.0.2.1".into(),
                server: "s1".into(),
                prev: None,
            }],
        },
        Command::SetNodeDrained {
            node: 3,
            drained: true,
        },
    ];
    for command in &commands {
        state
            .execute(command)
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    }
    state
}

#[test]
fn the_backup_format_is_pinned() {
    let backup = Backup::of(state(), 1, 42, 1_700_000_001_000);
    let bytes = backup.to_bytes().expect("encodes");
    if std::env::var_os("SHOAL_WRITE_GOLDEN").is_some() {
        std::fs::write(golden(), &bytes).expect("write the golden file");
    }
    let pinned = std::fs::read(golden()).expect("tests/data/backup-format-2.bin");
    assert!(
        bytes == pinned,
        "the backup encoding changed ({} bytes now, {} pinned): old backups would not \
         restore; see this file's header to change the format on purpose",
        bytes.len(),
        pinned.len()
    );
    // And the pinned file reads back as the same backup.
    let back = Backup::from_bytes(&pinned).expect("the pinned file reads");
    assert!(pinned.starts_with(MAGIC));
    assert_eq!(back.format, FORMAT);
    assert_eq!(
        (back.node, back.applied, back.taken_at),
        (1, 42, 1_700_000_001_000)
    );
    assert_eq!(back.state, backup.state);
    assert_eq!(back.hash, backup.state.hash());
    let s1 = &back.state.servers()[&server("s1")];
    assert_eq!(s1.weight, 7);
    assert!(s1.reports.contains_key(&2));
    assert_eq!(back.state.servers()[&server("s2")].admin, AdminState::Drain);
    assert_eq!(back.state.tables()["app"].entries().len(), 1);
    assert!(back.state.is_drained(3));
}
