//! Cookie persistence, HAProxy's `cookie NAME insert|rewrite|prefix ...`:
//! reading the persistence cookie from requests, hiding it from servers,
//! and adding or rewriting it in responses.

use shoal_proto::config::{CookieConfig, CookieMode};

/// The value of cookie `name` in one `Cookie:` header (`a=1; b=2`).
pub fn find<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// The part of a cookie value that names the server: all of it, or the
/// part before `~` in prefix mode (`srv~appvalue`), without the dates that
/// `maxidle`/`maxlife` add (`srv|LAST|FIRST`).
pub fn server_part(mode: CookieMode, value: &str) -> &str {
    let value = match mode {
        CookieMode::Prefix => value.split_once('~').map_or(value, |(srv, _)| srv),
        _ => value,
    };
    value.split_once('|').map_or(value, |(srv, _)| srv)
}

/// The dates in an insert-mode cookie with `maxidle`/`maxlife`: seconds
/// since the epoch of the last use and of the first insertion. (HAProxy
/// also appends two dates after `|`; Shoal writes them in decimal.)
pub fn dates(value: &str) -> (Option<u64>, Option<u64>) {
    let mut parts = value.split('|').skip(1);
    let last = parts.next().and_then(|d| d.parse().ok());
    let first = parts.next().and_then(|d| d.parse().ok());
    (last, first)
}

/// True when a cookie's dates are past `maxidle` or `maxlife`; such a
/// cookie is ignored and the request balanced again, as in HAProxy.
pub fn expired(cfg: &CookieConfig, value: &str, now: u64) -> bool {
    if cfg.maxidle.is_none() && cfg.maxlife.is_none() {
        return false;
    }
    let (last, first) = dates(value);
    let too_idle = cfg
        .maxidle
        .is_some_and(|max| last.is_none_or(|t| now.saturating_sub(t) > max.as_secs()));
    let too_old = cfg
        .maxlife
        .is_some_and(|max| first.is_none_or(|t| now.saturating_sub(t) > max.as_secs()));
    too_idle || too_old
}

/// The `Cookie:` header the server should see, or `None` if unchanged.
/// `Some("")` means drop the header. Insert+indirect removes the
/// persistence cookie (the application never sees it); prefix mode
/// removes the `srv~` prefix so the application gets its own value back.
pub fn for_server(header: &str, cfg: &CookieConfig) -> Option<String> {
    let strip = match cfg.mode {
        CookieMode::Insert if cfg.indirect => true,
        CookieMode::Prefix => false,
        _ => return None,
    };
    find(header, &cfg.name)?;
    let mut out = String::with_capacity(header.len());
    for pair in header.split(';') {
        let trimmed = pair.trim();
        let name = trimmed.split_once('=').map_or(trimmed, |(k, _)| k.trim());
        let kept = if name != cfg.name {
            Some(trimmed.to_string())
        } else if strip {
            None
        } else {
            let value = trimmed.split_once('=').map_or("", |(_, v)| v);
            Some(format!(
                "{name}={}",
                value.split_once('~').map_or(value, |(_, app)| app)
            ))
        };
        if let Some(kept) = kept.filter(|k| !k.is_empty()) {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(&kept);
        }
    }
    Some(out)
}

/// The `Set-Cookie:` value insert mode adds for a server. With
/// `maxidle`/`maxlife` the value carries `|now|first` (first = now for a
/// new cookie).
pub fn inserted(cfg: &CookieConfig, server_cookie: &str, now: u64, first: Option<u64>) -> String {
    let mut out = if cfg.maxidle.is_some() || cfg.maxlife.is_some() {
        format!(
            "{}={}|{now}|{}; path=/",
            cfg.name,
            server_cookie,
            first.unwrap_or(now)
        )
    } else {
        format!("{}={}; path=/", cfg.name, server_cookie)
    };
    for domain in &cfg.domains {
        out.push_str("; domain=");
        out.push_str(domain);
    }
    if cfg.httponly {
        out.push_str("; HttpOnly");
    }
    if cfg.secure {
        out.push_str("; Secure");
    }
    out
}

