//! The cluster health verdict: the `cluster-health` rules, ties, forgotten
//! nodes, repeated reports, and determinism.

use super::*;
use crate::command::Command;
use crate::config::HealthRule;
use proptest::prelude::*;

/// One backend with one checked server, under `rule` (none: the default).
fn cluster(rule: Option<&str>) -> ClusterState {
    let line = rule.map_or(String::new(), |r| format!("    cluster-health {r}\n"));
    let text =
        format!("defaults\n    mode http\nbackend app\n{line}    server s1 127.0.0.1:8001 check\n");
    let mut s = ClusterState::default();
    s.execute(&Command::load_config("t.cfg", &text, 1).expect("loads"))
        .expect("valid");
    s
}

fn s1() -> ServerRef {
    ServerRef::new("app", "s1")
}

fn observe(node: NodeId, up: bool, at: Millis) -> Command {
    Command::ReportObservation {
        server: s1(),
        node,
        up,
        reason: if up {
            "Layer4 check passed".into()
        } else {
            "Layer4 connection problem, info: \"Connection refused\"".into()
        },
        at,
    }
}

/// Apply `reports` (node, up) in order; the verdict after each.
fn verdicts(rule: Option<&str>, reports: &[(NodeId, bool)]) -> Vec<bool> {
    let mut s = cluster(rule);
    reports
        .iter()
        .enumerate()
        .map(|(i, &(node, up))| {
            s.execute(&observe(node, up, 10 + i as u64)).expect("valid");
            let st = s.server(&s1()).expect("s1");
            assert_eq!(
                st.op == OpState::Up,
                st.verdict_up,
                "op follows the verdict"
            );
            st.verdict_up
        })
        .collect()
}

#[test]
fn the_rule_is_read_inherited_and_defaults_to_majority() {
    let rule = |s: &ClusterState| s.config().layout.backend("app").map(|b| b.health_rule);
    assert_eq!(rule(&cluster(None)), Some(HealthRule::Majority));
    assert_eq!(rule(&cluster(Some("any"))), Some(HealthRule::Any));
    assert_eq!(rule(&cluster(Some("all"))), Some(HealthRule::All));
    let text = "defaults\n    cluster-health all\nbackend app\n    server s1 127.0.0.1:1 check\n";
    let parsed = crate::config::parse(text, "t.cfg").expect("loads");
    assert_eq!(
        parsed.config.proxies[0].cluster_health,
        Some(HealthRule::All)
    );
    let printed = crate::config::print(&parsed.config);
    assert!(printed.contains("cluster-health all"), "{printed}");
    let errors = crate::config::parse("backend app\n    cluster-health most\n", "t.cfg")
        .expect_err("a rule that does not exist");
    assert_eq!(
        errors[0].to_string(),
        "t.cfg:2: 'cluster-health' expects any, majority or all, got 'most'"
    );
    let errors = crate::config::parse(
        "frontend f\n    bind :80\n    cluster-health any\n",
        "t.cfg",
    )
    .expect_err("not in a frontend");
    assert_eq!(
        errors[0].to_string(),
        "t.cfg:3: 'cluster-health' is not allowed in 'frontend' section"
    );
}

#[test]
fn majority_needs_more_than_half_and_a_tie_keeps_the_verdict() {
    // Three nodes report UP, then DOWN one by one, then UP again.
    let seq = [
        (1, true),
        (2, true),
        (3, true),
        (1, false),
        (2, false),
        (3, false),
        (1, true),
        (2, true),
    ];
    assert_eq!(
        verdicts(None, &seq),
        [true, true, true, true, false, false, false, true]
    );
    // Two reporters, one each way: a tie keeps what was.
    assert_eq!(verdicts(None, &[(1, true), (2, false)]), [true, true]);
    assert_eq!(
        verdicts(None, &[(1, false), (2, false), (1, true)]),
        [false, false, false]
    );
}

#[test]
fn any_takes_the_server_at_the_first_down_and_all_at_the_last() {
    let seq = [
        (1, true),
        (2, true),
        (3, true),
        (3, false),
        (2, false),
        (1, false),
        (3, true),
    ];
    assert_eq!(
        verdicts(Some("any"), &seq),
        [true, true, true, false, false, false, false]
    );
    assert_eq!(
        verdicts(Some("all"), &seq),
        [true, true, true, true, true, false, true]
    );
}

