//! Balancer tests. Distribution numbers are printed (`--nocapture`) and
//! asserted.

use super::{Balancer, Slot};
use shoal_proto::config::{Balance, HashType};
use std::cell::Cell;

fn slots(weights: &[u32]) -> Vec<Slot> {
    weights
        .iter()
        .enumerate()
        .map(|(id, &weight)| Slot { id, weight })
        .collect()
}

fn build(balance: Balance, hash_type: HashType, weights: &[u32]) -> Balancer {
    Balancer::new(&balance, hash_type, slots(weights))
}

fn idle(_: usize) -> u32 {
    0
}

fn none(_: usize) -> bool {
    false
}

fn all_algorithms() -> Vec<(Balance, HashType)> {
    vec![
        (Balance::RoundRobin, HashType::MapBased),
        (Balance::StaticRr, HashType::MapBased),
        (Balance::LeastConn, HashType::MapBased),
        (Balance::First, HashType::MapBased),
        (Balance::Source, HashType::MapBased),
        (Balance::Source, HashType::Consistent),
        (Balance::Uri { whole: false }, HashType::MapBased),
        (Balance::Hdr("host".into()), HashType::Consistent),
        (Balance::Random { draws: 2 }, HashType::MapBased),
    ]
}

/// The key of test request `i`, as the bytes of an IPv4 source address.
fn key(i: u32) -> [u8; 4] {
    (0x0a00_0000 + i).to_be_bytes()
}

/// Picks `n` times with no key, idle servers and nothing skipped; returns
/// how often each of `servers` ids was chosen.
fn counts(b: &Balancer, servers: usize, n: usize) -> Vec<usize> {
    let mut c = vec![0; servers];
    for _ in 0..n {
        let id = b.pick(None, &idle, &none).expect("a server");
        c[id] += 1;
    }
    c
}

#[test]
fn weighted_round_robin_shares() {
    for balance in [Balance::RoundRobin, Balance::StaticRr] {
        let b = build(balance.clone(), HashType::MapBased, &[200, 100, 50]);
        let c = counts(&b, 3, 7000);
        let expected = [4.0 / 7.0, 2.0 / 7.0, 1.0 / 7.0];
        let shares: Vec<f64> = c.iter().map(|&x| x as f64 / 7000.0).collect();
        println!("{balance:?} 200:100:50 over 7000 picks: counts {c:?}, shares {shares:.4?}");
        for (share, want) in shares.iter().zip(expected) {
            assert!(
                (share - want).abs() <= 0.02 * want,
                "{balance:?}: share {share} vs {want}"
            );
        }
    }
}

#[test]
fn round_robin_interleaves() {
    // Smooth round robin spreads the heavy server: nginx's example, 5:1:1
    // gives a a b a c a a, not a a a a a b c.
    let b = build(Balance::RoundRobin, HashType::MapBased, &[5, 1, 1]);
    let seq: Vec<usize> = (0..14)
        .map(|_| b.pick(None, &idle, &none).expect("a server"))
        .collect();
    println!("roundrobin 5:1:1 sequence: {seq:?}");
    assert_eq!(seq[..7], [0, 0, 1, 0, 2, 0, 0]);
    assert_eq!(seq[..7], seq[7..]);
    let s = build(Balance::StaticRr, HashType::MapBased, &[4, 2, 1]);
    let seq: Vec<usize> = (0..7)
        .map(|_| s.pick(None, &idle, &none).expect("a server"))
        .collect();
    println!("static-rr 4:2:1 cycle: {seq:?}");
    assert_eq!(seq, vec![0, 1, 0, 2, 0, 1, 0]);
}

#[test]
fn round_robin_never_repeats_with_equal_weights() {
    for n in [2usize, 3, 5, 8] {
        for balance in [Balance::RoundRobin, Balance::StaticRr] {
            let b = build(balance.clone(), HashType::MapBased, &vec![7; n]);
            let seq: Vec<usize> = (0..1000)
                .map(|_| b.pick(None, &idle, &none).expect("a server"))
                .collect();
            assert!(
                seq.windows(2).all(|w| w[0] != w[1]),
                "{balance:?} with {n} servers repeated"
            );
            let c = counts(&b, n, 1000 * n);
            assert!(c.iter().all(|&x| x == 1000), "{balance:?}: {c:?}");
        }
    }
}

