//! `show stat` columns in HAProxy 2.6's order, and the CSV encoding.
//!
//! Each column carries where HAProxy 2.6 prints a value when Shoal does
//! not measure it: `F`, `B`, `S` for frontend, backend and server rows;
//! lower case means "HTTP proxies only". Such cells print `0`, others
//! stay empty. Columns Shoal measures come from [`StatRow`]'s fields.

use super::{RowKind, StatRow};
use shoal_proto::config::Mode;

/// Every column of HAProxy 2.6's `show stat` (as the Debian build prints
/// it), with where HAProxy has a value for columns Shoal does not measure.
pub const COLUMNS: &[(&str, &str)] = &[
    ("pxname", "FBS"),
    ("svname", "FBS"),
    ("qcur", "BS"),
    ("qmax", "BS"),
    ("scur", "FBS"),
    ("smax", "FBS"),
    ("slim", ""),
    ("stot", "FBS"),
    ("bin", "FBS"),
    ("bout", "FBS"),
    ("dreq", "FB"),
    ("dresp", "FBS"),
    ("ereq", "F"),
    ("econ", "BS"),
    ("eresp", "BS"),
    ("wretr", "BS"),
    ("wredis", "BS"),
    ("status", "FBS"),
    ("weight", "BS"),
    ("act", "BS"),
    ("bck", "BS"),
    ("chkfail", ""),
    ("chkdown", ""),
    ("lastchg", "BS"),
    ("downtime", ""),
    ("qlimit", ""),
    ("pid", "FBS"),
    ("iid", "FBS"),
    ("sid", "FBS"),
    ("throttle", ""),
    ("lbtot", "BS"),
    ("tracked", ""),
    ("type", "FBS"),
    ("rate", "FBS"),
    ("rate_lim", "F"),
    ("rate_max", "FBS"),
    ("check_status", ""),
    ("check_code", ""),
    ("check_duration", ""),
    ("hrsp_1xx", "fbs"),
    ("hrsp_2xx", "fbs"),
    ("hrsp_3xx", "fbs"),
    ("hrsp_4xx", "fbs"),
    ("hrsp_5xx", "fbs"),
    ("hrsp_other", "fbs"),
    ("hanafail", ""),
    ("req_rate", "F"),
    ("req_rate_max", "F"),
    ("req_tot", "Fbs"),
    ("cli_abrt", "BS"),
    ("srv_abrt", "BS"),
    ("comp_in", "FB"),
    ("comp_out", "FB"),
    ("comp_byp", "FB"),
    ("comp_rsp", "FB"),
    ("lastsess", "BS"),
    ("last_chk", ""),
    ("last_agt", ""),
    ("qtime", "BS"),
    ("ctime", "BS"),
    ("rtime", "BS"),
    ("ttime", "BS"),
    ("agent_status", ""),
    ("agent_code", ""),
    ("agent_duration", ""),
    ("check_desc", ""),
    ("agent_desc", ""),
    ("check_rise", ""),
    ("check_fall", ""),
    ("check_health", ""),
    ("agent_rise", ""),
    ("agent_fall", ""),
    ("agent_health", ""),
    ("addr", ""),
    ("cookie", ""),
    ("mode", "FBS"),
    ("algo", ""),
    ("conn_rate", "F"),
    ("conn_rate_max", "F"),
    ("conn_tot", "F"),
    ("intercepted", "f"),
    ("dcon", "F"),
    ("dses", "F"),
    ("wrew", "FBS"),
    ("connect", "BS"),
    ("reuse", "BS"),
    ("cache_lookups", "fb"),
    ("cache_hits", "fb"),
    ("srv_icur", "S"),
    ("src_ilim", ""),
    ("qtime_max", "BS"),
    ("ctime_max", "BS"),
    ("rtime_max", "BS"),
    ("ttime_max", "BS"),
    ("eint", "FBS"),
    ("idle_conn_cur", "S"),
    ("safe_conn_cur", "S"),
    ("used_conn_cur", "S"),
    ("need_conn_est", "S"),
    ("uweight", "BS"),
    ("agg_server_status", "B"),
    ("agg_server_check_status", "B"),
    ("agg_check_status", "B"),
    // End of HAProxy's static fields; module fields (SSL, H2, H1) follow.
    ("-", "FBS"),
    ("ssl_sess", "FBS"),
    ("ssl_reused_sess", "FBS"),
    ("ssl_failed_handshake", "FBS"),
    ("h2_headers_rcvd", "FB"),
    ("h2_data_rcvd", "FB"),
    ("h2_settings_rcvd", "FB"),
    ("h2_rst_stream_rcvd", "FB"),
    ("h2_goaway_rcvd", "FB"),
    ("h2_detected_conn_protocol_errors", "FB"),
    ("h2_detected_strm_protocol_errors", "FB"),
    ("h2_rst_stream_resp", "FB"),
    ("h2_goaway_resp", "FB"),
    ("h2_open_connections", "FB"),
    ("h2_backend_open_streams", "FB"),
    ("h2_total_connections", "FB"),
    ("h2_backend_total_streams", "FB"),
    ("h1_open_connections", "FB"),
    ("h1_open_streams", "FB"),
    ("h1_total_connections", "FB"),
    ("h1_total_streams", "FB"),
    ("h1_bytes_in", "FB"),
    ("h1_bytes_out", "FB"),
    ("h1_spliced_bytes_in", "FB"),
    ("h1_spliced_bytes_out", "FB"),
];

