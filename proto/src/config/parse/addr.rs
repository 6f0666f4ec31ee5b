//! Addresses: `bind` lists, `server` addresses, host names and networks.
//!
//! HAProxy splits `ADDR:PORT` at the last colon, so `:::80` is `::` port 80;
//! `[::1]:80` is also accepted. An `ipv4@`/`ipv6@` prefix forces the family.

use crate::config::{Bind, ServerAddr};
use std::net::{IpAddr, Ipv4Addr};

/// Largest port range a single `bind` word may expand to.
const MAX_RANGE: u32 = 1024;

/// Parses a `bind` word: `ADDR:PORT[-PORT][,ADDR:PORT...]`. Port ranges
/// expand to one [`Bind`] per port, as HAProxy listens on each of them.
pub(super) fn parse_binds(word: &str) -> Result<Vec<Bind>, String> {
    let mut binds = Vec::new();
    for item in word.split(',') {
        let (family, rest) = strip_family(item)?;
        if rest.starts_with('/') || item.starts_with("unix@") || item.starts_with("abns@") {
            return Err(format!(
                "unix socket listener '{item}' is not implemented by Shoal yet"
            ));
        }
        let (host, port) = split_host_port(rest)
            .ok_or_else(|| format!("missing port in bind address '{item}'"))?;
        let host = match (host, family) {
            ("", Some(Family::V4)) => "0.0.0.0".to_string(),
            ("", Some(Family::V6)) => "::".to_string(),
            ("" | "*", _) => host.to_string(),
            _ => {
                check_host(host, family).map_err(|e| format!("{e} in bind address '{item}'"))?;
                host.to_string()
            }
        };
        let (first, last) =
            port_range(port).map_err(|e| format!("{e} in bind address '{item}'"))?;
        for port in first..=last {
            binds.push(Bind {
                host: host.clone(),
                port,
                tls: None,
            });
        }
    }
    Ok(binds)
}

/// Checks a `stats socket` address as the runtime socket reads it:
/// `unix@PATH` or a path, else `[ipv4@|ipv6@]HOST:PORT`, where port 0 lets
/// the kernel choose (as for `bind`).
pub(super) fn check_socket_addr(word: &str) -> Result<(), String> {
    if let Some(path) = word.strip_prefix("unix@") {
        return match path {
            "" => Err("empty unix socket path".into()),
            _ => Ok(()),
        };
    }
    let families = ["abns@", "fd@", "sockpair@", "uxst@", "uxdg@", "udp"];
    if let Some(family) = families.iter().find(|f| word.starts_with(**f)) {
        return Err(format!(
            "address family '{family}' is not implemented by Shoal (use a path, unix@, ipv4@ or ipv6@)"
        ));
    }
    let (family, rest) = strip_family(word)?;
    // Without a family prefix, a word with no colon or starting like a
    // path is a unix socket path.
    if family.is_none() && (rest.starts_with(['/', '.']) || !rest.contains(':')) {
        return Ok(());
    }
    let (host, port) =
        split_host_port(rest).ok_or_else(|| format!("missing port in address '{word}'"))?;
    if !matches!(host, "" | "*") {
        check_host(host, family).map_err(|e| format!("{e} in address '{word}'"))?;
    }
    if port != "0" {
        single_port(port).map_err(|e| format!("{e} in address '{word}'"))?;
    }
    Ok(())
}