/// A server's own `Set-Cookie:` rewritten for rewrite/prefix modes, or
/// `None` when it does not set the persistence cookie.
pub fn rewrite_response(
    set_cookie: &str,
    cfg: &CookieConfig,
    server_cookie: &str,
) -> Option<String> {
    let (first, attrs) = set_cookie
        .split_once(';')
        .map_or((set_cookie, None), |(a, b)| (a, Some(b)));
    let (name, value) = first.split_once('=')?;
    if name.trim() != cfg.name {
        return None;
    }
    let value = match cfg.mode {
        CookieMode::Rewrite => server_cookie.to_string(),
        CookieMode::Prefix => format!("{server_cookie}~{}", value.trim()),
        CookieMode::Insert => return None,
    };
    Some(match attrs {
        Some(a) => format!("{}={value};{a}", cfg.name),
        None => format!("{}={value}", cfg.name),
    })
}

/// True if a `Set-Cookie:` value sets cookie `name`.
pub fn sets(set_cookie: &str, name: &str) -> bool {
    set_cookie
        .split_once('=')
        .is_some_and(|(n, _)| n.trim() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(mode: CookieMode, indirect: bool) -> CookieConfig {
        CookieConfig {
            name: "SERVERID".into(),
            mode,
            indirect,
            nocache: false,
            preserve: false,
            httponly: true,
            secure: false,
            domains: vec![".example.com".into()],
            maxidle: None,
            maxlife: None,
        }
    }

    #[test]
    fn finds_cookies() {
        assert_eq!(find("a=1; SERVERID=web2; b=2", "SERVERID"), Some("web2"));
        assert_eq!(find("SERVERID=\"web2\"", "SERVERID"), Some("web2"));
        assert_eq!(find("a=1", "SERVERID"), None);
        assert_eq!(server_part(CookieMode::Prefix, "s1~abc"), "s1");
        assert_eq!(server_part(CookieMode::Insert, "s1~abc"), "s1~abc");
    }

    #[test]
    fn hides_or_unprefixes_for_the_server() {
        let c = cfg(CookieMode::Insert, true);
        assert_eq!(
            for_server("a=1; SERVERID=s1; b=2", &c).as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(for_server("SERVERID=s1", &c).as_deref(), Some(""));
        assert_eq!(for_server("a=1", &c), None);
        assert_eq!(
            for_server("SERVERID=s1", &cfg(CookieMode::Insert, false)),
            None
        );
        let p = cfg(CookieMode::Prefix, false);
        assert_eq!(
            for_server("SERVERID=s1~sess42; x=y", &p).as_deref(),
            Some("SERVERID=sess42; x=y")
        );
    }

    #[test]
    fn writes_response_cookies() {
        let c = cfg(CookieMode::Insert, false);
        assert_eq!(
            inserted(&c, "s1", 0, None),
            "SERVERID=s1; path=/; domain=.example.com; HttpOnly"
        );
        let mut d = cfg(CookieMode::Insert, false);
        d.maxidle = Some(std::time::Duration::from_secs(10));
        assert!(inserted(&d, "s1", 100, Some(50)).starts_with("SERVERID=s1|100|50;"));
        let r = cfg(CookieMode::Rewrite, false);
        assert_eq!(
            rewrite_response("SERVERID=app; Path=/", &r, "s1").as_deref(),
            Some("SERVERID=s1; Path=/")
        );
        let p = cfg(CookieMode::Prefix, false);
        assert_eq!(
            rewrite_response("SERVERID=abc", &p, "s1").as_deref(),
            Some("SERVERID=s1~abc")
        );
        assert_eq!(rewrite_response("OTHER=abc", &p, "s1"), None);
        assert!(sets("SERVERID=x; Path=/", "SERVERID"));
    }

    #[test]
    fn maxidle_and_maxlife_expire_cookies() {
        let mut c = cfg(CookieMode::Insert, false);
        assert!(!expired(&c, "s1", 1000));
        c.maxidle = Some(std::time::Duration::from_secs(10));
        c.maxlife = Some(std::time::Duration::from_secs(100));
        assert_eq!(server_part(CookieMode::Insert, "s1|995|950"), "s1");
        assert!(!expired(&c, "s1|995|950", 1000));
        assert!(expired(&c, "s1|980|950", 1000), "idle too long");
        assert!(expired(&c, "s1|999|800", 1000), "lived too long");
        assert!(expired(&c, "s1", 1000), "dates missing");
    }
}
