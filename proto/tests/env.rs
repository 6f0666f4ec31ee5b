//! Environment variables in the config: one text, each node's own values.
//!
//! Most tests pass the environment as a map (`parse_with_env`), so none of
//! them changes this process's environment; one runs this test binary again
//! with variables set, to check that `parse` reads the real environment.

use shoal_proto::config::{
    parse, parse_file, parse_with_env, print, Config, Diagnostic, Parsed, Proxy,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// A name no test environment sets.
const UNSET: &str = "SHOAL_TEST_NEVER_SET_3B1F";

/// The config every node of a three-node test cluster loads.
const CLUSTER: &str = r#"global
    stats socket "${SHOAL_DIR}/admin.sock" mode 600 level admin
defaults
    mode http
    timeout connect "${CONNECT_TIMEOUT-5s}"
    timeout client 30s
    timeout server 30s
frontend web
    bind "${NODE_IP}:8080"
    default_backend app
backend app
    server local "${NODE_IP}:${APP_PORT-9000}" check
    server shared 127.0.0.1:9100
"#;

fn with_env(text: &str, vars: &[(&str, &str)]) -> Result<Parsed, Vec<Diagnostic>> {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse_with_env(text, "t.cfg", &|name| env.get(name).cloned())
}

fn config(text: &str, vars: &[(&str, &str)]) -> Config {
    match with_env(text, vars) {
        Ok(parsed) => parsed.config,
        Err(e) => panic!("unexpected errors: {e:#?}"),
    }
}

fn errors(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match with_env(text, vars) {
        Ok(parsed) => panic!("expected errors, got {:#?}", parsed.config),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn proxy<'a>(config: &'a Config, name: &str) -> &'a Proxy {
    config
        .proxies
        .iter()
        .find(|p| p.name == name)
        .expect("proxy exists")
}

/// The words of the first `log` line of proxy `name`.
fn log_args(config: &Config, name: &str) -> Vec<String> {
    proxy(config, name).logs[0].args.clone()
}

#[test]
fn one_config_serves_three_nodes_on_one_machine() {
    for n in 11..=13 {
        let ip = format!("127.0.0.{n}");
        let dir = format!("/tmp/shoal-node-{n}");
        let c = config(CLUSTER, &[("NODE_IP", &ip), ("SHOAL_DIR", &dir)]);
        assert_eq!(c.global.stats_sockets[0].addr, format!("{dir}/admin.sock"));
        let web = proxy(&c, "web");
        assert_eq!(
            (web.binds[0].host.as_str(), web.binds[0].port),
            (ip.as_str(), 8080)
        );
        let servers = &proxy(&c, "app").servers;
        assert_eq!(
            (servers[0].addr.host.as_str(), servers[0].addr.port),
            (ip.as_str(), Some(9000)),
            "the default port"
        );
        assert_eq!(servers[1].addr.host, "127.0.0.1", "no variable, no change");
        let app = proxy(&c, "app");
        assert_eq!(app.timeouts.connect, Some(Duration::from_secs(5)));
    }
}

#[test]
fn a_default_gives_way_to_a_set_variable_even_an_empty_one() {
    let vars = [
        ("NODE_IP", "127.0.0.11"),
        ("SHOAL_DIR", "/run/shoal"),
        ("APP_PORT", "9001"),
        ("CONNECT_TIMEOUT", "2s"),
    ];
    let c = config(CLUSTER, &vars);
    assert_eq!(proxy(&c, "app").servers[0].addr.port, Some(9001));
    assert_eq!(
        proxy(&c, "app").timeouts.connect,
        Some(Duration::from_secs(2)),
        "a defaults section expands too"
    );
    // As in HAProxy, the default replaces an unset variable only.
    let text = "backend b\n    log \"${HOST-127.0.0.1}:514\" local0\n";
    assert_eq!(
        log_args(&config(text, &[]), "b"),
        ["127.0.0.1:514", "local0"]
    );
    assert_eq!(
        log_args(&config(text, &[("HOST", "")]), "b"),
        [":514", "local0"]
    );
}

#[test]
fn only_double_quotes_expand() {
    let text = r#"backend b
    log "$HOST" '$HOST' $HOST "\$HOST" \$HOST "${HOST}x" '${HOST}'
"#;
    assert_eq!(
        log_args(&config(text, &[("HOST", "h")]), "b"),
        ["h", "$HOST", "$HOST", "$HOST", "\\$HOST", "hx", "${HOST}"]
    );
}

#[test]
fn an_unset_variable_is_refused_at_its_line() {
    let text = CLUSTER.replace("${SHOAL_DIR}", "/run/shoal");
    let e = errors(&text, &[]);
    // Line 9 (`bind`) and line 12 (`server`); the defaulted ones pass. The
    // refused `bind` leaves the frontend without one, which line 8 says.
    let msg = "environment variable 'NODE_IP' is not set (HAProxy would use an empty string here; Shoal refuses, and '${NODE_IP-DEFAULT}' gives a default)";
    assert_eq!(
        e,
        [
            "t.cfg:8: frontend 'web' has no 'bind' line; declare it as a backend if it only has servers".to_string(),
            format!("t.cfg:9: {msg}"),
            format!("t.cfg:12: {msg}")
        ]
    );
    // `parse` reads this process's environment, which does not set it.
    let text = format!("backend b\n    server s \"${{{UNSET}}}:80\"\n");
    let e = parse(&text, "x.cfg").expect_err("refused");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].to_string().starts_with(&format!(
            "x.cfg:2: environment variable '{UNSET}' is not set"
        )),
        "{e:?}"
    );
}