/// Fraction of `keys` whose server differs between `a` and `b`.
fn moved(a: &Balancer, b: &Balancer, keys: u32) -> f64 {
    let changed = (0..keys)
        .filter(|&i| {
            let k = key(i);
            a.pick(Some(&k), &idle, &none) != b.pick(Some(&k), &idle, &none)
        })
        .count();
    changed as f64 / f64::from(keys)
}

/// Largest relative deviation from the mean of the per-server key counts.
fn max_deviation(b: &Balancer, servers: usize, keys: u32) -> f64 {
    let mut c = vec![0u32; servers];
    for i in 0..keys {
        let k = key(i);
        c[b.pick(Some(&k), &idle, &none).expect("a server")] += 1;
    }
    let mean = f64::from(keys) / servers as f64;
    c.iter()
        .map(|&x| (f64::from(x) - mean).abs() / mean)
        .fold(0.0, f64::max)
}

#[test]
fn consistent_hash_moves_few_keys_and_spreads_evenly() {
    const KEYS: u32 = 100_000;
    const N: usize = 10;
    let limit = 1.0 / N as f64 + 0.02;
    let ten = build(Balance::Source, HashType::Consistent, &[1; N]);
    let nine = build(Balance::Source, HashType::Consistent, &[1; N - 1]);
    let eleven = build(Balance::Source, HashType::Consistent, &[1; N + 1]);
    // Removing a server from the middle (not just the last id).
    let without_3 = Balancer::new(
        &Balance::Source,
        HashType::Consistent,
        slots(&[1; N]).into_iter().filter(|s| s.id != 3).collect(),
    );

    let removed_last = moved(&ten, &nine, KEYS);
    let removed_mid = moved(&ten, &without_3, KEYS);
    let added = moved(&ten, &eleven, KEYS);
    let dev = max_deviation(&ten, N, KEYS);
    println!(
        "consistent (maglev), {KEYS} keys, N={N}: moved on remove {removed_last:.4} / \
         {removed_mid:.4} (mid), on add {added:.4}, limit {limit:.4}; \
         max load deviation {dev:.4}"
    );
    assert!(removed_last <= limit);
    assert!(removed_mid <= limit);
    assert!(added <= limit);
    assert!(dev <= 0.10);

    // Only the removed server's keys have to move; Maglev moves a few more
    // (keys whose server survived). Measure that extra disruption.
    let extra = (0..KEYS)
        .filter(|&i| {
            let k = key(i);
            let before = ten.pick(Some(&k), &idle, &none);
            before != Some(3) && before != without_3.pick(Some(&k), &idle, &none)
        })
        .count() as f64
        / f64::from(KEYS);
    println!("consistent (maglev): keys moved between surviving servers {extra:.4}");
    assert!(extra <= 0.02);
}

#[test]
fn consistent_hash_respects_weights() {
    let b = build(Balance::Source, HashType::Consistent, &[3, 1]);
    let mut c = [0u32; 2];
    for i in 0..100_000 {
        let k = key(i);
        c[b.pick(Some(&k), &idle, &none).expect("a server")] += 1;
    }
    let share = f64::from(c[0]) / 100_000.0;
    println!("consistent 3:1 shares: {c:?} ({share:.4} for weight 3)");
    assert!((share - 0.75).abs() <= 0.02);
}

#[test]
fn map_based_hash_is_stable_and_even() {
    const KEYS: u32 = 100_000;
    let a = build(Balance::Source, HashType::MapBased, &[1; 10]);
    // Same servers, built again and listed in another order.
    let mut reversed = slots(&[1; 10]);
    reversed.reverse();
    let b = Balancer::new(&Balance::Source, HashType::MapBased, reversed);
    assert_eq!(moved(&a, &b, KEYS), 0.0);
    let dev = max_deviation(&a, 10, KEYS);
    println!("map-based, {KEYS} keys, N=10: max load deviation {dev:.4}");
    assert!(dev <= 0.10);

    let w = build(
        Balance::Uri { whole: false },
        HashType::MapBased,
        &[200, 100, 50],
    );
    let mut c = [0u32; 3];
    for i in 0..70_000 {
        let k = format!("/item/{i}");
        c[w.pick(Some(k.as_bytes()), &idle, &none).expect("a server")] += 1;
    }
    println!("map-based 200:100:50 over 70000 keys: {c:?}");
    for (got, want) in c.iter().zip([40_000.0, 20_000.0, 10_000.0]) {
        assert!((f64::from(*got) - want).abs() <= 0.02 * want);
    }
}

