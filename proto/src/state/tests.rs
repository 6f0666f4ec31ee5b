use super::*;
use crate::command::{Command, StickWrite};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

const A: &str = "\
defaults
    mode http
    timeout connect 1s
frontend fe
    bind 127.0.0.1:0
    default_backend app
backend app
    balance roundrobin
    stick-table type ip size 3 expire 10s
    stick on src
    server s1 127.0.0.1:8001 weight 10
    server s2 127.0.0.1:8002 disabled
    server s3 127.0.0.1:8003 check
backend static
    balance static-rr
    server t1 127.0.0.1:9001 weight 5
";

/// `A` with s1's weight and s3's address changed, s2 gone and a new s4.
const B: &str = "\
defaults
    mode http
    timeout connect 1s
frontend fe
    bind 127.0.0.1:0
    default_backend app
backend app
    balance roundrobin
    stick-table type ip size 3 expire 10s
    stick on src
    server s1 127.0.0.1:8001 weight 20
    server s3 127.0.0.1:8033 check
    server s4 127.0.0.1:8004
backend static
    balance static-rr
    server t1 127.0.0.1:9001 weight 5
";

fn load(text: &str, at: Millis) -> Command {
    Command::load_config("t.cfg", text, at).expect("a config that loads")
}

fn loaded(text: &str) -> ClusterState {
    let mut s = ClusterState::default();
    s.execute(&load(text, 1)).expect("valid config");
    s
}

fn sref(b: &str, s: &str) -> ServerRef {
    ServerRef::new(b, s)
}

#[test]
fn load_config_starts_servers_as_the_file_says() {
    let s = loaded(A);
    let s1 = s.server(&sref("app", "s1")).expect("s1");
    assert_eq!(
        (s1.admin, s1.op, s1.weight),
        (AdminState::Ready, OpState::Up, 10)
    );
    let s2 = s.server(&sref("app", "s2")).expect("s2");
    assert_eq!(s2.admin, AdminState::Maint, "`disabled` starts in maint");
    assert!(s.server(&sref("app", "s3")).expect("s3").check_enabled);
    assert_eq!(s.tables().len(), 1);
}

#[test]
fn reload_keeps_the_state_of_servers_that_stay() {
    let mut s = loaded(A);
    let s3 = sref("app", "s3");
    s.execute(&Command::SetAdminState {
        server: s3.clone(),
        state: AdminState::Drain,
        at: 5,
    })
    .expect("ok");
    s.execute(&Command::SetMaxconn {
        server: s3.clone(),
        maxconn: 7,
    })
    .expect("ok");
    s.execute(&Command::SetWeight {
        server: sref("app", "s1"),
        weight: 3,
    })
    .expect("ok");
    for server in ["s1", "s3"] {
        s.execute(&Command::SetAddr {
            server: sref("app", server),
            ip: IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)),
            port: None,
        })
        .expect("ok");
    }
    let applied = s.execute(&load(B, 9)).expect("valid");
    assert!(applied.effects.contains(&Effect::ConfigLoaded));
    let kept = s.server(&s3).expect("s3 stays");
    assert_eq!((kept.admin, kept.maxconn), (AdminState::Drain, Some(7)));
    assert_eq!(
        kept.addr, None,
        "the file moved s3: its runtime address goes"
    );
    assert_eq!(
        s.server(&sref("app", "s1")).and_then(|x| x.addr),
        Some("10.9.9.9:8001".parse().expect("addr")),
        "s1's line kept its address: the runtime one stays"
    );
    assert_eq!(
        s.server(&sref("app", "s1")).expect("s1").weight,
        20,
        "a weight changed in the file replaces the runtime one"
    );
    assert!(s.server(&sref("app", "s2")).is_none(), "s2 left the file");
    assert_eq!(s.server(&sref("app", "s4")).expect("new").last_change, 9);
}

#[test]
fn a_config_that_does_not_load_is_refused_where_it_is_built() {
    let refused = Command::load_config("t.cfg", "backend app\n    balance nonsense\n", 4);
    let Err(Refusal::Config(diags)) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!((diags[0].file.as_str(), diags[0].line), ("t.cfg", 2));
}

