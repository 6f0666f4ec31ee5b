//! Human output: summary lines, the `cluster status` table, and the
//! error line every failure ends with.

use super::client::CliError;
use super::ServerName;
use serde::Deserialize;
use serde_json::Value;

/// `GET /v1/cluster`, as far as the table needs it. Every field may be
/// missing or null (a node that knows no leader, a member never heard
/// from); a missing one shows as `-`.
#[derive(Debug, Deserialize)]
pub struct ClusterStatus {
    pub node: Option<u64>,
    pub leader: Option<u64>,
    pub term: Option<u64>,
    pub quorum: Option<bool>,
    #[serde(default)]
    pub members: Vec<Member>,
    #[serde(default)]
    pub certificates: Vec<Cert>,
}

/// One certificate of `GET /v1/certificates` (and of the cluster status).
#[derive(Debug, Deserialize)]
pub struct Cert {
    pub name: Option<String>,
    #[serde(default)]
    pub names: Vec<String>,
    pub not_after_utc: Option<String>,
    pub days_left: Option<i64>,
    pub expiry: Option<String>,
    pub sha256_fingerprint: Option<String>,
}

/// One member of [`ClusterStatus`].
#[derive(Debug, Deserialize)]
pub struct Member {
    pub id: Option<u64>,
    pub cluster: Option<String>,
    pub admin: Option<String>,
    pub role: Option<String>,
    pub reachable: Option<bool>,
    pub drained: Option<bool>,
    pub applied: Option<u64>,
    pub lag: Option<u64>,
}

/// Shown for a missing or null value.
const NONE: &str = "-";

fn num(v: Option<u64>) -> String {
    v.map_or_else(|| NONE.to_string(), |n| n.to_string())
}

fn yes_no(v: Option<bool>) -> String {
    match v {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => NONE.into(),
    }
}

/// The `cluster status` table: a `QUORUM LOST` banner first when the node
/// has no quorum (writes fail), a line with this node, the leader and the
/// term, then one row per member in id order.
pub fn cluster_status(status: &ClusterStatus) -> String {
    let mut out = String::new();
    if status.quorum == Some(false) {
        out.push_str(
            "QUORUM LOST: this node reaches no majority of voters; changes fail until it does\n",
        );
    }
    let quorum = match status.quorum {
        Some(true) => "ok",
        Some(false) => "LOST",
        None => NONE,
    };
    let leader = status
        .leader
        .map_or_else(|| "none".to_string(), |l| l.to_string());
    out.push_str(&format!(
        "node {}  leader {leader}  term {}  quorum {quorum}\n",
        num(status.node),
        num(status.term)
    ));
    let mut members: Vec<&Member> = status.members.iter().collect();
    members.sort_by_key(|m| m.id);
    let mut rows = vec![[
        "ID",
        "CLUSTER",
        "ADMIN",
        "ROLE",
        "REACHABLE",
        "DRAINED",
        "APPLIED",
        "LAG",
    ]
    .map(String::from)];
    for m in members {
        let mut id = num(m.id);
        if m.id.is_some() && m.id == status.leader {
            id.push_str(" (leader)");
        }
        let text = |v: &Option<String>| v.as_deref().map_or_else(|| NONE.to_string(), sanitize);
        rows.push([
            id,
            text(&m.cluster),
            text(&m.admin),
            text(&m.role),
            yes_no(m.reachable),
            yes_no(m.drained),
            num(m.applied),
            num(m.lag),
        ]);
    }
    out.push_str(&table(&rows));
    if !status.certificates.is_empty() {
        out.push('\n');
        out.push_str(&certificates(&status.certificates));
    }
    out
}

/// The expiry column: the date, days left, and a `!` mark with a word
/// when under 30 days are left or the certificate expired.
fn expiry(c: &Cert) -> String {
    let date = c.not_after_utc.as_deref().map_or(NONE.into(), sanitize);
    let days = c.days_left.map_or(NONE.into(), |d| d.to_string());
    match c.expiry.as_deref() {
        Some("expired") => format!("{date} (EXPIRED) !"),
        Some("expiring") => format!("{date} ({days} days left) !"),
        _ => format!("{date} ({days} days left)"),
    }
}

/// The certificate table of `cert list` and `cluster status`: name,
/// names served, expiry (marked `!` under 30 days), fingerprint.
pub fn certificates(list: &[Cert]) -> String {
    if list.is_empty() {
        return "no certificates\n".into();
    }
    let mut rows = vec![["CERTIFICATE", "NAMES", "EXPIRES", "SHA256"].map(String::from)];
    for c in list {
        let text = |v: &Option<String>| v.as_deref().map_or_else(|| NONE.to_string(), sanitize);
        rows.push([
            text(&c.name),
            sanitize(&c.names.join(",")),
            expiry(c),
            text(&c.sha256_fingerprint),
        ]);
    }
    table(&rows)
}

/// `cert add`'s line: `certificate site added (a.example, b.example),
/// expires 2027-03-01T12:00:00Z (90 days left)`.
pub fn cert_added(view: &Value) -> Option<String> {
    let status = view["status"].as_str()?;
    let cert: Cert = serde_json::from_value(view["certificate"].clone()).ok()?;
    Some(format!(
        "certificate {} {} ({}), expires {}",
        cert.name.as_deref().map_or(NONE.into(), sanitize),
        sanitize(status),
        sanitize(&cert.names.join(", ")),
        expiry(&cert)
    ))
}

/// Columns left-aligned, two spaces apart, no trailing blanks.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `app/s1: weight 50`, from the server view the API answered.
pub fn server_weight(name: &ServerName, view: &Value) -> Option<String> {
    let weight = view.get("weight")?.as_u64()?;
    Some(format!("{name}: weight {weight}"))
}

/// `app/s1: state drain, status DRAIN`, from the server view.
pub fn server_state(name: &ServerName, view: &Value) -> Option<String> {
    let state = view.get("admin_state")?.as_str()?;
    let mut line = format!("{name}: state {}", sanitize(state));
    if let Some(status) = view.get("status").and_then(Value::as_str) {
        line.push_str(&format!(", status {}", sanitize(status)));
    }
    Some(line)
}

/// The `warnings` a node may list beside an accepted config (strings in
/// a JSON array); none when the answer has no such list.
pub fn warnings(body: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    value
        .get("warnings")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// What a failure prints on stderr: `shoal: <what failed>` as one line. A
/// refused config is the exception: the first diagnostic follows
/// `shoal: config refused: `, and any further ones follow on their own
/// lines, indented by two spaces, as `shoal check` lists them.
pub fn error(e: &CliError) -> String {
    match e {
        CliError::ConfigRefused(message) => {
            let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut out = format!(
                "shoal: config refused: {}\n",
                sanitize(lines.next().unwrap_or(""))
            );
            for line in lines {
                out.push_str("  ");
                out.push_str(&sanitize(line));
                out.push('\n');
            }
            out
        }
        other => format!("shoal: {}\n", one_line(&other.to_string())),
    }
}

/// `text` on one line: line breaks become `; `, other control characters
/// are escaped (a message from the network must not drive the terminal).
pub fn one_line(text: &str) -> String {
    let joined: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    sanitize(&joined.join("; "))
}

/// Control characters escaped (`\u{1b}`); everything else as it is.
fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}
