//! `shoal check -f FILE` behaves like `haproxy -c -f FILE`.

use std::path::PathBuf;
use std::process::Command;

fn check(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("check")
        .arg("-f")
        .arg(path)
        .output()
        .expect("run shoal check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn every_seed_guide_config_passes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../proto/tests/seed");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("seed dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("cfg") {
            continue;
        }
        let (code, _, err) = check(&path);
        assert_eq!(code, 0, "{} failed:\n{err}", path.display());
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} seed configs found");
}

#[test]
fn errors_name_file_and_line_and_exit_1() {
    let cases = [
        ("unknown.cfg", "defaults\n    mode http\nfrontend fe\n    bind :80\n    defualt_backend be\nbackend be\n", 5, "did you mean 'default_backend'"),
        ("missing.cfg", "frontend fe\n    bind :80\n    use_backend nowhere if TRUE\n    default_backend be\nbackend be\n", 3, "nowhere"),
        ("addr.cfg", "backend be\n    server s1 10.0.0.1:99999\n", 2, "99999"),
        ("mode.cfg", "frontend fe\n    mode http\n    bind :80\n    default_backend be\nbackend be\n    mode tcp\n", 4, "mode"),
        ("dup.cfg", "backend be\n    server s1 127.0.0.1:1\n    server s1 127.0.0.1:2\n", 3, "s1"),
        ("weight.cfg", "backend be\n    server s1 127.0.0.1:1 weight 300\n", 2, "weight"),
    ];
    for (name, text, line, needle) in cases {
        let path = write(name, text);
        let (code, _, err) = check(&path);
        assert_eq!(code, 1, "{name} should fail; stderr:\n{err}");
        let want = format!("{}:{line}:", path.display());
        assert!(err.contains(&want), "{name}: want {want} in:\n{err}");
        assert!(err.contains(needle), "{name}: want {needle:?} in:\n{err}");
    }
}

#[test]
fn unimplemented_haproxy_keywords_warn_once() {
    let path = write(
        "warn.cfg",
        "frontend fe\n    bind :80\n    http-request set-header X-A 1\n    http-request set-header X-B 2\n    default_backend be\nbackend be\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"));
    assert_eq!(
        err.matches("http-request").count(),
        1,
        "warned once:\n{err}"
    );
    assert!(err.contains(":3:"), "{err}");
}