#[test]
fn standalone_every_rule_agrees() {
    let seq = [(0, false), (0, true), (0, false)];
    for rule in [None, Some("any"), Some("all")] {
        assert_eq!(verdicts(rule, &seq), [false, true, false], "{rule:?}");
    }
}

#[test]
fn a_repeated_report_changes_nothing() {
    let mut s = cluster(None);
    s.execute(&observe(1, false, 10)).expect("valid");
    let before = s.clone();
    let applied = s.execute(&observe(1, false, 20)).expect("valid");
    assert_eq!(applied, Applied::default(), "no rebuild, no effect");
    assert_eq!(s, before, "the first report and its time stay");
}

#[test]
fn a_verdict_change_is_one_effect_that_says_who_saw_what() {
    let mut s = cluster(None);
    s.execute(&observe(2, true, 10)).expect("valid");
    s.execute(&observe(1, false, 11)).expect("valid");
    let applied = s.execute(&observe(3, false, 12)).expect("valid");
    let verdicts: Vec<&Effect> = applied
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Verdict { .. }))
        .collect();
    assert_eq!(
        verdicts,
        [&Effect::Verdict {
            server: s1(),
            up: false,
            detail: "nodes 1 and 3 report DOWN, node 2 UP; rule majority".into(),
        }]
    );
    let report = &s.server(&s1()).expect("s1").reports[&1];
    assert_eq!(
        (report.up, report.at, report.reason.as_str()),
        (
            false,
            11,
            "Layer4 connection problem, info: \"Connection refused\""
        )
    );
}

#[test]
fn a_forgotten_node_stops_counting() {
    let mut s = cluster(None);
    // Nodes 1 and 2 say DOWN, node 3 UP: DOWN. Node 1 leaves: a tie
    // between 2 and 3 keeps DOWN; node 2 leaves too: node 3 alone, UP.
    for (node, up) in [(1, false), (2, false), (3, true)] {
        s.execute(&observe(node, up, 10)).expect("valid");
    }
    assert!(!s.server(&s1()).expect("s1").verdict_up);
    s.execute(&Command::ForgetNode { node: 1, at: 20 })
        .expect("valid");
    let st = s.server(&s1()).expect("s1");
    assert!(!st.verdict_up && !st.reports.contains_key(&1));
    let applied = s
        .execute(&Command::ForgetNode { node: 2, at: 30 })
        .expect("valid");
    let st = s.server(&s1()).expect("s1");
    assert_eq!(
        (st.verdict_up, st.op, st.last_change),
        (true, OpState::Up, 30)
    );
    assert!(applied.routing);
    assert!(applied.effects.iter().any(|e| matches!(
        e,
        Effect::Verdict { up: true, detail, .. } if detail == "node 3 reports UP; rule majority"
    )));
    // Forgetting a node that never reported changes nothing.
    let before = s.clone();
    assert_eq!(
        s.execute(&Command::ForgetNode { node: 9, at: 40 })
            .expect("valid"),
        Applied::default()
    );
    assert_eq!(s, before);
}

#[test]
fn a_long_reason_is_cut() {
    let mut s = cluster(None);
    s.execute(&Command::ReportObservation {
        server: s1(),
        node: 1,
        up: false,
        reason: "é".repeat(1000),
        at: 5,
    })
    .expect("valid");
    let reason = &s.server(&s1()).expect("s1").reports[&1].reason;
    assert!(reason.len() <= 256 && reason.chars().all(|c| c == 'é'));
}

/// The rule as a function of the reports alone (the reference the state
/// machine must match whenever the rule decides).
fn reference(rule: HealthRule, reports: &BTreeMap<NodeId, bool>) -> Option<bool> {
    let up = reports.values().filter(|u| **u).count();
    let down = reports.len() - up;
    if reports.is_empty() {
        return None;
    }
    match rule {
        HealthRule::Any => Some(down == 0),
        HealthRule::All => Some(up > 0),
        HealthRule::Majority => (up != down).then_some(up > down),
    }
}