#[test]
fn weights_are_validated_once_for_every_surface() {
    let mut s = loaded(A);
    let set = |server: ServerRef, weight| Command::SetWeight { server, weight };
    assert_eq!(
        s.execute(&set(sref("app", "s1"), 257)),
        Err(Refusal::WeightRange)
    );
    assert_eq!(
        s.execute(&set(sref("static", "t1"), 3)),
        Err(Refusal::StaticWeight)
    );
    assert!(s.execute(&set(sref("static", "t1"), 0)).is_ok());
    assert!(s.execute(&set(sref("static", "t1"), 5)).is_ok());
    assert_eq!(
        s.execute(&set(sref("nope", "t1"), 1)),
        Err(Refusal::NoSuchBackend)
    );
    assert_eq!(
        s.execute(&set(sref("app", "nope"), 1)),
        Err(Refusal::NoSuchServer)
    );
}

#[test]
fn set_addr_without_port_keeps_the_port_in_use() {
    let mut s = loaded(A);
    let s1 = sref("app", "s1");
    let ip = |d| IpAddr::V4(Ipv4Addr::new(10, 0, 0, d));
    let applied = s
        .execute(&Command::SetAddr {
            server: s1.clone(),
            ip: ip(1),
            port: None,
        })
        .expect("ok");
    assert_eq!(applied.effects, vec![Effect::FlushConnections(s1.clone())]);
    assert_eq!(
        s.server(&s1).and_then(|x| x.addr),
        Some("10.0.0.1:8001".parse().expect("addr"))
    );
    s.execute(&Command::SetAddr {
        server: s1.clone(),
        ip: ip(2),
        port: Some(99),
    })
    .expect("ok");
    s.execute(&Command::SetAddr {
        server: s1.clone(),
        ip: ip(3),
        port: None,
    })
    .expect("ok");
    assert_eq!(
        s.server(&s1).and_then(|x| x.addr),
        Some("10.0.0.3:99".parse().expect("addr"))
    );
}

#[test]
fn health_reports_are_kept_apart_from_the_operator() {
    let mut s = loaded(A);
    let s3 = sref("app", "s3");
    let report = |node, up, at| Command::ReportHealth {
        server: s3.clone(),
        node,
        up,
        at,
    };
    let status = |s: &ClusterState| s.server(&s3).cloned().expect("s3");
    // The operator's word stands until a node's checks report again.
    s.execute(&Command::SetHealth {
        server: s3.clone(),
        state: OpState::Down,
        at: 2,
    })
    .expect("ok");
    let st = status(&s);
    assert_eq!(
        (st.op, st.verdict_up, st.last_change),
        (OpState::Down, true, 2)
    );
    assert!(st.reports.is_empty(), "an operator's word is not a report");
    s.execute(&report(0, true, 3)).expect("ok");
    let st = status(&s);
    assert_eq!(
        (st.op, st.last_change, st.serving_since),
        (OpState::Up, 3, Some(3))
    );
    // Three nodes: DOWN needs a majority of those that report.
    s.execute(&report(1, true, 4)).expect("ok");
    s.execute(&report(0, false, 5)).expect("ok");
    assert_eq!(
        status(&s).op,
        OpState::Up,
        "one of two says DOWN: a tie keeps UP"
    );
    s.execute(&report(2, false, 6)).expect("ok");
    let st = status(&s);
    assert_eq!(
        (st.op, st.verdict_up, st.last_change),
        (OpState::Down, false, 6)
    );
    s.execute(&report(0, true, 7)).expect("ok");
    let st = status(&s);
    assert_eq!(
        (st.op, st.last_change, st.serving_since),
        (OpState::Up, 7, Some(7))
    );
}

#[test]
fn stick_tables_expire_and_evict_by_the_command_time() {
    let mut s = loaded(A);
    let write = |key: &str| StickWrite {
        table: "app".into(),
        key: key.into(),
        server: "s1".into(),
        prev: None,
    };
    let batch = |at, writes| Command::StickBatch {
        node: 0,
        at,
        writes,
    };
    s.execute(&batch(1_000, vec![write("10.0.0.1"), write("10.0.0.2")]))
        .expect("ok");
    s.execute(&batch(2_000, vec![write("10.0.0.3"), write("10.0.0.4")]))
        .expect("ok");
    let keys =
        |s: &ClusterState| -> Vec<String> { s.tables()["app"].entries().keys().cloned().collect() };
    // size 3: the oldest entry went first.
    assert_eq!(keys(&s), ["10.0.0.2", "10.0.0.3", "10.0.0.4"]);
    // expire 10s: at 11.5 s the entries written at 1 s are gone.
    s.execute(&batch(11_500, vec![])).expect("ok");
    assert_eq!(keys(&s), ["10.0.0.3", "10.0.0.4"]);
    s.execute(&Command::ClearTable {
        table: "app".into(),
        key: Some("10.0.0.3".into()),
    })
    .expect("ok");
    assert_eq!(keys(&s), ["10.0.0.4"]);
    assert_eq!(
        s.execute(&Command::ClearTable {
            table: "nope".into(),
            key: None
        }),
        Err(Refusal::NoSuchTable)
    );
}