#[test]
fn hash_skip_moves_to_a_stable_next_candidate() {
    for hash_type in [HashType::MapBased, HashType::Consistent] {
        let b = build(Balance::Source, hash_type, &[1; 5]);
        for i in 0..1000 {
            let k = key(i);
            let own = b.pick(Some(&k), &idle, &none).expect("a server");
            let skip_own = |id: usize| id == own;
            let next = b.pick(Some(&k), &idle, &skip_own).expect("a server");
            assert_ne!(next, own);
            assert_eq!(Some(next), b.pick(Some(&k), &idle, &skip_own));
        }
        let all = |_: usize| true;
        assert_eq!(b.pick(Some(&key(1)), &idle, &all), None);
    }
}

#[test]
fn hash_without_key_falls_back_to_round_robin() {
    for hash_type in [HashType::MapBased, HashType::Consistent] {
        let b = build(Balance::Hdr("x-user".into()), hash_type, &[1; 4]);
        let seq: Vec<usize> = (0..8)
            .map(|_| b.pick(None, &idle, &none).expect("a server"))
            .collect();
        println!("{hash_type:?} hash, no key: {seq:?}");
        assert_eq!(seq, vec![0, 1, 2, 3, 0, 1, 2, 3]);
    }
}

#[test]
fn leastconn_picks_least_loaded_by_weight() {
    let b = build(Balance::LeastConn, HashType::MapBased, &[1, 1, 1]);
    let load = |id: usize| [5, 2, 9][id];
    for _ in 0..10 {
        assert_eq!(b.pick(None, &load, &none), Some(1));
    }
    // HAProxy's ratio counts the request being placed: (load + 1) / weight.
    // 8 in flight on weight 4 (9/4) beats 3 on weight 1 (4/1).
    let w = build(Balance::LeastConn, HashType::MapBased, &[4, 1]);
    let load = |id: usize| [8, 3][id];
    assert_eq!(w.pick(None, &load, &none), Some(0));
    // 12 on weight 4 (13/4) loses to 2 on weight 1 (3/1).
    let load = |id: usize| [12, 2][id];
    assert_eq!(w.pick(None, &load, &none), Some(1));
    // Between idle servers the heavier one is preferred (1/4 < 1/1).
    let load = |_: usize| 0;
    assert_eq!(w.pick(None, &load, &none), Some(0));

    // Simulated long-lived connections: weights 3:1 end up holding load 3:1.
    let held = [Cell::new(0u32), Cell::new(0u32)];
    let w = build(Balance::LeastConn, HashType::MapBased, &[3, 1]);
    for _ in 0..400 {
        let id = w.pick(None, &|id| held[id].get(), &none).expect("a server");
        held[id].set(held[id].get() + 1);
    }
    println!(
        "leastconn 3:1 holding: {} / {}",
        held[0].get(),
        held[1].get()
    );
    assert_eq!((held[0].get(), held[1].get()), (300, 100));
}

#[test]
fn leastconn_shares_ties() {
    let b = build(Balance::LeastConn, HashType::MapBased, &[1, 1, 1]);
    let c = counts(&b, 3, 300);
    println!("leastconn idle ties over 300 picks: {c:?}");
    assert_eq!(c, vec![100, 100, 100]);
}

#[test]
fn first_fills_in_order() {
    const MAXCONN: u32 = 3;
    // Slots listed out of order: `first` goes by id, not by list position.
    let b = Balancer::new(
        &Balance::First,
        HashType::MapBased,
        vec![
            Slot { id: 2, weight: 1 },
            Slot { id: 0, weight: 1 },
            Slot { id: 1, weight: 1 },
        ],
    );
    let held = [Cell::new(0u32), Cell::new(0u32), Cell::new(0u32)];
    let full = |id: usize| held[id].get() >= MAXCONN;
    let mut order = Vec::new();
    for _ in 0..9 {
        let id = b.pick(None, &|id| held[id].get(), &full).expect("a server");
        held[id].set(held[id].get() + 1);
        order.push(id);
    }
    println!("first, maxconn {MAXCONN}: {order:?}");
    assert_eq!(order, vec![0, 0, 0, 1, 1, 1, 2, 2, 2]);
    assert_eq!(b.pick(None, &idle, &full), None);
    // A connection closes on server 0: it is first again.
    held[0].set(2);
    assert_eq!(b.pick(None, &idle, &full), Some(0));
}

