//! The HTML page: HAProxy's layout (one table per proxy with its
//! `FRONTEND` row, server rows and `BACKEND` row), HAProxy's colours for
//! server states, and per-server controls when admin is allowed. The rows
//! are the same [`StatRow`]s `show stat` prints. Every name and value from
//! the config or state is HTML-escaped.

use super::actions::Outcome;
use crate::stats::{RowKind, StatRow};
use std::fmt::Write as _;
use std::time::Duration;

/// How to render one page.
pub struct View<'a> {
    /// `stats uri`: where forms post and the refresh points.
    pub uri: &'a str,
    /// `stats refresh`, unless the request said `;norefresh`.
    pub refresh: Option<Duration>,
    /// Show per-server controls (`stats admin` allowed this request).
    pub admin: bool,
    /// The `;st=` code of the previous action, if any.
    pub status: Option<&'a str>,
    pub hide_version: bool,
    /// `Pid`, `Uptime`, ... from `show info`.
    pub info: &'a [crate::stats::InfoLine],
    /// Every node's health view of the checked servers (the "Nodes"
    /// column: who reports what, the rule, and local avoidance).
    pub health: &'a [crate::health::ServerHealth],
}

const STYLE: &str = "body{font-family:Arial,Helvetica,sans-serif;font-size:12px;margin:10px}\
h1{font-size:18px;margin:0 0 6px;color:#fff;background:#20435c;padding:6px 10px}\
table.px{border-collapse:collapse;margin:12px 0 0}\
table.px caption{text-align:left;font-weight:bold;font-size:13px;background:#20435c;color:#fff;padding:3px 8px}\
th,td{border:1px solid #999;padding:2px 5px;text-align:right;white-space:nowrap}\
th{background:#d8d8d8}.name{text-align:left}td.st{text-align:center}\
tr.total td{background:#eee;font-weight:bold}\
.legend span{display:inline-block;padding:1px 8px;margin-right:4px;border:1px solid #999}\
.msg{padding:6px 10px;margin:8px 0;border:1px solid #999;font-weight:bold}\
.ok{background:#c0ffc0}.ko{background:#ff9090}\
form{margin:0;display:inline}input[type=number]{width:4em}button{margin:0 1px}";

/// Server row classes with HAProxy's colours and the legend's words.
const LEGEND: [(&str, &str, &str); 9] = [
    ("up", "#c0ffc0", "active UP"),
    ("goingdown", "#ffffa0", "UP, going down"),
    ("goingup", "#ffd020", "DOWN, going up"),
    ("down", "#ff9090", "DOWN"),
    ("nolb", "#e0b0ff", "NOLB"),
    ("drain", "#20a0ff", "DRAIN"),
    ("maint", "#c07820", "MAINT"),
    ("nocheck", "#e0e0e0", "no check"),
    ("bkup", "#b0d0ff", "backup UP"),
];

/// HTML-escape text for element content and quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The whole page.
pub fn render(rows: &[StatRow], view: &View<'_>) -> String {
    let mut h = String::with_capacity(16 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<title>Statistics Report for Shoal</title>");
    if let Some(every) = view.refresh {
        // After an action, refresh to the plain URI so the banner goes away.
        let target = match view.status {
            Some(_) => format!(";url={}", esc(view.uri)),
            None => String::new(),
        };
        let secs = every.as_secs().max(1);
        let _ = write!(
            h,
            "<meta http-equiv=\"refresh\" content=\"{secs}{target}\">"
        );
    }
    let _ = write!(h, "<style>{STYLE}");
    for (class, colour, _) in LEGEND {
        let _ = write!(h, "tr.{class} td,.legend .{class}{{background:{colour}}}");
    }
    h.push_str("</style></head><body>");
    header(&mut h, view);
    let mut start = 0;
    while start < rows.len() {
        // One table per proxy: its rows are consecutive in `show stat` order.
        let iid = rows[start].iid;
        let end = rows[start..]
            .iter()
            .position(|r| r.iid != iid)
            .map_or(rows.len(), |n| start + n);
        proxy_table(&mut h, &rows[start..end], view);
        start = end;
    }
    h.push_str("</body></html>\n");
    h
}

fn header(h: &mut String, view: &View<'_>) {
    let info = |name: &str| {
        view.info
            .iter()
            .find(|l| l.name == name)
            .map_or(String::new(), |l| esc(&l.value))
    };
    h.push_str("<h1>Shoal statistics report</h1><p class=\"info\">");
    if !view.hide_version {
        let _ = write!(h, "Shoal version {} &middot; ", info("Version"));
    }
    let _ = write!(
        h,
        "pid = {} &middot; uptime = {} &middot; nbthread = {}</p>",
        info("Pid"),
        info("Uptime"),
        info("Nbthread")
    );
    if let Some((ok, text)) = view.status.and_then(Outcome::message) {
        let class = if ok { "ok" } else { "ko" };
        let _ = write!(
            h,
            "<div class=\"msg {class}\" id=\"action-result\">{text}</div>"
        );
    }
    h.push_str("<p class=\"legend\">");
    for (class, _, label) in LEGEND {
        let _ = write!(h, "<span class=\"{class}\">{label}</span>");
    }
    h.push_str("</p>");
}

fn proxy_table(h: &mut String, rows: &[StatRow], view: &View<'_>) {
    let name = esc(&rows[0].pxname);
    let admin = view.admin && rows.iter().any(|r| r.kind == RowKind::Server);
    let _ = write!(
        h,
        "<table class=\"px\" data-proxy=\"{name}\"><caption>{name}</caption><tr>\
         <th class=\"name\">Name</th><th>Status</th><th>Weight</th><th>Act</th><th>Bck</th>\
         <th>Queue</th><th>Cur</th><th>Max</th><th>Limit</th><th>Total</th>\
         <th>Bytes in</th><th>Bytes out</th><th>Req err</th><th>Conn err</th><th>Resp err</th>\
         <th>Retr</th><th>Redis</th><th>2xx</th><th>4xx</th><th>5xx</th>\
         <th class=\"name\">Last check</th><th class=\"name\">Nodes</th>"
    );
    if admin {
        h.push_str("<th class=\"name\">Actions</th>");
    }
    h.push_str("</tr>");
    for row in rows {
        let health = (row.kind == RowKind::Server)
            .then(|| {
                view.health
                    .iter()
                    .find(|s| s.backend == row.pxname && s.server == row.svname)
            })
            .flatten();
        row_html(h, row, view.uri, admin, health);
    }
    h.push_str("</table>");
}

/// The row class of a status word (HAProxy's colours).
fn row_class(row: &StatRow) -> &'static str {
    if row.kind != RowKind::Server {
        return "total";
    }
    let word = row.status.split(' ').next().unwrap_or("");
    let moving = row.status.contains('/');
    match word {
        "MAINT" => "maint",
        "DRAIN" => "drain",
        "NOLB" => "nolb",
        "UP" if moving => "goingdown",
        "DOWN" if moving => "goingup",
        "DOWN" => "down",
        "UP" | "no" if row.backup => "bkup",
        "no" => "nocheck",
        _ => "up",
    }
}

