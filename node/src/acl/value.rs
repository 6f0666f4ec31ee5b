//! Address and integer ACL values, and HAProxy's casts from text to them.

use super::AclError;
use std::net::IpAddr;

/// An address network in IPv6 space; IPv4 lives at `::ffff:a.b.c.d`, so a
/// v4 sample matches v4 networks and a v4-mapped v6 sample does too.
#[derive(Debug, Clone, Copy)]
pub(super) struct Net {
    addr: u128,
    mask: u128,
}

impl Net {
    /// True if `ip` lies in this network.
    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        (ip_bits(ip) ^ self.addr) & self.mask == 0
    }
}

/// An inclusive integer range; `None` is unbounded.
#[derive(Debug, Clone, Copy)]
pub(super) struct IntRange {
    min: Option<i64>,
    max: Option<i64>,
}

impl IntRange {
    /// True if `n` lies in the range.
    pub(super) fn contains(&self, n: i64) -> bool {
        !matches!(self.min, Some(m) if n < m) && !matches!(self.max, Some(m) if n > m)
    }
}

/// `a.b.c.d`, `a.b.c.d/len`, `a.b.c.d/m.m.m.m`, `v6`, `v6/len`.
pub(super) fn parse_net(v: &str) -> Option<Net> {
    let (addr, mask) = match v.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (v, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let host_bits = match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    let mask: u128 = match (ip, mask) {
        (_, None) => u128::MAX,
        (IpAddr::V4(_), Some(m)) if m.contains('.') => {
            // Dotted masks, as HAProxy accepts; any bit pattern works with
            // the masked comparison.
            let m: std::net::Ipv4Addr = m.parse().ok()?;
            (u128::MAX << 32) | u128::from(u32::from(m))
        }
        (_, Some(m)) => {
            let len: u32 = m.parse().ok()?;
            if len > host_bits {
                return None;
            }
            // Prefix within the address family, then widen to v6 space.
            let prefix = 128 - host_bits + len;
            u128::MAX.checked_shl(128 - prefix).unwrap_or(0)
        }
    };
    Some(Net {
        addr: ip_bits(ip) & mask,
        mask,
    })
}

fn ip_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A header or path value used as an address: `a.b.c.d`, `v6`, and the
/// forms with a port, `a.b.c.d:p` and `[v6]:p`.
pub(super) fn text_to_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, _port) = s.split_once(':')?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// HAProxy's string-to-integer cast: the leading decimal digits; fails when
/// there are none.
pub(super) fn text_to_int(s: &str) -> Option<i64> {
    let digits = s.bytes().take_while(u8::is_ascii_digit);
    let mut n: i64 = 0;
    let mut any = false;
    for d in digits {
        any = true;
        n = n.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    any.then_some(n)
}

/// Integer values: `N`, `A:B` or `A-B`, `:B`, `A:`, and an operator word
/// (`eq`, `gt`, `ge`, `lt`, `le`) that applies to the numbers after it. A
/// value may also hold several words (`"gt 5"`).
pub(super) fn parse_ints(
    values: &[String],
    label: &dyn Fn() -> String,
) -> Result<Box<[IntRange]>, AclError> {
    let bad = |value: &str, why| AclError::BadValue {
        acl: label(),
        value: value.to_owned(),
        why,
    };
    let mut op = "eq";
    let mut pending_op = false;
    let mut ranges = Vec::new();
    for word in values.iter().flat_map(|v| v.split_whitespace()) {
        if matches!(word, "eq" | "gt" | "ge" | "lt" | "le") {
            op = word;
            pending_op = true;
            continue;
        }
        pending_op = false;
        if op == "eq" {
            ranges.push(parse_range(word).ok_or_else(|| bad(word, "is not an integer or range"))?);
            continue;
        }
        let n: i64 = word
            .parse()
            .map_err(|_| bad(word, "is not an integer (ranges only go with 'eq')"))?;
        let (min, max) = match op {
            "gt" => (n.checked_add(1), None),
            "ge" => (Some(n), None),
            "lt" => (None, n.checked_sub(1)),
            _ => (None, Some(n)),
        };
        ranges.push(IntRange { min, max });
    }
    if pending_op {
        return Err(bad(op, "is an operator without a number after it"));
    }
    Ok(ranges.into_boxed_slice())
}

/// `N`, `A:B`, `A-B`, `:B`, `A:` (HAProxy splits at the first ':' or '-').
fn parse_range(w: &str) -> Option<IntRange> {
    let num = |s: &str| s.parse::<i64>().ok();
    match w.find([':', '-']) {
        None => num(w).map(|n| IntRange {
            min: Some(n),
            max: Some(n),
        }),
        Some(0) => Some(IntRange {
            min: None,
            max: Some(num(&w[1..])?),
        }),
        Some(i) if i + 1 == w.len() => Some(IntRange {
            min: Some(num(&w[..i])?),
            max: None,
        }),
        Some(i) => {
            let (min, max) = (num(&w[..i])?, num(&w[i + 1..])?);
            (min <= max).then_some(IntRange {
                min: Some(min),
                max: Some(max),
            })
        }
    }
}
