//! One cluster member in process: real sled files, a real QUIC endpoint
//! on 127.0.0.1 (port 0), and the in-memory state host. The multi-node
//! behaviour is tested with real `shoal` processes in cluster-tests/.

use shoal_proto::command::{Command, NodeId};
use shoal_raft::cluster::{Cluster, ClusterError, Settings};
use shoal_raft::store::{self, MemoryHost};
use shoal_raft::tls;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A member's directories: certificates and data.
struct Dirs {
    dir: tempfile::TempDir,
}

impl Dirs {
    fn new(node: NodeId) -> Dirs {
        let dir = tempfile::tempdir().expect("tempdir");
        tls::generate_ca(&dir.path().join("ca")).expect("CA");
        tls::generate_node_cert(&dir.path().join("ca"), node, &dir.path().join("certs"))
            .expect("node certificate");
        Dirs { dir }
    }

    fn settings(&self, node: NodeId, bind: SocketAddr) -> Settings {
        Settings {
            node,
            data_dir: self.dir.path().join("data"),
            bind,
            certs: self.dir.path().join("certs"),
            admin: "127.0.0.1:9".into(),
            snapshot_every: 5_000,
        }
    }

    async fn start(
        &self,
        node: NodeId,
        bind: &str,
    ) -> Result<(Arc<Cluster>, Arc<MemoryHost>), ClusterError> {
        let settings = self.settings(node, bind.parse().expect("address"));
        let opened = store::open(&settings.data_dir).expect("open the data directory");
        let host = Arc::new(MemoryHost::new(Default::default()));
        let cluster = Cluster::start(settings, opened, host.clone()).await?;
        Ok((cluster, host))
    }
}

/// The seed of these tests: a command whose effect is easy to read.
fn seed() -> Command {
    Command::SetNodeDrained {
        node: 9,
        drained: true,
    }
}

#[tokio::test]
async fn init_seeds_a_cluster_whose_first_init_stopped_before_its_seed() {
    let dirs = Dirs::new(1);
    let (cluster, host) = dirs.start(1, "127.0.0.1:0").await.expect("starts");
    // What a node that stopped (or timed out) between the two steps of
    // `cluster init` leaves: a membership and no seed.
    let info = cluster.info().clone();
    cluster
        .raft()
        .initialize(BTreeMap::from([(1, info)]))
        .await
        .expect("initialize");
    assert!(!host.state().is_drained(9));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cluster.is_member() {
        assert!(
            std::time::Instant::now() < deadline,
            "no membership after initialize"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // No other command may become the cluster's first: it would be
    // applied to an empty state on every node.
    let early = cluster
        .write(Command::SetNodeDrained {
            node: 8,
            drained: true,
        })
        .await;
    assert!(
        matches!(&early, Err(ClusterError::Refused(why)) if why.contains("cluster init")),
        "a write before the seed: {early:?}"
    );
    assert!(!host.state().is_drained(8));

    // Running `cluster init` again finishes the job ...
    cluster.init(seed()).await.expect("init seeds the cluster");
    assert!(host.state().is_drained(9), "the seed was applied");
    // ... once: a seeded cluster is initialized.
    let later = cluster
        .write(Command::SetNodeDrained {
            node: 8,
            drained: true,
        })
        .await;
    assert!(later.is_ok(), "a write once seeded: {later:?}");
    let again = cluster.init(seed()).await;
    assert!(
        matches!(again, Err(ClusterError::AlreadyInitialized)),
        "a second init: {again:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_unspecified_cluster_address_is_refused() {
    let dirs = Dirs::new(1);
    let err = dirs
        .start(1, "0.0.0.0:0")
        .await
        .map(|_| ())
        .expect_err("0.0.0.0 names no machine peers can dial");
    let text = err.to_string();
    assert!(
        text.contains("--cluster-addr 0.0.0.0:0") && text.contains("reach"),
        "the error names the flag and says why: {text}"
    );
}