#[test]
fn star_splits_a_value_into_words() {
    let text = r#"defaults
    timeout "${SERVER_TIMEOUT[*]}"
backend b
    server "${SERVER[*]}" backup
"#;
    let vars = [
        ("SERVER_TIMEOUT", "server 30s"),
        ("SERVER", "s1  127.0.0.1:8001\tweight 5"),
    ];
    let c = config(text, &vars);
    let b = proxy(&c, "b");
    assert_eq!(b.timeouts.server, Some(Duration::from_secs(30)));
    let s = &b.servers[0];
    assert_eq!(
        (s.name.as_str(), s.addr.port, s.weight, s.backup),
        ("s1", Some(8001), Some(5), true)
    );
    // Without `[*]` the value stays one word.
    let e = errors("defaults\n    timeout \"${SERVER_TIMEOUT}\"\n", &vars);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("t.cfg:2: "), "{e:?}");
}

#[test]
fn pseudo_variables_name_the_file_line_and_section() {
    let text = r#"backend app
    server "s${.LINE}" 127.0.0.1:8001
    server "s${.LINE}" 127.0.0.1:8002
    log "${.FILE}:${.SECTION}" local0
"#;
    let c = config(text, &[]);
    let app = proxy(&c, "app");
    let names: Vec<&str> = app.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["s2", "s3"]);
    assert_eq!(log_args(&c, "app"), ["t.cfg:app", "local0"]);
}

#[test]
fn values_are_used_as_written_and_the_printed_model_needs_no_environment() {
    let tricky = r#"a "b" $c #d \e 'f'"#;
    let text = "backend b\n    log \"${TRICKY}\" local0\n";
    let c = config(text, &[("TRICKY", tricky)]);
    assert_eq!(
        log_args(&c, "b"),
        [tricky, "local0"],
        "values are not re-read"
    );
    // The printer writes the model (values expanded), which reads back the
    // same anywhere.
    let printed = print(&c);
    assert_eq!(config(&printed, &[]), c, "{printed}");
}

/// Runs `child_parses_with_the_process_environment` in a new process of
/// this test binary, with the variables set there.
#[test]
fn parse_and_parse_file_read_the_process_environment() {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "child_parses_with_the_process_environment",
        ])
        .env("SHOAL_TEST_NODE_IP", "127.0.0.12")
        .env("SHOAL_TEST_DIR", std::env::temp_dir())
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "run by parse_and_parse_file_read_the_process_environment"]
fn child_parses_with_the_process_environment() {
    let text = "frontend f\n    bind \"${SHOAL_TEST_NODE_IP}:80\"\n";
    let c = parse(text, "t.cfg").expect("loads").config;
    assert_eq!(proxy(&c, "f").binds[0].host, "127.0.0.12");
    let dir = std::env::var_os("SHOAL_TEST_DIR").expect("set by the parent");
    let path = PathBuf::from(dir).join(format!("shoal-env-{}.cfg", std::process::id()));
    std::fs::write(&path, text).expect("write");
    let from_file = parse_file(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(from_file.expect("loads").config, c);
}