// --- properties -------------------------------------------------------------

fn any_server() -> impl Strategy<Value = ServerRef> {
    prop_oneof![
        Just(sref("app", "s1")),
        Just(sref("app", "s2")),
        Just(sref("app", "s3")),
        Just(sref("app", "s4")),
        Just(sref("static", "t1")),
        Just(sref("nope", "s1")),
    ]
}

fn any_command() -> impl Strategy<Value = Command> {
    let admin = prop_oneof![
        Just(AdminState::Ready),
        Just(AdminState::Drain),
        Just(AdminState::Maint)
    ];
    let op = prop_oneof![
        Just(OpState::Up),
        Just(OpState::Down),
        Just(OpState::Stopping)
    ];
    let at = 0u64..100_000;
    let write = (
        prop_oneof![Just("app".to_string()), Just("gone".to_string())],
        0u8..6,
        prop_oneof![Just("s1".to_string()), Just("s3".to_string())],
        proptest::option::of(prop_oneof![Just("s1".to_string()), Just("s3".to_string())]),
    )
        .prop_map(|(table, k, server, prev)| StickWrite {
            table,
            key: format!("10.0.0.{k}"),
            server,
            prev,
        });
    prop_oneof![
        (prop_oneof![Just(A), Just(B)], at.clone()).prop_map(|(text, at)| load(text, at)),
        // A config this process's environment does not load, proposed by
        // a node whose environment does.
        at.clone().prop_map(|at| Command::load_config_with_env(
            "t.cfg",
            &elsewhere(),
            at,
            &with_unset
        )
        .expect("loads there")),
        (any_server(), 0u32..300)
            .prop_map(|(server, weight)| Command::SetWeight { server, weight }),
        (any_server(), admin, at.clone()).prop_map(|(server, state, at)| Command::SetAdminState {
            server,
            state,
            at
        }),
        (any_server(), op, at.clone()).prop_map(|(server, state, at)| Command::SetHealth {
            server,
            state,
            at
        }),
        (any_server(), 0u64..3, any::<bool>(), at.clone()).prop_map(|(server, node, up, at)| {
            Command::ReportHealth {
                server,
                node,
                up,
                at,
            }
        }),
        (any_server(), any::<bool>())
            .prop_map(|(server, enabled)| Command::SetCheckEnabled { server, enabled }),
        (any_server(), any::<[u8; 4]>(), proptest::option::of(1u16..)).prop_map(
            |(server, ip, port)| Command::SetAddr {
                server,
                ip: IpAddr::from(ip),
                port,
            }
        ),
        (any_server(), 0u32..100)
            .prop_map(|(server, maxconn)| Command::SetMaxconn { server, maxconn }),
        any_server().prop_map(|server| Command::ShutdownSessions { server }),
        (at, proptest::collection::vec(write, 0..5)).prop_map(|(at, writes)| Command::StickBatch {
            node: 1,
            at,
            writes
        }),
        (
            prop_oneof![Just("app".to_string()), Just("nope".to_string())],
            proptest::option::of((0u8..6).prop_map(|k| format!("10.0.0.{k}")))
        )
            .prop_map(|(table, key)| Command::ClearTable { table, key }),
        (0u64..4, any::<bool>())
            .prop_map(|(node, drained)| Command::SetNodeDrained { node, drained }),
    ]
}

