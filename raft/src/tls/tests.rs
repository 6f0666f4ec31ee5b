use super::*;
use std::os::unix::fs::PermissionsExt;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("exists").permissions().mode() & 0o777
}

#[test]
fn a_ca_is_written_once_with_a_private_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    generate_ca(&ca).expect("CA");
    assert_eq!(mode(&ca.join(CA_KEY)), 0o600);
    assert_eq!(mode(&ca), 0o700);
    let before = fs::read(ca.join(CA_CERT)).expect("ca.pem");

    let err = generate_ca(&ca).expect_err("a second CA over the first is refused");
    assert!(matches!(err, TlsError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("ca.pem: already exists"), "{err}");
    assert_eq!(fs::read(ca.join(CA_CERT)).expect("ca.pem"), before);
}

#[test]
fn a_node_directory_is_self_contained_and_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    let node = dir.path().join("node3");
    generate_ca(&ca).expect("CA");
    generate_node_cert(&ca, 3, &node).expect("node cert");
    assert_eq!(mode(&node.join(NODE_KEY)), 0o600);
    assert_eq!(
        fs::read(node.join(CA_CERT)).expect("copy"),
        fs::read(ca.join(CA_CERT)).expect("CA")
    );
    assert!(!node.join(CA_KEY).exists(), "the CA key stays with the CA");
    let tls = load(&node, 3).expect("loads");
    assert_eq!(tls.node(), 3);

    let err = generate_node_cert(&ca, 3, &node).expect_err("no overwrite");
    assert!(
        err.to_string().contains("node.pem: already exists"),
        "{err}"
    );
}

#[test]
fn a_cert_names_exactly_its_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    generate_ca(dir.path()).expect("CA");
    let node = dir.path().join("n");
    generate_node_cert(dir.path(), 12, &node).expect("cert");
    let pem = fs::read(node.join(NODE_CERT)).expect("node.pem");
    let cert = CertificateDer::from_pem_slice(&pem).expect("PEM");
    assert!(names_node(&cert, 12));
    assert!(!names_node(&cert, 1));
    assert!(!names_node(&cert, 120));
}

#[test]
fn a_node_dir_of_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca1, ca2, node) = (
        dir.path().join("ca1"),
        dir.path().join("ca2"),
        dir.path().join("n"),
    );
    generate_ca(&ca1).expect("CA 1");
    generate_ca(&ca2).expect("CA 2");
    generate_node_cert(&ca1, 1, &node).expect("cert");
    let other = dir.path().join("other");
    fs::create_dir(&other).expect("mkdir");
    fs::copy(ca1.join(CA_CERT), other.join(CA_CERT)).expect("CA 1 there");
    let err = generate_node_cert(&ca2, 2, &other).expect_err("ca.pem differs");
    assert!(err.to_string().contains("holds another CA"), "{err}");

    // A node certificate checked against a CA that did not issue it.
    fs::copy(ca2.join(CA_CERT), node.join(CA_CERT)).expect("swap CA");
    let err = load(&node, 1).expect_err("untrusted");
    assert!(matches!(err, TlsError::Untrusted { .. }), "{err}");
    assert!(
        err.to_string().contains("not issued by the cluster CA"),
        "{err}"
    );

    // Both CAs in ca.pem (a CA rotation in progress): trusted again.
    let both = [
        fs::read(ca2.join(CA_CERT)).expect("CA 2"),
        fs::read(ca1.join(CA_CERT)).expect("CA 1"),
    ]
    .concat();
    fs::write(node.join(CA_CERT), both).expect("bundle");
    load(&node, 1).expect("either CA is trusted");
}

#[test]
fn a_ca_key_that_is_not_the_cas_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca1, ca2) = (dir.path().join("ca1"), dir.path().join("ca2"));
    generate_ca(&ca1).expect("CA 1");
    generate_ca(&ca2).expect("CA 2");
    fs::remove_file(ca1.join(CA_KEY)).expect("rm");
    fs::copy(ca2.join(CA_KEY), ca1.join(CA_KEY)).expect("wrong key");
    let out = dir.path().join("n");
    let err = generate_node_cert(&ca1, 1, &out).expect_err("mismatch");
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert!(!out.join(NODE_CERT).exists(), "nothing written");
}

#[test]
fn a_node_key_that_is_not_the_certs_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    generate_ca(dir.path()).expect("CA");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    generate_node_cert(dir.path(), 1, &a).expect("a");
    generate_node_cert(dir.path(), 1, &b).expect("b");
    fs::remove_file(a.join(NODE_KEY)).expect("rm");
    fs::copy(b.join(NODE_KEY), a.join(NODE_KEY)).expect("other key");
    let err = load(&a, 1).expect_err("mismatch");
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("node-key.pem"), "{err}");
}

#[test]
fn missing_and_garbled_files_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load(dir.path(), 1).expect_err("empty dir");
    assert!(err.to_string().contains("ca.pem"), "{err}");
    assert!(err.to_string().contains("No such file"), "{err}");

    generate_ca(dir.path()).expect("CA");
    let node = dir.path().join("n");
    generate_node_cert(dir.path(), 1, &node).expect("cert");
    fs::write(node.join(NODE_CERT), "not a certificate\n").expect("garble");
    let err = load(&node, 1).expect_err("garbled");
    assert!(
        err.to_string().contains("node.pem: no certificate in it"),
        "{err}"
    );
}
