use super::*;
use shoal_proto::command::{OpState, ServerRef};
use std::sync::atomic::Ordering::Relaxed;

const CONFIG: &str = "\
defaults
    mode http
    timeout connect 1s
frontend fe
    bind 127.0.0.1:0
    use_backend other if { path_beg /other }
    default_backend app
backend app
    balance roundrobin
    server s1 127.0.0.1:8001
    server s2 127.0.0.1:8002
backend other
    balance source
    stick-table type ip size 10 expire 1m
    stick on src
    server o1 127.0.0.1:9001
    server o2 127.0.0.1:9002
";

fn weight(server: &str, weight: u32) -> Command {
    Command::SetWeight {
        server: ServerRef::new("app", server),
        weight,
    }
}

fn submit(rt: &Runtime, command: &Command) {
    rt.submit(command).expect("valid");
}

#[test]
fn a_burst_of_changes_costs_one_or_two_builds() {
    let rt = Runtime::from_text(CONFIG).expect("runtime");
    let before = rt.shared.builds.load(Relaxed);
    {
        // Hold the projector at its build step while the burst arrives.
        let _held = rt.shared.lock_local();
        for w in 1..=100 {
            submit(&rt, &weight("s1", w));
        }
    }
    rt.settled_blocking();
    let builds = rt.shared.builds.load(Relaxed) - before;
    assert!((1..=2).contains(&builds), "{builds} builds for 100 changes");
    let snapshot = rt.snapshot();
    assert_eq!(snapshot.server("app", "s1").expect("s1").state.weight, 100);
}

#[test]
fn unchanged_backends_and_frontends_are_reused_whole() {
    let rt = Runtime::from_text(CONFIG).expect("runtime");
    let first = rt.snapshot();
    // Move the round-robin position of `app`, then change only `other`.
    let app = first.backend("app").expect("app").clone();
    let picked = app.primary.pick(None, &|_| 0, &|_| false);
    submit(
        &rt,
        &Command::SetMaxconn {
            server: ServerRef::new("other", "o1"),
            maxconn: 5,
        },
    );
    rt.settled_blocking();
    let second = rt.snapshot();
    assert!(!Arc::ptr_eq(&first, &second), "a new snapshot");
    let app2 = second.backend("app").expect("app");
    assert!(Arc::ptr_eq(&app, app2), "app reused, with its balancer");
    let next = app2.primary.pick(None, &|_| 0, &|_| false);
    assert_ne!(picked, next, "round robin continued where it was");
    assert!(!Arc::ptr_eq(
        first.backend("other").expect("other"),
        second.backend("other").expect("other")
    ));
    assert!(Arc::ptr_eq(
        first.frontend("fe").expect("fe"),
        second.frontend("fe").expect("fe")
    ));
}

#[test]
fn a_refused_change_leaves_the_snapshot_alone() {
    let rt = Runtime::from_text(CONFIG).expect("runtime");
    let first = rt.snapshot();
    let refused = rt.submit(&weight("s1", 300));
    assert!(matches!(refused, Err(Refusal::WeightRange)), "{refused:?}");
    let refused = rt.submit(&Command::SetWeight {
        server: ServerRef::new("other", "o1"),
        weight: 7,
    });
    assert!(matches!(refused, Err(Refusal::StaticWeight)), "{refused:?}");
    rt.settled_blocking();
    assert!(Arc::ptr_eq(&first, &rt.snapshot()));
}

#[test]
fn effects_reach_the_data_plane() {
    let rt = Runtime::from_text(CONFIG).expect("runtime");
    let snapshot = rt.snapshot();
    let s1 = snapshot.server("app", "s1").expect("s1").shared.clone();
    let (kills, pools) = (s1.generation(), s1.pool.generation());
    submit(
        &rt,
        &Command::ShutdownSessions {
            server: ServerRef::new("app", "s1"),
        },
    );
    assert_eq!(s1.generation(), kills + 1);
    submit(
        &rt,
        &Command::SetAddr {
            server: ServerRef::new("app", "s1"),
            ip: "127.0.0.2".parse().expect("ip"),
            port: None,
        },
    );
    assert!(s1.pool.generation() > pools, "pooled connections flushed");
    rt.settled_blocking();
    assert_eq!(
        rt.snapshot().server("app", "s1").expect("s1").addr,
        "127.0.0.2:8001".parse().expect("addr")
    );
}