fn cell(h: &mut String, v: Option<u64>) {
    match v {
        Some(n) => {
            let _ = write!(h, "<td>{n}</td>");
        }
        None => h.push_str("<td></td>"),
    }
}

fn row_html(
    h: &mut String,
    r: &StatRow,
    uri: &str,
    admin: bool,
    health: Option<&crate::health::ServerHealth>,
) {
    let server = r.kind == RowKind::Server;
    let label = match r.kind {
        RowKind::Frontend => "Frontend".to_string(),
        RowKind::Backend => "Backend".to_string(),
        RowKind::Server if r.backup => format!("{} (backup)", r.svname),
        RowKind::Server => r.svname.clone(),
    };
    let key = esc(&format!("{}/{}", r.pxname, r.svname));
    let _ = write!(h, "<tr class=\"{}\"", row_class(r));
    if server {
        let _ = write!(h, " data-server=\"{key}\"");
    }
    let _ = write!(
        h,
        "><td class=\"name\">{}</td><td class=\"st\">{}</td>",
        esc(&label),
        esc(&r.status)
    );
    let hrsp = |i: usize| r.hrsp.map(|x| x[i]);
    let cells = [
        r.weight,
        r.act,
        r.bck,
        r.qcur,
        Some(r.scur),
        Some(r.smax),
        r.slim,
        Some(r.stot),
        Some(r.bin),
        Some(r.bout),
        r.ereq,
        r.econ,
        r.eresp,
        r.wretr,
        r.wredis,
        hrsp(1),
        hrsp(3),
        hrsp(4),
    ];
    for v in cells {
        cell(h, v);
    }
    let check = match (&r.check_status, r.check_duration) {
        (Some(s), Some(ms)) => format!("{s} in {ms}ms"),
        (Some(s), None) => s.clone(),
        _ => String::new(),
    };
    let _ = write!(h, "<td class=\"name\">{}</td>", esc(&check));
    nodes_cell(h, health);
    if admin {
        h.push_str("<td class=\"name\">");
        if server {
            controls(h, r, &key, uri);
        }
        h.push_str("</td>");
    }
    h.push_str("</tr>");
}

/// "1 UP, 2 UP, 3 DOWN (majority); avoided here", each node's reason in
/// the cell's title; empty for rows that are not checked servers.
fn nodes_cell(h: &mut String, health: Option<&crate::health::ServerHealth>) {
    let Some(s) = health else {
        h.push_str("<td class=\"name nodes\"></td>");
        return;
    };
    let words: Vec<String> = s
        .reports
        .iter()
        .map(|r| format!("{} {}", r.node, r.report))
        .collect();
    let reasons: Vec<String> = s
        .reports
        .iter()
        .map(|r| format!("node {}: {}", r.node, r.reason))
        .collect();
    let mut text = if words.is_empty() {
        format!("no report ({})", s.rule)
    } else {
        format!("{} ({})", words.join(", "), s.rule)
    };
    if s.avoided_here {
        text.push_str("; avoided here");
    }
    let _ = write!(
        h,
        "<td class=\"name nodes\" title=\"{}\">{}</td>",
        esc(&reasons.join("\n")),
        esc(&text)
    );
}

/// One form per server: state buttons and a weight field.
fn controls(h: &mut String, r: &StatRow, key: &str, uri: &str) {
    let _ = write!(
        h,
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"b\" value=\"{}\">\
         <input type=\"hidden\" name=\"s\" value=\"{}\">",
        esc(uri),
        esc(&r.pxname),
        esc(&r.svname)
    );
    for (action, label) in [("ready", "Ready"), ("drain", "Drain"), ("maint", "Maint")] {
        let _ = write!(
            h,
            "<button type=\"submit\" name=\"action\" value=\"{action}\" \
             data-server=\"{key}\" data-action=\"{action}\">{label}</button>"
        );
    }
    let _ = write!(
        h,
        " <input type=\"number\" name=\"weight\" min=\"0\" max=\"256\" value=\"{}\" \
         aria-label=\"weight of {key}\"><button type=\"submit\" name=\"action\" value=\"weight\" \
         data-server=\"{key}\" data-action=\"weight\">Set weight</button></form>",
        r.weight.unwrap_or(0)
    );
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_html() {
        assert_eq!(
            esc("<a href='x'>\"&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;"
        );
    }
}