#[derive(Debug, Clone)]
enum Step {
    Report(NodeId, bool),
    Forget(NodeId),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u64..5, any::<bool>()).prop_map(|(n, up)| Step::Report(n, up)),
        1 => (0u64..5).prop_map(Step::Forget),
    ]
}

proptest! {
    /// Any sequence of reports and removals, under any rule: the verdict
    /// is what the rule says of the remaining reports (or what it was,
    /// where the rule leaves it), op follows it, and two nodes applying
    /// the same log end in the same state.
    #[test]
    fn verdicts_follow_the_rule_deterministically(
        rule in prop_oneof![Just("any"), Just("majority"), Just("all")],
        steps in proptest::collection::vec(step(), 0..40),
    ) {
        let (mut a, mut b) = (cluster(Some(rule)), cluster(Some(rule)));
        let parsed = a.config().layout.backend("app").map(|x| x.health_rule);
        let rule = parsed.expect("app");
        let mut model: BTreeMap<NodeId, bool> = BTreeMap::new();
        let mut expected = true;
        for (i, step) in steps.iter().enumerate() {
            let at = 10 + i as u64;
            let command = match *step {
                Step::Report(node, up) => {
                    model.insert(node, up);
                    observe(node, up, at)
                }
                Step::Forget(node) => {
                    model.remove(&node);
                    Command::ForgetNode { node, at }
                }
            };
            a.execute(&command).expect("valid");
            b.execute(&command).expect("valid");
            if let Some(v) = reference(rule, &model) {
                expected = v;
            }
            let st = a.server(&s1()).expect("s1");
            prop_assert_eq!(st.verdict_up, expected);
            prop_assert_eq!(st.op == OpState::Up, expected);
            let reported: BTreeMap<NodeId, bool> =
                st.reports.iter().map(|(n, r)| (*n, r.up)).collect();
            prop_assert_eq!(&reported, &model);
        }
        prop_assert_eq!(a.hash(), b.hash());
    }
}

/// A restore that forgets nodes drops their reports and derives the
/// verdicts again in the same apply, exactly as the restore followed by a
/// `ForgetNode` each did; the older restore (without the nodes to forget),
/// still in old logs, applies as a restore that forgets nobody.
#[test]
fn a_restore_forgets_non_members_in_the_same_step() {
    let mut backup = cluster(None);
    for (node, up) in [(1, false), (2, false), (3, true)] {
        backup.execute(&observe(node, up, 10)).expect("valid");
    }
    assert!(!backup.server(&s1()).expect("s1").verdict_up);
    let forget: std::collections::BTreeSet<NodeId> = [1, 2].into();
    let mut one_step = ClusterState::default();
    let restore = Command::restore(backup.clone(), forget, 30).expect("loads here");
    let applied = one_step.execute(&restore).expect("valid");
    assert_eq!(applied.effects.first(), Some(&Effect::Restored));
    assert!(applied.effects.iter().any(|e| matches!(
        e,
        Effect::Verdict { up: true, detail, .. } if detail == "node 3 reports UP; rule majority"
    )));
    let mut steps = ClusterState::default();
    steps
        .execute(&Command::RestoreState {
            state: Box::new(backup.clone()),
        })
        .expect("valid");
    assert_eq!(steps, backup, "the older restore forgets nobody");
    for node in [1, 2] {
        steps
            .execute(&Command::ForgetNode { node, at: 30 })
            .expect("valid");
    }
    assert_eq!(one_step, steps);
    assert_eq!(one_step.hash(), steps.hash());
    let st = one_step.server(&s1()).expect("s1");
    assert_eq!(st.reports.keys().copied().collect::<Vec<_>>(), [3]);
    assert!(st.verdict_up);
}

/// Commands are decoded by variant position: the older restore keeps the
/// place `Restore { state }` had, so logs written before still decode.
#[test]
fn the_older_restore_keeps_its_place_in_the_codec() {
    let state = Box::new(ClusterState::default());
    let old = crate::codec::encode(&Command::RestoreState { state }).expect("encodes");
    assert_eq!(old[0], 14, "RestoreState is variant 14, as Restore was");
    let back: Command = crate::codec::decode(&old).expect("decodes");
    assert!(matches!(back, Command::RestoreState { .. }));
}