#[tokio::test]
async fn stick_writes_reach_the_replicated_state_in_batches() {
    let rt = Arc::new(Runtime::from_text(CONFIG).expect("runtime"));
    let batcher = tokio::spawn(crate::persist::run_batcher(rt.clone()));
    let table = rt.snapshot().tables.get("other").expect("table").clone();
    for i in 1..=50 {
        table.store(&format!("10.0.0.{i}"), "o2", 2);
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stored = rt.read(|s| s.tables()["other"].entries().len());
        if stored == 10 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stored} entries replicated"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // size 10: the newest ten, in the state as in the local table.
    let keys: Vec<String> = rt.read(|s| s.tables()["other"].entries().keys().cloned().collect());
    let local: Vec<String> = table.dump().into_iter().map(|e| e.key).collect();
    let mut sorted = local.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(local.contains(&"10.0.0.50".to_string()));
    // `clear table` is a command too: state and local table both empty.
    submit(
        &rt,
        &Command::ClearTable {
            table: "other".into(),
            key: None,
        },
    );
    assert_eq!(table.used(), 0);
    assert!(rt.read(|s| s.tables()["other"].entries().is_empty()));
    batcher.abort();
}

#[test]
fn another_nodes_batch_is_copied_into_the_local_table() {
    let rt = Runtime::from_text(CONFIG).expect("runtime");
    let batch = Command::StickBatch {
        node: 7,
        at: now_ms(),
        writes: vec![shoal_proto::command::StickWrite {
            table: "other".into(),
            key: "10.1.1.1".into(),
            server: "o2".into(),
            prev: None,
        }],
    };
    submit(&rt, &batch);
    let table = rt.snapshot().tables.get("other").expect("table").clone();
    assert_eq!(table.lookup("10.1.1.1").as_deref(), Some("o2"));
    assert_eq!(table.dump()[0].server_id, 2);
    // Our own batches are not copied back: the request path wrote them.
    assert!(
        rt.stick_queue().take().is_empty(),
        "absorbing queues nothing"
    );
}

fn stick(node: u64, key: &str, server: &str, prev: Option<&str>) -> Command {
    Command::StickBatch {
        node,
        at: now_ms(),
        writes: vec![shoal_proto::command::StickWrite {
            table: "other".into(),
            key: key.into(),
            server: server.into(),
            prev: prev.map(str::to_string),
        }],
    }
}

#[test]
fn a_node_that_lost_a_conflict_follows_the_winner() {
    let rt = Runtime::from_text(CONFIG).expect("runtime");
    let table = rt.snapshot().tables.get("other").expect("table").clone();
    // This node (0) stuck a new key to o1; node 7 stuck it to o2 first.
    table.store("10.2.2.2", "o1", 1);
    let ours = rt.stick_queue().take();
    assert_eq!(
        ours[0].write.prev, None,
        "a new key names no previous server"
    );
    submit(&rt, &stick(7, "10.2.2.2", "o2", None));
    submit(&rt, &rt.own_stick_batch(ours).0);
    assert_eq!(table.lookup("10.2.2.2").as_deref(), Some("o2"));
    assert_eq!(table.dump()[0].server_id, 2);
    // A later move names the server the key stuck to.
    table.store("10.2.2.2", "o1", 1);
    assert_eq!(rt.stick_queue().take()[0].write.prev.as_deref(), Some("o2"));
}