/// One cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Not applicable: an empty CSV cell.
    Empty,
    U64(u64),
    S64(i64),
    Str(String),
}

impl Value {
    fn opt(v: Option<u64>) -> Value {
        v.map_or(Value::Empty, Value::U64)
    }
    fn text(v: &Option<String>) -> Value {
        v.clone().map_or(Value::Empty, Value::Str)
    }
    /// The cell as CSV text (quoted when it holds a comma, quote or
    /// surrounding space; line breaks become spaces so a row stays a line).
    pub fn to_csv(&self) -> String {
        match self {
            Value::Empty => String::new(),
            Value::U64(n) => n.to_string(),
            Value::S64(n) => n.to_string(),
            Value::Str(s) => {
                let s = s.replace(['\r', '\n'], " ");
                if s.contains([',', '"']) || s.starts_with(' ') || s.ends_with(' ') {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s
                }
            }
        }
    }
}

/// `# pxname,svname,...,` exactly as HAProxy prints the header (with its
/// trailing comma), without the line break.
pub fn csv_header() -> String {
    let mut line = String::from("# ");
    for (name, _) in COLUMNS {
        line.push_str(name);
        line.push(',');
    }
    line
}

impl StatRow {
    /// The value of a column Shoal measures, or `None` for the others.
    fn measured(&self, column: &str) -> Option<Value> {
        let h = |i: usize| Value::opt(self.hrsp.map(|r| r[i]));
        Some(match column {
            "pxname" => Value::Str(self.pxname.clone()),
            "svname" => Value::Str(self.svname.clone()),
            "qcur" => Value::opt(self.qcur),
            "qmax" => Value::opt(self.qmax),
            "scur" => Value::U64(self.scur),
            "smax" => Value::U64(self.smax),
            "slim" => Value::opt(self.slim),
            "stot" => Value::U64(self.stot),
            "bin" => Value::U64(self.bin),
            "bout" => Value::U64(self.bout),
            "ereq" => Value::opt(self.ereq),
            "econ" => Value::opt(self.econ),
            "eresp" => Value::opt(self.eresp),
            "wretr" => Value::opt(self.wretr),
            "wredis" => Value::opt(self.wredis),
            "status" => Value::Str(self.status.clone()),
            "weight" => Value::opt(self.weight),
            "act" => Value::opt(self.act),
            "bck" => Value::opt(self.bck),
            "chkfail" => Value::opt(self.chkfail),
            "chkdown" => Value::opt(self.chkdown),
            "lastchg" => Value::opt(self.lastchg),
            "downtime" => Value::opt(self.downtime),
            "qlimit" => Value::opt(self.qlimit),
            "pid" => Value::U64(self.pid),
            "iid" => Value::U64(self.iid),
            "sid" => Value::U64(self.sid),
            "lbtot" => Value::opt(self.lbtot),
            "type" => Value::U64(self.kind.code()),
            "check_status" => Value::text(&self.check_status),
            "check_code" => self.check_code.map_or(Value::Empty, Value::S64),
            "check_duration" => Value::opt(self.check_duration),
            "hrsp_1xx" => h(0),
            "hrsp_2xx" => h(1),
            "hrsp_3xx" => h(2),
            "hrsp_4xx" => h(3),
            "hrsp_5xx" => h(4),
            "hrsp_other" => h(5),
            "req_tot" => Value::opt(self.req_tot),
            "lastsess" => self.lastsess.map_or(Value::Empty, Value::S64),
            "last_chk" => Value::text(&self.last_chk),
            "check_desc" => Value::text(&self.check_desc),
            "check_rise" => Value::opt(self.check_rise),
            "check_fall" => Value::opt(self.check_fall),
            "check_health" => Value::opt(self.check_health),
            "addr" => Value::text(&self.addr),
            "cookie" => Value::text(&self.cookie),
            "mode" => Value::Str(mode_word(self.mode).to_string()),
            "algo" => Value::text(&self.algo),
            "conn_tot" => Value::opt(self.conn_tot),
            "connect" => Value::opt(self.connect),
            "srv_icur" => Value::opt(self.srv_icur),
            "used_conn_cur" => Value::opt(self.used_conn_cur),
            "uweight" => Value::opt(self.uweight),
            "-" => Value::Str("-".to_string()),
            _ => return None,
        })
    }

    /// Every column in [`COLUMNS`] order with its value for this row.
    pub fn fields(&self) -> Vec<(&'static str, Value)> {
        let letter = match self.kind {
            RowKind::Frontend => 'F',
            RowKind::Backend => 'B',
            RowKind::Server => 'S',
        };
        let http = self.mode == Mode::Http;
        COLUMNS
            .iter()
            .map(|&(name, spec)| {
                let value = self.measured(name).unwrap_or_else(|| {
                    let shown = spec.contains(letter)
                        || (http && spec.contains(letter.to_ascii_lowercase()));
                    if shown {
                        Value::U64(0)
                    } else {
                        Value::Empty
                    }
                });
                (name, value)
            })
            .collect()
    }

    /// The row as HAProxy's CSV line (trailing comma, no line break).
    pub fn to_csv(&self) -> String {
        let mut line = String::new();
        for (_, value) in self.fields() {
            line.push_str(&value.to_csv());
            line.push(',');
        }
        line
    }
}

/// `tcp` or `http`.
pub fn mode_word(mode: Mode) -> &'static str {
    match mode {
        Mode::Tcp => "tcp",
        Mode::Http => "http",
    }
}
