use super::status::{admin_state_code, check_status_code, health, op_state_code};
use super::*;
use crate::routing::ServerStatus;
use crate::runtime::{now_ms, Runtime};
use shoal_proto::command::{Command, ServerRef};

/// HAProxy 2.6.12's `show stat` header, as the Debian build prints it.
const HAPROXY_HEADER: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,";

const CONFIG: &str = "\
global
    maxconn 1000
    stats socket /tmp/shoal-stats-unit.sock level admin
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:0
    default_backend app
backend app
    balance roundrobin
    server s1 127.0.0.1:1 weight 200 check
    server s2 127.0.0.1:2 weight 100
    server s3 127.0.0.1:3 weight 50 backup disabled
listen li
    bind 127.0.0.1:0
    server a 127.0.0.1:4
";

fn runtime(text: &str) -> Runtime {
    Runtime::from_text(text).expect("runtime builds")
}

fn submit(rt: &Runtime, command: Command) {
    rt.submit(&command).expect("valid command");
    rt.settled_blocking();
}

fn set_health(rt: &Runtime, server: &str, state: OpState) {
    let server = ServerRef::new("app", server);
    submit(
        rt,
        Command::SetHealth {
            server,
            state,
            at: now_ms(),
        },
    );
}

fn set_admin(rt: &Runtime, server: &str, state: AdminState) {
    let server = ServerRef::new("app", server);
    submit(
        rt,
        Command::SetAdminState {
            server,
            state,
            at: now_ms(),
        },
    );
}

/// Blank `lastchg` (seconds since start: differs between runs).
fn mask_lastchg(line: &str) -> String {
    let mut cells: Vec<&str> = line.split(',').collect();
    if cells.len() > 23 && !cells[23].is_empty() {
        cells[23] = "X";
    }
    cells.join(",")
}

#[test]
fn header_is_haproxys() {
    assert_eq!(csv_header(), HAPROXY_HEADER);
    assert!(COLUMNS.len() >= 80);
}

#[test]
fn every_row_has_every_column() {
    let rt = runtime(CONFIG);
    for row in collect(&rt.snapshot()) {
        let names: Vec<&str> = row.fields().iter().map(|(n, _)| *n).collect();
        let want: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, want);
        assert_eq!(row.to_csv().matches(',').count(), COLUMNS.len());
    }
}

#[test]
fn rows_in_haproxy_order() {
    let rt = runtime(CONFIG);
    let rows = collect(&rt.snapshot());
    let names: Vec<String> = rows
        .iter()
        .map(|r| format!("{}/{}", r.pxname, r.svname))
        .collect();
    assert_eq!(
        names,
        [
            "fe/FRONTEND",
            "app/s1",
            "app/s2",
            "app/s3",
            "app/BACKEND",
            "li/FRONTEND",
            "li/a",
            "li/BACKEND"
        ]
    );
    // A stats socket makes HAProxy number proxies from 2.
    let iids: Vec<u64> = rows.iter().map(|r| r.iid).collect();
    assert_eq!(iids, [2, 3, 3, 3, 3, 4, 4, 4]);
    let sids: Vec<u64> = rows.iter().map(|r| r.sid).collect();
    assert_eq!(sids, [0, 1, 2, 3, 0, 0, 1, 0]);
}

/// Rows of an idle HAProxy 2.6 with the same config (see `CONFIG`),
/// `lastchg` masked.
#[test]
fn idle_rows_match_haproxy_cell_for_cell() {
    let rt = runtime(CONFIG);
    let rows = collect(&rt.snapshot());
    let csv: Vec<String> = rows.iter().map(|r| mask_lastchg(&r.to_csv())).collect();
    let fe = "fe,FRONTEND,,,0,0,1000,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,";
    let server = "li,a,0,0,0,0,,0,0,0,,0,,0,0,0,0,no check,1,1,0,,,X,,,1,4,1,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:4,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,";
    let backend = "li,BACKEND,0,0,0,0,100,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,X,0,,1,4,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,";
    let maint = "app,s3,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,50,0,1,,,X,,,1,3,3,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:3,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,50,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,";
    assert_eq!(csv[0], fe);
    assert_eq!(csv[6], server);
    assert_eq!(csv[7], backend);
    assert_eq!(csv[3], maint);
}

#[test]
fn backend_counts_usable_servers_and_weights() {
    let rt = runtime(CONFIG);
    let rows = collect(&rt.snapshot());
    let be = &rows[4];
    // s1 and s2 start UP (no check has run yet); s3 is in maintenance.
    assert_eq!(be.status, "UP");
    assert_eq!(be.weight, Some(300));
    assert_eq!((be.act, be.bck), (Some(2), Some(0)));
    assert_eq!(be.slim, Some(100));
    set_health(&rt, "s1", OpState::Down);
    set_admin(&rt, "s2", AdminState::Maint);
    let rows = collect(&rt.snapshot());
    assert_eq!(rows[4].status, "DOWN");
    assert_eq!(rows[4].weight, Some(0));
    assert_eq!(rows[1].status, "DOWN");
    assert_eq!(rows[1].check_health, Some(0));
    assert_eq!(rows[2].status, "MAINT");
    // The backup serves once every active server is gone.
    set_admin(&rt, "s3", AdminState::Ready);
    let rows = collect(&rt.snapshot());
    assert_eq!(rows[4].status, "UP");
    assert_eq!((rows[4].act, rows[4].bck), (Some(0), Some(1)));
    assert_eq!(rows[4].weight, Some(50));
}