#[test]
fn another_nodes_refresh_does_not_undo_a_newer_write_on_its_way() {
    // Found by the chaos run: this node moved a key from o1 to o2 (o1 was
    // down here); before its batch committed, node 7's refresh of o1 did.
    // The refresh put o1 back in the local table, then this node's batch
    // was accepted (the entry still said o1, its `prev`): the cluster said
    // o2 and this node went on sending the client to o1.
    let rt = Runtime::from_text(CONFIG).expect("runtime");
    let table = rt.snapshot().tables.get("other").expect("table").clone();
    submit(&rt, &stick(7, "10.5.5.5", "o1", None));
    assert_eq!(table.lookup("10.5.5.5").as_deref(), Some("o1"));
    table.store("10.5.5.5", "o2", 2);
    let ours = rt.stick_queue().take();
    assert_eq!(ours[0].write.prev.as_deref(), Some("o1"));
    submit(&rt, &stick(7, "10.5.5.5", "o1", Some("o1")));
    assert_eq!(
        table.lookup("10.5.5.5").as_deref(),
        Some("o2"),
        "the write on its way is kept"
    );
    submit(&rt, &rt.own_stick_batch(ours).0);
    let replicated = rt.read(|s| {
        s.tables()["other"]
            .get("10.5.5.5")
            .map(|e| e.server.clone())
    });
    assert_eq!(replicated.as_deref(), Some("o2"));
    assert_eq!(table.lookup("10.5.5.5").as_deref(), Some("o2"));
    assert_eq!(table.dump()[0].server_id, 2);
}

#[test]
fn a_lost_write_follows_the_winner_once_no_newer_write_is_on_its_way() {
    let rt = Runtime::from_text(CONFIG).expect("runtime");
    let table = rt.snapshot().tables.get("other").expect("table").clone();
    table.store("10.6.6.6", "o1", 1);
    let first = rt.stick_queue().take();
    table.store("10.6.6.6", "o2", 2);
    let second = rt.stick_queue().take();
    // Node 7 stuck the new key to o3 before either batch.
    submit(&rt, &stick(7, "10.6.6.6", "o3", None));
    assert_eq!(table.lookup("10.6.6.6").as_deref(), Some("o2"));
    submit(&rt, &rt.own_stick_batch(first).0);
    assert_eq!(
        table.lookup("10.6.6.6").as_deref(),
        Some("o2"),
        "a newer write is still on its way"
    );
    submit(&rt, &rt.own_stick_batch(second).0);
    assert_eq!(
        table.lookup("10.6.6.6").as_deref(),
        Some("o3"),
        "the winner"
    );
}

#[test]
fn a_restarted_node_serves_the_replicated_entries() {
    let rt = Runtime::from_text(CONFIG).expect("runtime");
    submit(&rt, &stick(7, "10.3.3.3", "o2", None));
    let state = rt.export();
    drop(rt);
    let restarted = Runtime::start_from(state, 0).expect("runtime");
    let table = restarted
        .snapshot()
        .tables
        .get("other")
        .expect("table")
        .clone();
    assert_eq!(table.lookup("10.3.3.3").as_deref(), Some("o2"));
    let left = table.dump()[0].expires_in_ms.expect("expire 1m");
    assert!(left > 50_000 && left <= 60_000, "kept its lifetime: {left}");
}

#[test]
fn an_installed_snapshot_fills_the_local_tables() {
    let leader = Runtime::from_text(CONFIG).expect("runtime");
    submit(&leader, &stick(7, "10.4.4.4", "o1", None));
    let follower = Runtime::from_text(CONFIG).expect("runtime");
    follower.install(leader.export());
    follower.settled_blocking();
    let table = follower
        .snapshot()
        .tables
        .get("other")
        .expect("table")
        .clone();
    assert_eq!(table.lookup("10.4.4.4").as_deref(), Some("o1"));
}

#[test]
fn a_prepared_reload_that_is_not_committed_changes_nothing() {
    let rt = Runtime::from_text(&format!("global\n    maxconn 50\n{CONFIG}")).expect("runtime");
    let before = rt.snapshot();
    let table = before.tables.get("other").expect("table").clone();
    table.store("10.0.0.1", "o2", 2);
    let limit = before.global_limit.clone().expect("global maxconn");
    // Another table size, another maxconn, another address for s1: all
    // checked, none applied (as when a later step refuses the reload).
    let next = CONFIG
        .replace("size 10", "size 20")
        .replace("127.0.0.1:8001", "127.0.0.9:8001");
    rt.prepare("t.cfg", &format!("global\n    maxconn 60\n{next}"))
        .expect("valid");
    submit(&rt, &weight("s2", 7));
    rt.settled_blocking();
    let after = rt.snapshot();
    let kept = after.tables.get("other").expect("table");
    assert!(Arc::ptr_eq(&table, kept), "the live table was replaced");
    assert_eq!(kept.lookup("10.0.0.1").as_deref(), Some("o2"));
    let kept_limit = after.global_limit.as_ref().expect("global maxconn");
    assert!(
        Arc::ptr_eq(&limit, kept_limit),
        "the live maxconn was replaced"
    );
    assert_eq!(
        after.server("app", "s1").expect("s1").addr,
        "127.0.0.1:8001".parse().expect("addr")
    );
}