#[test]
fn random_two_choices_prefers_less_loaded() {
    let b = build(Balance::Random { draws: 2 }, HashType::MapBased, &[1; 10]);
    let load = |id: usize| if id == 0 { 50 } else { 1 };
    let c: Vec<usize> = {
        let mut c = vec![0; 10];
        for _ in 0..20_000 {
            c[b.pick(None, &load, &none).expect("a server")] += 1;
        }
        c
    };
    let busy = c[0] as f64 / 20_000.0;
    println!("random(2), server 0 busy: counts {c:?}, busy share {busy:.4} (uniform 0.1)");
    // Only chosen when both draws hit it: 1 %.
    assert!(busy < 0.03);
    // The idle ones still share the rest evenly.
    assert!(c[1..].iter().all(|&x| (1600..=2800).contains(&x)));

    // Weights drive the draws: idle 3:1 gives about 3:1 with one draw.
    let w = build(Balance::Random { draws: 1 }, HashType::MapBased, &[3, 1]);
    let c = counts(&w, 2, 40_000);
    let share = c[0] as f64 / 40_000.0;
    println!("random(1) 3:1 shares: {c:?} ({share:.4})");
    assert!((share - 0.75).abs() < 0.02);
}

#[test]
fn huge_random_draw_counts_stay_cheap() {
    // `balance random(4294967295)` used to draw 4 billion times per pick
    // (12 s of CPU per request); draws are capped at the server count.
    let b = build(
        Balance::Random { draws: u32::MAX },
        HashType::MapBased,
        &[1, 1, 1, 1],
    );
    let load = |id: usize| if id == 2 { 0 } else { 5 };
    let started = std::time::Instant::now();
    let mut least = 0;
    for _ in 0..1000 {
        if b.pick(None, &load, &none) == Some(2) {
            least += 1;
        }
    }
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(2),
        "1000 picks took {took:?}"
    );
    // Four draws over four servers still find the idle one most of the
    // time (1 - (3/4)^4 = 68 %).
    assert!(least > 550, "least loaded picked {least}/1000");
    // Every server skipped but one: that one, at once.
    let only = |id: usize| id != 3;
    assert_eq!(b.pick(None, &load, &only), Some(3));
}

#[test]
fn skip_is_honoured_by_every_algorithm() {
    for (balance, hash_type) in all_algorithms() {
        let b = build(balance.clone(), hash_type, &[1, 2, 3, 4, 5]);
        let skip = |id: usize| id == 0 || id == 3 || id == 4;
        let mut seen = [false; 5];
        for i in 0..500 {
            let k = key(i);
            let id = b.pick(Some(&k), &idle, &skip).expect("a server");
            assert!(!skip(id), "{balance:?} picked skipped {id}");
            seen[id] = true;
        }
        match balance {
            Balance::First => {}
            // Idle servers: leastconn prefers the heavier (weight 3, id 2).
            Balance::LeastConn => assert!(seen[2] && !seen[1], "{balance:?}: {seen:?}"),
            _ => assert!(seen[1] && seen[2], "{balance:?} did not share: {seen:?}"),
        }
        let all = |_: usize| true;
        assert_eq!(b.pick(Some(&key(7)), &idle, &all), None, "{balance:?}");
        assert_eq!(b.pick(None, &idle, &all), None, "{balance:?}");
    }
}

#[test]
fn empty_and_zero_weight() {
    for (balance, hash_type) in all_algorithms() {
        let empty = build(balance.clone(), hash_type, &[]);
        assert!(empty.is_empty());
        assert_eq!(empty.pick(Some(b"k"), &idle, &none), None);
        assert_eq!(empty.pick(None, &idle, &none), None);

        let zero = build(balance.clone(), hash_type, &[0, 0]);
        assert!(zero.is_empty(), "{balance:?}");

        let b = build(balance.clone(), hash_type, &[0, 1, 0]);
        assert!(!b.is_empty());
        for i in 0..200 {
            let k = key(i);
            assert_eq!(b.pick(Some(&k), &idle, &none), Some(1), "{balance:?}");
            assert_eq!(b.pick(None, &idle, &none), Some(1), "{balance:?}");
        }
    }
}
