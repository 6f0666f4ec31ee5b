//! Every config example of the seed guide (tests/seed/*.cfg) loads without
//! errors and survives a print/parse round trip.

use shoal_proto::config::{parse, print, Config, Parsed};
use std::path::PathBuf;

fn seed_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/seed");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/seed exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 15,
        "expected the seed configs, found {}",
        files.len()
    );
    files
}

fn load(path: &PathBuf) -> Parsed {
    let text = std::fs::read_to_string(path).expect("readable seed file");
    let name = path.display().to_string();
    match parse(&text, &name) {
        Ok(parsed) => parsed,
        Err(errors) => {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("{name} has errors:\n{}", list.join("\n"));
        }
    }
}

fn round_trip(config: &Config, name: &str) {
    let text = print(config);
    match parse(&text, "printed") {
        Ok(again) => assert_eq!(
            &again.config, config,
            "{name}: round trip changed the config; printed:\n{text}"
        ),
        Err(errors) => {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!(
                "{name}: printed config does not parse:\n{}\n---\n{text}",
                list.join("\n")
            );
        }
    }
}

#[test]
fn every_seed_config_parses_and_round_trips() {
    for path in seed_files() {
        let parsed = load(&path);
        assert!(
            !parsed.config.proxies.is_empty(),
            "{} has no proxies",
            path.display()
        );
        round_trip(&parsed.config, &path.display().to_string());
    }
}

#[test]
fn global_timeouts_of_section_9_1_warn_and_are_kept() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/seed/s9_1_timeouts.cfg");
    let parsed = load(&path);
    let t = &parsed.config.global.timeouts;
    assert_eq!(t.http_request, Some(std::time::Duration::from_secs(10)));
    assert_eq!(t.http_keep_alive, Some(std::time::Duration::from_secs(2)));
    let fallback: Vec<_> = parsed
        .warnings
        .iter()
        .filter(|w| w.message.contains("fallback"))
        .collect();
    assert_eq!(fallback.len(), 2, "{:?}", parsed.warnings);
}

#[test]
fn escaped_httpchk_of_section_4_2_is_decoded() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/seed/s4_2_http_health_check.cfg");
    let parsed = load(&path);
    let api = parsed
        .config
        .proxies
        .iter()
        .find(|p| p.name == "api_servers")
        .expect("api_servers");
    let chk = api.options.httpchk.as_ref().expect("httpchk");
    assert_eq!(
        (chk.method.as_str(), chk.uri.as_str()),
        ("GET", "/api/health")
    );
    assert_eq!(chk.version, "HTTP/1.1\r\nHost: example.com");
    assert_eq!(api.http_check_expect[0].pattern, "OK");
}

#[test]
fn tcp_mode_cookie_of_section_10_3_is_a_warning() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/seed/s10_3_deployments.cfg");
    let parsed = load(&path);
    assert!(
        parsed
            .warnings
            .iter()
            .any(|w| w.message.contains("'cookie APISERVER' is ignored")),
        "{:?}",
        parsed.warnings
    );
    let api = parsed
        .config
        .proxies
        .iter()
        .find(|p| p.name == "api_servers")
        .expect("api_servers");
    assert!(api.cookie.is_some(), "the cookie stays in the model");
}