#[test]
fn a_backend_built_during_slowstart_is_rebuilt_when_the_ramp_ends() {
    let rt = Runtime::from_text(
        "defaults\n    mode http\n    timeout connect 1s\nbackend app\n    balance roundrobin\n\
         \x20   server s1 127.0.0.1:8001 slowstart 60s\n    server s2 127.0.0.1:8002 slowstart 60s\n",
    )
    .expect("runtime");
    let share = |snapshot: &Snapshot| {
        let backend = snapshot.backend("app").expect("app");
        (0..340)
            .filter(|_| backend.primary.pick(None, &|_| 0, &|_| false) == Some(1))
            .count()
    };
    assert_eq!(share(&rt.snapshot()), 170);
    for state in [OpState::Down, OpState::Up] {
        submit(
            &rt,
            &Command::SetHealth {
                server: ServerRef::new("app", "s2"),
                state,
                at: now_ms(),
            },
        );
    }
    rt.settled_blocking();
    let ramping = rt.snapshot();
    assert!(share(&ramping) < 100, "s2 ramps up from a small share");
    // The next build, two minutes later: the ramp is over and nothing
    // else changed, yet the backend built mid-ramp must not be reused.
    let state = rt.shared.lock_state().state.without_tables();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(120);
    let next = super::build::build(&mut rt.shared.lock_local(), &state, Some(&ramping), later)
        .expect("builds");
    assert_eq!(share(&next), 170, "full weight once the ramp is over");
}

// --- a replicated config that does not load with this node's environment ---

/// A name no test environment sets.
const UNSET: &str = "SHOAL_TEST_NEVER_SET_7C2E";

/// `UNSET` as a node that sets it sees it.
fn with_unset(name: &str) -> Option<String> {
    (name == UNSET).then(|| "127.0.0.1".to_string())
}

/// A config that loads only where `UNSET` is set: a new frontend and
/// backend, `app` without s2 and with another weight for s1, no `other`.
fn elsewhere() -> String {
    format!(
        "defaults\n    mode http\n    timeout connect 1s\n\
         frontend fe2\n    bind \"${{{UNSET}}}:0\"\n    default_backend web\n\
         backend web\n    server w1 \"${{{UNSET}}}:7001\"\n\
         backend app\n    balance roundrobin\n    server s1 127.0.0.1:8001 weight 5\n"
    )
}

/// The last build worked.
fn built_ok(rt: &Runtime) {
    rt.settled_blocking();
    let built = rt.shared.published.borrow().clone();
    assert_eq!(built.error, None, "routing build");
}

#[test]
fn a_committed_config_that_does_not_load_here_is_applied_and_the_routing_kept() {
    let rt = Runtime::from_text(CONFIG).expect("runtime");
    let model = rt.read(|s| s.config().model.clone());
    let command = Command::load_config_with_env("t.cfg", &elsewhere(), now_ms(), &with_unset)
        .expect("loads there");
    rt.apply_committed(&command, false)
        .expect("a committed config is applied whatever the environment");
    built_ok(&rt);
    rt.read(|s| {
        let why = s.config().local_error.as_deref().expect("the reason");
        assert!(
            why.contains(&format!(
                "t.cfg:5: environment variable '{UNSET}' is not set"
            )),
            "{why}"
        );
        assert!(Arc::ptr_eq(&s.config().model, &model), "the model it had");
        assert_eq!(
            s.server(&ServerRef::new("app", "s1")).expect("s1").weight,
            5
        );
        assert!(s.server(&ServerRef::new("web", "w1")).is_some());
        assert!(s.server(&ServerRef::new("app", "s2")).is_none());
        assert!(s.tables().is_empty(), "no stick table in the new config");
    });
    // The routing still follows the model it had; a server the state no
    // longer has runs as its line says, one it has with its state.
    let snapshot = rt.snapshot();
    assert!(snapshot.frontend("fe").is_some() && snapshot.frontend("fe2").is_none());
    assert_eq!(snapshot.server("app", "s1").expect("s1").state.weight, 5);
    let s2 = &snapshot.server("app", "s2").expect("s2").state;
    assert_eq!(
        (s2.weight, s2.admin),
        (1, shoal_proto::command::AdminState::Ready)
    );
    assert!(snapshot.server("other", "o1").is_some());
    assert!(
        snapshot.tables.contains_key("other"),
        "the local table stays"
    );
    // Changes keep coming from the log, named as the cluster names them.
    rt.apply_committed(&weight("s1", 9), false)
        .expect("applied");
    built_ok(&rt);
    assert_eq!(
        rt.snapshot().server("app", "s1").expect("s1").state.weight,
        9
    );

    // A config that loads here clears the error and runs.
    let again = Command::load_config("t.cfg", CONFIG, now_ms()).expect("loads");
    rt.apply_committed(&again, false).expect("applied");
    built_ok(&rt);
    assert_eq!(rt.read(|s| s.config().local_error.clone()), None);
    assert!(!Arc::ptr_eq(&rt.read(|s| s.config().model.clone()), &model));
    assert!(rt.snapshot().server("app", "s2").is_some());
}