fn state(admin: AdminState, op: OpState) -> ServerStatus {
    ServerStatus {
        admin,
        op,
        weight: 1,
        check_enabled: true,
        maxconn: None,
        addr: None,
        last_change: 0,
        serving_since: None,
        reports: Default::default(),
        verdict_up: true,
    }
}

#[test]
fn status_words() {
    use AdminState::{Drain, Maint, Ready};
    use OpState::{Down, Stopping, Up};
    let cases = [
        (state(Ready, Up), true, 0, "UP"),
        (state(Ready, Up), false, 0, "no check"),
        (state(Ready, Up), true, 1, "UP 2/3"),
        (state(Ready, Up), true, 2, "UP 1/3"),
        (state(Ready, Down), true, 0, "DOWN"),
        (state(Ready, Down), true, 1, "DOWN 1/2"),
        (state(Ready, Down), false, 0, "DOWN"),
        (state(Drain, Up), true, 0, "DRAIN"),
        (state(Drain, Up), false, 0, "DRAIN"),
        (state(Drain, Up), true, 1, "DRAIN 2/3"),
        (state(Ready, Stopping), false, 0, "NOLB"),
        (state(Ready, Stopping), true, 1, "NOLB 2/3"),
        (state(Maint, Up), true, 0, "MAINT"),
        (state(Maint, Down), true, 1, "MAINT"),
    ];
    for (st, checked, streak, want) in cases {
        assert_eq!(
            server_status(&st, checked, streak, 2, 3),
            want,
            "{st:?} checked={checked} streak={streak}"
        );
    }
}

#[test]
fn health_counter_follows_haproxy() {
    use AdminState::{Maint, Ready};
    use OpState::{Down, Stopping, Up};
    assert_eq!(health(&state(Ready, Up), true, 0, 2, 3), 4);
    assert_eq!(health(&state(Ready, Up), true, 1, 2, 3), 3);
    assert_eq!(health(&state(Ready, Up), false, 0, 2, 3), 2);
    assert_eq!(health(&state(Ready, Down), true, 1, 2, 3), 1);
    assert_eq!(health(&state(Ready, Stopping), false, 0, 2, 3), 4);
    assert_eq!(health(&state(Maint, Up), true, 0, 2, 3), 0);
}

#[test]
fn servers_state_codes() {
    use AdminState::{Drain, Maint, Ready};
    use OpState::{Down, Stopping, Up};
    assert_eq!(op_state_code(&state(Ready, Up)), 2);
    assert_eq!(op_state_code(&state(Ready, Stopping)), 3);
    assert_eq!(op_state_code(&state(Ready, Down)), 0);
    assert_eq!(op_state_code(&state(Maint, Up)), 0);
    assert_eq!(admin_state_code(&state(Maint, Up), true), 5);
    assert_eq!(admin_state_code(&state(Maint, Up), false), 1);
    assert_eq!(admin_state_code(&state(Drain, Up), false), 8);
    assert_eq!(check_status_code("L4CON"), 8);
    assert_eq!(check_status_code("L4OK"), 6);
    assert_eq!(check_status_code(""), 1);
}

#[test]
fn csv_cells_are_quoted_when_ambiguous() {
    assert_eq!(Value::Str("a,b".into()).to_csv(), "\"a,b\"");
    assert_eq!(
        Value::Str("say \"hi\"".into()).to_csv(),
        "\"say \"\"hi\"\"\""
    );
    assert_eq!(Value::Str("two\nlines".into()).to_csv(), "two lines");
    assert_eq!(Value::Str("plain".into()).to_csv(), "plain");
    assert_eq!(Value::S64(-1).to_csv(), "-1");
    assert_eq!(Value::Empty.to_csv(), "");
}

#[test]
fn tcp_rows_have_no_http_columns() {
    let rt = runtime(
        "defaults\n    mode tcp\nlisten t\n    bind 127.0.0.1:0\n    balance leastconn\n    server a 127.0.0.1:5\n",
    );
    let rows = collect(&rt.snapshot());
    assert_eq!(rows[0].iid, 1);
    for row in &rows {
        let fields = row.fields();
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("hrsp_2xx"), Some(Value::Empty), "{}", row.svname);
        assert_eq!(get("mode"), Some(Value::Str("tcp".into())));
    }
    // Without a global maxconn Shoal has no limit to print.
    assert_eq!(rows[0].slim, None);
    assert_eq!(rows[2].algo.as_deref(), Some("leastconn"));
}

#[test]
fn legends_can_be_hidden() {
    let rt = runtime(CONFIG);
    let mut row = collect(&rt.snapshot()).remove(1);
    assert!(row.addr.is_some());
    row.hide_legends();
    assert_eq!((row.addr, row.cookie, row.algo), (None, None, None));
}

#[test]
fn info_lines_start_like_haproxy() {
    let rt = runtime(CONFIG);
    let lines = info(&rt.snapshot());
    let names: Vec<&str> = lines.iter().take(9).map(|l| l.name).collect();
    assert_eq!(
        names,
        [
            "Name",
            "Version",
            "Release_date",
            "Nbthread",
            "Nbproc",
            "Process_num",
            "Pid",
            "Uptime",
            "Uptime_sec"
        ]
    );
    assert!(lines.len() >= 60);
    assert_eq!(super::info::uptime_text(3_725), "0d 1h02m05s");
    assert_eq!(super::info::uptime_text(90_061), "1d 1h01m01s");
}
