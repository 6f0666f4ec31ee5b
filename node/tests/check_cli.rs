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
fn tls_bind_with_a_missing_certificate_is_refused_naming_the_line() {
    let path = write(
        "tls.cfg",
        "frontend fe\n    mode http\n    bind :443 ssl crt /nonexistent/x.pem\n    default_backend be\nbackend be\n    mode http\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!out.contains("valid"), "{out}");
    let want = format!(
        "{}:3: cannot load certificate '/nonexistent/x.pem': No such file or directory",
        path.display()
    );
    assert!(
        err.lines().any(|l| l.starts_with(&want)),
        "want {want:?} in:\n{err}"
    );
}

#[test]
fn performance_only_haproxy_keywords_warn_once() {
    let path = write(
        "warn.cfg",
        "global\n    cpu-map auto:1/1-4 0-3\nfrontend fe\n    bind :80\n    option tcp-smart-accept\n    option tcp-smart-accept\n    default_backend be\nbackend be\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"));
    assert_eq!(
        err.matches("tcp-smart-accept").count(),
        1,
        "warned once:\n{err}"
    );
    assert!(err.contains(":5: 'option tcp-smart-accept'"), "{err}");
    assert!(err.contains(":2: 'cpu-map'"), "{err}");
}

/// A 105 MB config of 1 MB words: `shoal check` used to take 9.5 s and
/// 418 MB and echo every word. Now each line over the limit is skipped
/// unread, nothing long is echoed, and reading stops after 50 errors, in
/// bounded memory (checked with an address-space limit on the process).
#[test]
fn huge_config_is_checked_in_bounded_time_and_memory() {
    use std::io::Write;
    let path = write("huge.cfg", "");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let word = "A".repeat(1 << 20);
    writeln!(file, "global").expect("write");
    for _ in 0..105 {
        writeln!(file, "    {word}").expect("write");
    }
    file.flush().expect("flush");
    drop(file);

    let started = std::time::Instant::now();
    // 256 MB of address space: the old reader needed more than 400 MB.
    let out = Command::new("bash")
        .arg("-c")
        .arg("ulimit -v 262144 && exec \"$0\" check -f \"$1\"")
        .arg(env!("CARGO_BIN_EXE_shoal"))
        .arg(&path)
        .output()
        .expect("run shoal check under ulimit");
    let elapsed = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err:.2000}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 51, "50 errors and the stop line:\n{err:.3000}");
    let name = path.display().to_string();
    assert_eq!(
        lines[0],
        format!("{name}:2: line too long (more than 65536 bytes); it is not read")
    );
    assert_eq!(
        lines[50],
        format!(
            "{name}:51: too many errors (50); stopping here without reading the rest of the file"
        )
    );
    assert!(
        err.len() < 20_000,
        "nothing long is echoed: {} bytes",
        err.len()
    );
    // Generous: a debug build takes well under a second on an idle machine.
    assert!(
        elapsed < std::time::Duration::from_secs(20),
        "took {elapsed:?}"
    );
    let _ = std::fs::remove_file(&path);
}

/// Long words that do fit in a line are cut when echoed.
#[test]
fn long_words_are_cut_in_messages() {
    let word = "B".repeat(60_000);
    let text: String = std::iter::once("backend be\n".to_string())
        .chain((0..200).map(|_| format!("    {word} x\n")))
        .collect();
    let path = write("words.cfg", &text);
    let (code, _, err) = check(&path);
    assert_eq!(code, 1);
    let first = err.lines().next().unwrap_or_default();
    let cut = format!("'{}...'", "B".repeat(64));
    assert_eq!(
        first,
        format!(
            "{}:2: unknown keyword {cut} in 'backend' section",
            path.display()
        )
    );
    assert_eq!(err.lines().count(), 51, "{err:.3000}");
    assert!(err.len() < 20_000, "{} bytes", err.len());
    let _ = std::fs::remove_file(&path);
}

/// An endless input (here `/dev/zero`) is read up to the size cap, in
/// bounded memory, and refused; it used to be read until memory ran out.
#[test]
fn endless_input_is_refused_at_the_size_cap() {
    let out = Command::new("bash")
        .arg("-c")
        .arg("ulimit -v 262144 && exec \"$0\" check -f /dev/zero")
        .arg(env!("CARGO_BIN_EXE_shoal"))
        .output()
        .expect("run shoal check under ulimit");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err:.2000}");
    assert_eq!(
        err.trim_end(),
        "/dev/zero:1: the file is larger than 64 MiB; Shoal reads no further"
    );
}