/// Validate and apply each command, as every node does with its log.
fn run(state: &mut ClusterState, commands: &[Command]) {
    for c in commands {
        let _ = state.execute(c);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn same_commands_same_state(commands in proptest::collection::vec(any_command(), 1..60)) {
        let (mut a, mut b) = (loaded(A), loaded(A));
        run(&mut a, &commands);
        run(&mut b, &commands);
        prop_assert_eq!(a.hash(), b.hash());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn a_restored_state_continues_the_same(
        commands in proptest::collection::vec(any_command(), 2..60),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = cut.index(commands.len());
        let mut whole = loaded(A);
        run(&mut whole, &commands);
        let mut first = loaded(A);
        run(&mut first, &commands[..cut]);
        let bytes = crate::codec::encode(&first).expect("encode");
        let mut restored: ClusterState = crate::codec::decode(&bytes).expect("decode");
        prop_assert_eq!(restored.hash(), first.hash());
        run(&mut restored, &commands[cut..]);
        prop_assert_eq!(restored.hash(), whole.hash());
        prop_assert_eq!(restored, whole);
    }

    #[test]
    fn a_refused_command_changes_nothing(
        setup in proptest::collection::vec(any_command(), 0..20),
        command in any_command(),
    ) {
        let mut s = loaded(A);
        run(&mut s, &setup);
        let before = s.clone();
        if s.execute(&command).is_err() {
            prop_assert_eq!(s.hash(), before.hash());
            prop_assert_eq!(s, before);
        }
    }

    #[test]
    fn apply_without_validate_never_breaks_invariants(
        commands in proptest::collection::vec(any_command(), 1..40),
    ) {
        let mut s = loaded(A);
        for c in &commands {
            s.apply(c);
            prop_assert!(s.invariants_hold());
        }
    }
}

/// One config text for every node; each fills in its own address.
const PER_NODE: &str = "\
frontend fe
    bind \"${NODE_IP-127.0.0.1}:0\"
    default_backend app
backend app
    server s1 \"${NODE_IP-127.0.0.1}:8001\"
";

/// A name no test environment sets.
const UNSET: &str = "SHOAL_TEST_NEVER_SET_3B1F";

/// `state` with its config parsed as a node whose `NODE_IP` is `ip` would.
fn as_node(state: &ClusterState, ip: &str) -> ClusterState {
    let env = |name: &str| (name == "NODE_IP").then(|| ip.to_string());
    let config = state.config();
    let parsed = crate::config::parse_with_env(&config.text, &config.file, &env).expect("loads");
    let mut node = state.clone();
    node.config = Arc::new(LoadedConfig {
        model: Arc::new(parsed.config),
        ..LoadedConfig::clone(config)
    });
    node
}

fn bind_and_server(state: &ClusterState) -> (String, String) {
    let model = &state.config().model;
    let bind = model.proxies[0].binds[0].host.clone();
    let server = model.proxies[1].servers[0].addr.host.clone();
    (bind, server)
}

#[test]
fn nodes_with_different_environments_hash_the_same() {
    let loaded = loaded(PER_NODE);
    let (a, b) = (
        as_node(&loaded, "127.0.0.11"),
        as_node(&loaded, "127.0.0.12"),
    );
    assert_eq!(
        bind_and_server(&a),
        ("127.0.0.11".into(), "127.0.0.11".into())
    );
    assert_eq!(
        bind_and_server(&b),
        ("127.0.0.12".into(), "127.0.0.12".into())
    );
    assert_eq!(a.hash(), b.hash(), "the replicated state is the text");
    assert_eq!(
        crate::codec::encode(&a).expect("encode"),
        crate::codec::encode(&b).expect("encode")
    );
}

#[test]
fn decoding_parses_the_text_again_with_this_nodes_environment() {
    let text = PER_NODE.replace("NODE_IP", UNSET);
    let env = |name: &str| (name == UNSET).then(|| "127.0.0.11".to_string());
    let parsed = crate::config::parse_with_env(&text, "t.cfg", &env).expect("loads");
    let mut remote = loaded(&text);
    remote.config = Arc::new(LoadedConfig {
        model: Arc::new(parsed.config),
        ..LoadedConfig::clone(remote.config())
    });
    assert_eq!(bind_and_server(&remote).0, "127.0.0.11");
    // This process does not set the variable: its default applies here.
    let bytes = crate::codec::encode(&remote).expect("encode");
    let here: ClusterState = crate::codec::decode(&bytes).expect("decode");
    assert_eq!(bind_and_server(&here).0, "127.0.0.1");
    assert_eq!(here.hash(), remote.hash());
}

/// `UNSET` as a node that sets it sees it.
fn with_unset(name: &str) -> Option<String> {
    (name == UNSET).then(|| "127.0.0.11".to_string())
}

/// `B` with `UNSET` (no default) in a bind line and a server address, a
/// stick table on another proxy and a server line of its own: it loads
/// only where `UNSET` is set.
fn elsewhere() -> String {
    let lines = format!(
        "frontend fe2\n    bind \"${{{UNSET}}}:0\"\n    default_backend other\n\
         backend other\n    stick-table type ip size 5\n    stick on src\n\
         \x20   server o1 \"${{{UNSET}}}:9009\" weight 7 check\n    server o2 127.0.0.1:9010 disabled\n"
    );
    format!("{B}{lines}")
}

#[test]
fn a_config_that_does_not_load_here_still_applies_like_everywhere_else() {
    let command = Command::load_config_with_env("t.cfg", &elsewhere(), 9, &with_unset)
        .expect("loads where UNSET is set");
    let mut there = loaded(A);
    there.validate(&command).expect("valid there");
    there.apply_with_env(&command, &with_unset);
    assert_eq!(there.config().local_error, None);

    let mut here = loaded(A);
    let before = here.config().model.clone();
    here.execute(&command)
        .expect("a committed config is applied whatever the environment");
    assert_eq!(here.hash(), there.hash(), "same replicated state");
    assert_eq!(here, there);
    let why = here.config().local_error.clone().expect("the reason");
    let line = B.lines().count() + 2;
    assert!(
        why.contains(&format!(
            "t.cfg:{line}: environment variable '{UNSET}' is not set"
        )),
        "{why}"
    );
    assert!(
        Arc::ptr_eq(&here.config().model, &before),
        "the node keeps the model it served"
    );
    // Servers and tables come from the layout, not from the local model.
    let o1 = here.server(&sref("other", "o1")).expect("o1");
    assert_eq!((o1.weight, o1.check_enabled), (7, true));
    let o2 = here.server(&sref("other", "o2")).expect("o2");
    assert_eq!(o2.admin, AdminState::Maint);
    assert!(here.server(&sref("app", "s2")).is_none(), "B has no s2");
    assert_eq!(
        here.tables().keys().collect::<Vec<_>>(),
        ["app", "other"],
        "{:?}",
        here.tables()
    );
    assert_eq!(
        here.execute(&Command::SetWeight {
            server: sref("other", "o1"),
            weight: 3,
        }),
        there.execute(&Command::SetWeight {
            server: sref("other", "o1"),
            weight: 3,
        }),
    );
    assert_eq!(here.hash(), there.hash());

    // A config that loads here clears the error.
    here.execute(&load(A, 10)).expect("loads");
    assert_eq!(here.config().local_error, None);
    let a = crate::config::parse(A, "t.cfg").expect("A loads").config;
    assert_eq!(*here.config().model, a, "the model is the new parse");
}

#[test]
fn a_state_whose_config_does_not_load_here_still_decodes_with_the_same_hash() {
    let command =
        Command::load_config_with_env("t.cfg", &elsewhere(), 9, &with_unset).expect("loads there");
    let mut there = loaded(A);
    there.apply_with_env(&command, &with_unset);
    let bytes = crate::codec::encode(&there).expect("encode");
    let here: ClusterState = crate::codec::decode(&bytes).expect("decodes here too");
    assert_eq!(here.hash(), there.hash());
    assert_eq!(here, there);
    let why = here.config().local_error.clone().expect("the reason");
    assert!(
        why.contains(&format!("environment variable '{UNSET}' is not set")),
        "{why}"
    );
    assert!(
        here.config().model.proxies.is_empty(),
        "nothing loaded here before: an empty model"
    );
    assert!(here.server(&sref("other", "o1")).is_some());
    // A decoded state keeps serving what the node served, if it did.
    let mut kept = here.clone();
    let served = there.config().model.clone();
    kept.keep_serving(&served);
    assert!(Arc::ptr_eq(&kept.config().model, &served));
    assert_eq!(kept.hash(), here.hash());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Two nodes, one of which cannot load some of the configs, end in the
    /// same replicated state.
    #[test]
    fn the_environment_does_not_change_the_state(
        commands in proptest::collection::vec(any_command(), 1..40),
    ) {
        let (mut here, mut there) = (loaded(A), loaded(A));
        for c in &commands {
            let ok_here = here.execute(c).is_ok();
            let ok_there = there.validate(c).is_ok();
            if ok_there {
                there.apply_with_env(c, &with_unset);
            }
            prop_assert_eq!(ok_here, ok_there);
        }
        prop_assert_eq!(here.hash(), there.hash());
        prop_assert_eq!(here, there);
    }
}