/// Parses a server address `HOST[:PORT]`.
pub(super) fn parse_server_addr(word: &str) -> Result<ServerAddr, String> {
    let (family, rest) = strip_family(word)?;
    if rest.starts_with('/') || (word.contains('@') && family.is_none()) {
        return Err(format!(
            "server address '{word}' is not implemented by Shoal yet (only IPv4, IPv6 and host names are)"
        ));
    }
    let (host, port) = match split_host_port(rest) {
        Some((host, port)) => (host, Some(port)),
        None => (
            rest.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(rest),
            None,
        ),
    };
    if let Err(e) = check_host(host, family) {
        if rest.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(format!(
                "ambiguous IPv6 server address '{word}': HAProxy reads the part after the last colon as the port; write [{rest}] or [{rest}]:PORT"
            ));
        }
        return Err(format!("{e} in server address '{word}'"));
    }
    let port = match port {
        None => None,
        Some(p) if p.starts_with('+') || p.starts_with('-') => {
            return Err(format!(
                "relative server port '{p}' is not implemented by Shoal yet"
            ))
        }
        Some(p) => Some(single_port(p).map_err(|e| format!("{e} in server address '{word}'"))?),
    };
    Ok(ServerAddr {
        host: host.to_string(),
        port,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Family {
    V4,
    V6,
}

fn strip_family(word: &str) -> Result<(Option<Family>, &str), String> {
    if let Some(rest) = word.strip_prefix("ipv4@") {
        return Ok((Some(Family::V4), rest));
    }
    if let Some(rest) = word.strip_prefix("ipv6@") {
        return Ok((Some(Family::V6), rest));
    }
    if word.is_empty() {
        return Err("empty address".into());
    }
    Ok((None, word))
}

/// Splits at the port colon; `None` when there is no port.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(inner) = s.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        return after.strip_prefix(':').map(|port| (host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    // A bare IPv6 literal such as `::1` has no port only if the part after
    // the last colon is not a number; HAProxy itself always takes it as a
    // port, and so do we, except for the empty tail of `fe80::`.
    if port.is_empty() && host.contains(':') {
        return None;
    }
    Some((host, port))
}

fn single_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("invalid port '{p}' (expected 1..65535)")),
        Ok(n) => Ok(n),
    }
}

fn port_range(p: &str) -> Result<(u16, u16), String> {
    let Some((a, b)) = p.split_once('-') else {
        // Shoal extension: `bind ADDR:0` lets the kernel choose the port
        // (announced on stdout), which tests and scripts rely on.
        if p == "0" {
            return Ok((0, 0));
        }
        let n = single_port(p)?;
        return Ok((n, n));
    };
    let (a, b) = (single_port(a)?, single_port(b)?);
    if a > b || u32::from(b - a) >= MAX_RANGE {
        return Err(format!(
            "invalid port range '{p}' (at most {MAX_RANGE} ports, low to high)"
        ));
    }
    Ok((a, b))
}

/// Checks an IP literal or a host name.
fn check_host(host: &str, family: Option<Family>) -> Result<(), String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match (ip, family) {
            (IpAddr::V4(_), Some(Family::V6)) | (IpAddr::V6(_), Some(Family::V4)) => Err(format!(
                "address '{host}' does not match its ipv4@/ipv6@ prefix"
            )),
            _ => Ok(()),
        };
    }
    if host.is_empty() {
        return Err("missing host".into());
    }
    let numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let name_ok = host.split('.').all(|l| {
        !l.is_empty()
            && !l.starts_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if numeric || host.contains(':') || !name_ok {
        return Err(format!("malformed address '{host}'"));
    }
    Ok(())
}

/// True if `value` is an IP address, a CIDR network (`10.0.0.0/8`) or an
/// IPv4 network with a dotted mask (`10.0.0.0/255.0.0.0`), as ACLs accept.
pub(super) fn is_ip_or_network(value: &str) -> bool {
    let (ip, mask) = match value.split_once('/') {
        Some((ip, mask)) => (ip, Some(mask)),
        None => (value, None),
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let Some(mask) = mask else { return true };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match mask.parse::<u8>() {
        Ok(bits) => bits <= max,
        Err(_) => ip.is_ipv4() && mask.parse::<Ipv4Addr>().is_ok_and(is_contiguous_mask),
    }
}

fn is_contiguous_mask(mask: Ipv4Addr) -> bool {
    let m = u32::from(mask);
    m.leading_ones() + m.trailing_zeros() == 32
}
