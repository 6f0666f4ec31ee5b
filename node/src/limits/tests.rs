use super::*;

/// A pretend process limit: `cap` is the most `set` accepts for the hard
/// limit (what an unprivileged process may not exceed).
struct Fake {
    soft: u64,
    hard: u64,
    cap: u64,
}

impl FdLimit for Fake {
    fn get(&mut self) -> Option<(u64, u64)> {
        Some((self.soft, self.hard))
    }
    fn set(&mut self, soft: u64, hard: u64) -> bool {
        if soft > hard || hard > self.cap {
            return false;
        }
        (self.soft, self.hard) = (soft, hard);
        true
    }
}

#[test]
fn derived_maxconn_uses_the_hard_limit_like_haproxy() {
    // HAProxy 2.6 with `ulimit -n 256:4096` and a few listeners: maxconn
    // (4096 - reserved) / 2, soft limit raised to fit.
    let mut fd = Fake {
        soft: 256,
        hard: 4096,
        cap: 4096,
    };
    let plan = plan(None, 28, &mut fd);
    assert_eq!(plan.maxconn, 2034);
    assert!(plan.derived);
    assert_eq!(plan.lowered_from, None);
    assert_eq!(plan.fd_limit, 4096);
    assert_eq!(plan.raised_from, Some(256));
    assert_eq!(fd.soft, 4096);
}

#[test]
fn configured_maxconn_raises_the_soft_limit_only_as_needed() {
    let mut fd = Fake {
        soft: 1024,
        hard: 4096,
        cap: 4096,
    };
    let plan = plan(Some(1000), 30, &mut fd);
    assert_eq!((plan.maxconn, plan.lowered_from), (1000, None));
    assert_eq!(plan.fd_limit, 2030);
    assert_eq!(plan.raised_from, Some(1024));
}

#[test]
fn configured_maxconn_that_fits_leaves_the_limit_alone() {
    let mut fd = Fake {
        soft: 20_000,
        hard: 20_000,
        cap: 20_000,
    };
    let plan = plan(Some(1000), 30, &mut fd);
    assert_eq!(
        (plan.maxconn, plan.fd_limit, plan.raised_from),
        (1000, 20_000, None)
    );
}

#[test]
fn a_privileged_process_raises_the_hard_limit_too() {
    let mut fd = Fake {
        soft: 1024,
        hard: 1024,
        cap: 1 << 20,
    };
    let plan = plan(Some(5000), 28, &mut fd);
    assert_eq!((plan.maxconn, plan.fd_limit), (5000, 10_028));
    assert_eq!(fd.hard, 10_028);
}

#[test]
fn maxconn_that_cannot_fit_is_lowered_to_the_hard_limit() {
    // `ulimit -n 1024` (soft = hard) and `maxconn 1000`: the old code ran
    // out of descriptors at about 510 clients.
    let mut fd = Fake {
        soft: 1024,
        hard: 1024,
        cap: 1024,
    };
    let plan = plan(Some(1000), 24, &mut fd);
    assert_eq!(plan.maxconn, 500);
    assert_eq!(plan.lowered_from, Some(1000));
    assert_eq!((plan.fd_limit, plan.raised_from), (1024, None));

    // Soft below hard: raised to the hard limit, then lowered to fit it.
    let mut fd = Fake {
        soft: 256,
        hard: 4096,
        cap: 4096,
    };
    let plan = super::plan(Some(1_000_000), 96, &mut fd);
    assert_eq!(plan.maxconn, 2000);
    assert_eq!(plan.lowered_from, Some(1_000_000));
    assert_eq!((plan.fd_limit, plan.raised_from), (4096, Some(256)));
}

#[test]
fn a_tiny_limit_still_gives_a_usable_maxconn() {
    let mut fd = Fake {
        soft: 20,
        hard: 20,
        cap: 20,
    };
    let plan = plan(None, 40, &mut fd);
    assert_eq!(plan.maxconn, 1);
    assert_eq!(plan.lowered_from, Some(100));
}

#[test]
fn unlimited_hard_limit_counts_as_the_soft_one() {
    let mut fd = Fake {
        soft: 4096,
        hard: RLIM_INFINITY,
        cap: RLIM_INFINITY,
    };
    let plan = plan(None, 96, &mut fd);
    assert_eq!(plan.maxconn, 2000);
    assert_eq!(plan.fd_limit, 4096);
}