#[test]
fn an_installed_snapshot_that_does_not_load_here_keeps_the_routing() {
    let rt = Runtime::from_text(CONFIG).expect("runtime");
    let model = rt.read(|s| s.config().model.clone());
    let command = Command::load_config_with_env("t.cfg", &elsewhere(), now_ms(), &with_unset)
        .expect("loads there");
    let mut there = ClusterState::default();
    there.apply_with_env(&command, &with_unset);
    let bytes = shoal_proto::codec::encode(&there).expect("encode");
    let here: ClusterState = shoal_proto::codec::decode(&bytes).expect("decodes here");
    assert!(here.config().model.proxies.is_empty());
    rt.install(here);
    built_ok(&rt);
    assert_eq!(rt.read(ClusterState::hash), there.hash());
    assert!(rt.read(|s| s.config().local_error.is_some()));
    assert!(Arc::ptr_eq(&rt.read(|s| s.config().model.clone()), &model));
    let snapshot = rt.snapshot();
    assert!(snapshot.frontend("fe").is_some(), "still serving fe");
    assert_eq!(snapshot.server("app", "s1").expect("s1").state.weight, 5);
}

#[test]
fn a_restart_whose_config_does_not_load_here_serves_nothing() {
    let command = Command::load_config_with_env("t.cfg", &elsewhere(), now_ms(), &with_unset)
        .expect("loads there");
    let mut there = ClusterState::default();
    there.apply_with_env(&command, &with_unset);
    let bytes = shoal_proto::codec::encode(&there).expect("encode");
    let here: ClusterState = shoal_proto::codec::decode(&bytes).expect("decodes here");
    let rt = Runtime::start_from(here, 3).expect("starts");
    let snapshot = rt.snapshot();
    assert!(snapshot.frontends.is_empty() && snapshot.backends.is_empty());
    assert_eq!(rt.read(ClusterState::hash), there.hash());
}

#[test]
fn a_restarted_node_takes_its_own_writes_committed_before_it_died() {
    // Node 2 stuck 10.4.4.4 to o2 (it was on o1) and was killed after the
    // batch committed but before it applied it: its data directory holds
    // o1, and the batch comes back from the log once it restarts.
    let rt = Runtime::from_text(CONFIG).expect("runtime");
    submit(&rt, &stick(1, "10.4.4.4", "o1", None));
    let persisted = rt.export();
    drop(rt);
    let Command::StickBatch { node, writes, .. } = stick(2, "10.4.4.4", "o2", Some("o1")) else {
        unreachable!("a stick batch")
    };
    // Proposed by the incarnation that died, a second ago.
    let own = Command::StickBatch {
        node,
        at: now_ms() - 1_000,
        writes,
    };
    let restarted = Runtime::start_from(persisted, 2).expect("runtime");
    restarted.apply_committed(&own, false).expect("applies");
    let table = restarted
        .snapshot()
        .tables
        .get("other")
        .expect("table")
        .clone();
    assert_eq!(
        table.lookup("10.4.4.4").as_deref(),
        Some("o2"),
        "the local table follows the replicated entry its last incarnation wrote"
    );
}
