use super::*;

#[test]
fn shares_follow_demand_and_sum_to_maxconn() {
    // 7 spread by demand after the minimum of 1 each.
    assert_eq!(shares(10, &[20, 20, 20]), vec![4, 3, 3]);
    assert_eq!(shares(10, &[30, 0, 0]), vec![8, 1, 1]);
    assert_eq!(shares(10, &[0, 30, 10]), vec![1, 6, 3]);
    // 1 each, then 96 split 9.6 / 19.2 / 28.8 / 38.4 by largest remainder.
    assert_eq!(shares(100, &[1, 2, 3, 4]), vec![11, 20, 30, 39]);
    for demands in [
        &[5u32, 7, 11][..],
        &[1, 1],
        &[0, 0, 0, 9],
        &[u32::MAX, u32::MAX],
    ] {
        let s = shares(10, demands);
        assert_eq!(s.iter().sum::<u32>(), 10, "{demands:?} -> {s:?}");
        assert!(s.iter().all(|&x| x >= 1), "{demands:?} -> {s:?}");
    }
}

#[test]
fn nobody_wanting_anything_splits_evenly_lower_ids_first() {
    assert_eq!(shares(10, &[0, 0, 0]), vec![4, 3, 3]);
    assert_eq!(shares(11, &[0, 0, 0]), vec![4, 4, 3]);
}

#[test]
fn every_node_gets_at_least_one_even_over_maxconn() {
    // Fewer slots than nodes: each still gets 1 (the stated overshoot).
    assert_eq!(shares(2, &[9, 0, 0]), vec![1, 1, 1]);
    assert_eq!(shares(3, &[9, 0, 0]), vec![1, 1, 1]);
    assert_eq!(shares(4, &[9, 0, 0]), vec![2, 1, 1]);
}

#[test]
fn one_node_alone_keeps_the_whole_maxconn() {
    assert_eq!(shares(10, &[0]), vec![10]);
    assert_eq!(shares(10, &[3]), vec![10]);
    assert!(shares(10, &[]).is_empty());
}

#[test]
fn every_node_computing_from_the_same_reports_agrees() {
    // Each node computes only its own entry; with the same inputs in the
    // same (node id) order, the entries sum to maxconn.
    let demands = [13, 13, 13, 5];
    let mine: u32 = (0..demands.len()).map(|i| shares(20, &demands)[i]).sum();
    assert_eq!(mine, 20);
}

#[test]
fn a_limit_shrinks_at_once_and_grows_only_into_free_room() {
    // Shrinks to the target whatever the others hold.
    assert_eq!(next_limit(10, 3, Some(8), 9, 3), 3);
    // Grows by a third of the free room (10 - 6 held - 2 own = 2 free: 1).
    assert_eq!(next_limit(10, 8, Some(2), 6, 3), 3);
    // ... and by no more than the target.
    assert_eq!(next_limit(10, 4, Some(2), 0, 3), 4);
    assert_eq!(next_limit(10, 9, Some(2), 0, 3), 4);
    // No free room: stays, even below its share.
    assert_eq!(next_limit(10, 8, Some(2), 8, 3), 2);
    assert_eq!(next_limit(10, 8, Some(2), 25, 3), 2);
    // First round: the target, within what the others leave.
    assert_eq!(next_limit(10, 4, None, 3, 3), 4);
    assert_eq!(next_limit(10, 4, None, 8, 3), 2);
    assert_eq!(next_limit(10, 4, None, 12, 3), 0);
}

#[test]
fn nodes_growing_in_the_same_round_overshoot_by_at_most_nodes_minus_one() {
    // Three nodes at 1 each, all wanting 8, each seeing the others at 1.
    let grown: u32 = (0..3).map(|_| next_limit(10, 8, Some(1), 2, 3)).sum();
    assert!(grown <= 10, "{grown}");
    // One slot free: each takes it before seeing the others do.
    let grown: u32 = (0..3).map(|_| next_limit(10, 8, Some(3), 6, 3)).sum();
    assert_eq!(grown, 10 + 2);
}

fn load(in_flight: u32) -> ServerLoad {
    ServerLoad {
        in_flight,
        demand: in_flight,
        limit: NO_LIMIT,
    }
}

#[test]
fn reports_fill_parts_drop_late_rounds_and_ignore_foreign_indices() {
    let mut peers = HashMap::new();
    let part = |seq, first, servers: Vec<ServerLoad>| LoadReport {
        from: 2,
        seq,
        layout: 7,
        first,
        servers,
    };
    let now = Instant::now();
    receive(&mut peers, 2, part(5, 1, vec![load(3)]), 4, now);
    assert_eq!(peers[&2].servers, vec![ServerLoad::default(), load(3)]);
    receive(&mut peers, 2, part(5, 0, vec![load(1)]), 4, now);
    assert_eq!(peers[&2].servers, vec![load(1), load(3)]);
    // A late part of an older round changes nothing.
    receive(&mut peers, 2, part(4, 0, vec![load(9)]), 4, now);
    assert_eq!(peers[&2].servers[0], load(1));
    // Past our servers (or a hostile index): ignored, nothing allocated.
    receive(&mut peers, 2, part(6, u32::MAX, vec![load(9)]), 4, now);
    receive(&mut peers, 2, part(6, 3, vec![load(9), load(9)]), 4, now);
    assert_eq!(peers[&2].servers.len(), 2);
    assert_eq!(peers[&2].seq, 5);
}

#[test]
fn a_silent_peer_or_one_with_other_servers_stops_counting() {
    let heard = Instant::now();
    let peer = Peer {
        live: true,
        seq: 1,
        layout: 7,
        heard,
        servers: vec![load(5)],
    };
    assert!(peer.counts(heard + Duration::from_millis(100), 7));
    assert!(peer.counts(heard + TIMEOUT - Duration::from_millis(1), 7));
    assert!(!peer.counts(heard + TIMEOUT, 7), "silent for the timeout");
    assert!(!peer.counts(heard, 8), "another server layout");
}

#[test]
fn a_restarted_peer_is_heard_again_after_its_silence() {
    let mut peers = HashMap::new();
    let part = |seq| LoadReport {
        from: 2,
        seq,
        layout: 7,
        first: 0,
        servers: vec![load(seq as u32)],
    };
    let now = Instant::now();
    receive(&mut peers, 2, part(100), 1, now);
    // Lower rounds within the timeout: late datagrams.
    receive(&mut peers, 2, part(1), 1, now + Duration::from_millis(100));
    assert_eq!(peers[&2].servers, vec![load(100)]);
    // After a silence as long as the timeout: a restart, taken.
    receive(&mut peers, 2, part(1), 1, now + TIMEOUT);
    assert_eq!(peers[&2].servers, vec![load(1)]);
    assert_eq!(peers[&2].seq, 1);
}
