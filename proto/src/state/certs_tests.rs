//! The certificate store: add, replace, remove, limits, and that keys
//! stay out of `Debug` and backups.

use super::certs::{
    Certificate, Secret, MAX_CERTIFICATES, MAX_CHAIN_PEM, MAX_KEY_PEM, MAX_STORE_BYTES,
};
use super::{ClusterState, Effect, Refusal};
use crate::backup::Backup;
use crate::command::Command;

const KEY: &str = "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYBODY\n-----END PRIVATE KEY-----\n";

fn cert(names: &[&str], at: u64) -> Certificate {
    Certificate {
        chain_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
        key_pem: Secret::new(KEY.into()),
        names: names.iter().map(ToString::to_string).collect(),
        not_before: 1_700_000_000,
        not_after: 1_800_000_000,
        fingerprint: "ab".repeat(32),
        added_at: at,
    }
}

fn add(name: &str, certificate: Certificate) -> Command {
    Command::AddCertificate {
        name: name.into(),
        certificate: Box::new(certificate),
    }
}

fn loaded() -> ClusterState {
    let mut state = ClusterState::default();
    let text = "defaults\n    mode http\nbackend app\n    server s1 127.0.0.1:1\n";
    state
        .execute(&Command::load_config("t.cfg", text, 1).expect("loads"))
        .expect("applies");
    state
}

#[test]
fn adding_replaces_and_removing_forgets() {
    let mut state = loaded();
    let before = state.hash();
    let applied = state
        .execute(&add("site", cert(&["a.example"], 5)))
        .expect("added");
    assert_eq!(applied.effects, vec![Effect::CertificatesChanged]);
    assert!(!applied.routing, "certificates need no routing rebuild");
    assert_ne!(state.hash(), before);
    assert_eq!(state.certificates()["site"].names, ["a.example"]);

    // Same name: replaced, not added.
    state
        .execute(&add("site", cert(&["b.example"], 6)))
        .expect("replaced");
    assert_eq!(state.certificates().len(), 1);
    assert_eq!(state.certificates()["site"].names, ["b.example"]);
    assert_eq!(state.certificates()["site"].added_at, 6);

    let remove = Command::RemoveCertificate {
        name: "site".into(),
    };
    let applied = state.execute(&remove).expect("removed");
    assert_eq!(applied.effects, vec![Effect::CertificatesChanged]);
    assert!(state.certificates().is_empty());
    assert_eq!(state.hash(), before);
    let again = state.execute(&remove).expect_err("already gone");
    assert_eq!(again, Refusal::NoSuchCertificate);
    assert!(again.is_not_found());
}

#[test]
fn bad_names_sizes_and_a_full_store_are_refused() {
    let mut state = loaded();
    for name in ["", ".hidden", "a/b", "sp ace", "é", &"x".repeat(129)] {
        let refused = state.validate(&add(name, cert(&["a"], 1)));
        assert!(
            matches!(refused, Err(Refusal::Certificate(_))),
            "{name:?}: {refused:?}"
        );
    }
    let mut big = cert(&["a"], 1);
    big.chain_pem = "A".repeat(MAX_CHAIN_PEM + 1);
    let refused = state.validate(&add("big", big)).expect_err("too big");
    assert!(refused.to_string().contains("chain"), "{refused}");
    let mut big = cert(&["a"], 1);
    big.key_pem = Secret::new("A".repeat(MAX_KEY_PEM + 1));
    let refused = state.validate(&add("big", big)).expect_err("too big");
    assert!(refused.to_string().contains("private key"), "{refused}");
    assert!(
        !refused
            .to_string()
            .contains('A'.to_string().repeat(100).as_str()),
        "the key is not echoed"
    );
    let mut keyless = cert(&["a"], 1);
    keyless.key_pem = Secret::new(String::new());
    assert!(state.validate(&add("keyless", keyless)).is_err());

    // The store's total size is bounded too (it travels in snapshots).
    let mut large = cert(&["a"], 1);
    large.chain_pem = "A".repeat(MAX_CHAIN_PEM);
    let mut filled = state.clone();
    let fit = MAX_STORE_BYTES / large.pem_bytes();
    for i in 0..fit {
        filled
            .execute(&add(&format!("l{i}"), large.clone()))
            .expect("within the total");
    }
    let over = filled.validate(&add("one-more", large.clone()));
    assert!(
        over.as_ref()
            .is_err_and(|e| e.to_string().contains("more than")),
        "{over:?}"
    );
    assert_eq!(
        filled.validate(&add("l0", large)),
        Ok(()),
        "a replacement fits"
    );

    for i in 0..MAX_CERTIFICATES {
        state
            .execute(&add(&format!("c{i}"), cert(&["a"], 1)))
            .expect("room left");
    }
    let full = state.validate(&add("one-more", cert(&["a"], 1)));
    assert!(matches!(full, Err(Refusal::Certificate(_))), "{full:?}");
    // Replacing one still works when full.
    assert_eq!(state.validate(&add("c0", cert(&["b"], 2))), Ok(()));
}

#[test]
fn keys_never_show_in_debug() {
    let command = add("site", cert(&["a.example"], 5));
    let shown = format!("{command:?}");
    assert!(!shown.contains("TOPSECRET"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    let mut state = loaded();
    state.execute(&command).expect("added");
    assert!(!format!("{state:?}").contains("TOPSECRET"));
}

#[test]
fn the_key_survives_encoding_for_the_log() {
    let command = add("site", cert(&["a.example"], 5));
    let bytes = crate::codec::encode(&command).expect("encodes");
    let back: Command = crate::codec::decode(&bytes).expect("decodes");
    assert_eq!(back, command);
}

#[test]
fn backups_hold_no_certificates_and_restore_keeps_the_clusters() {
    let mut state = loaded();
    state
        .execute(&add("site", cert(&["a.example"], 5)))
        .expect("added");
    let bytes = Backup::of(state.clone(), 1, 9, 10)
        .to_bytes()
        .expect("encodes");
    assert!(
        !bytes.windows(9).any(|w| w == b"TOPSECRET"),
        "a backup holds no private key"
    );
    let backup = Backup::from_bytes(&bytes).expect("decodes");
    assert!(backup.state.certificates().is_empty());

    // Later: the site certificate was replaced, and another added.
    state
        .execute(&add("site", cert(&["b.example"], 7)))
        .expect("replaced");
    state
        .execute(&add("other", cert(&["c.example"], 8)))
        .expect("added");
    let kept = state.certificates().clone();
    let restore = Command::restore(backup.state, Default::default(), 11).expect("loads here");
    state.execute(&restore).expect("restored");
    assert_eq!(state.certificates(), &kept);
}

#[test]
fn an_older_backup_format_is_named() {
    let mut bytes = Backup::of(loaded(), 1, 9, 10).to_bytes().expect("encodes");
    bytes[crate::backup::MAGIC.len()] = 1;
    let refused = Backup::from_bytes(&bytes).expect_err("format 1");
    assert!(refused.to_string().contains("backup format 1"), "{refused}");
}
