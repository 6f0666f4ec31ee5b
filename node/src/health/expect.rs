//! `http-check expect` rules, compiled once and evaluated per response with
//! HAProxy 2.x's statuses and messages.

use super::response::Response;
use super::status::{CheckResult, Status};
use shoal_proto::config::{ExpectKind, HttpCheckExpect};

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    negate: bool,
    test: Test,
}

#[derive(Debug)]
enum Test {
    /// Inclusive status ranges (`200`, `200-399`, `200,301-302`).
    Status(Vec<(u16, u16)>),
    /// Regex on the three-digit status code.
    Rstatus(regex::Regex),
    /// Substring of the body.
    String(Vec<u8>),
    /// Regex on the body.
    Rstring(regex::bytes::Regex),
    /// A pattern that does not compile: it never matches, so a bad
    /// pattern fails loudly instead of passing silently.
    Broken,
}

/// Compile the rules of a backend; with none, HAProxy expects a 2xx or
/// 3xx status.
pub fn compile(rules: &[HttpCheckExpect]) -> Vec<Rule> {
    if rules.is_empty() {
        return vec![Rule {
            negate: false,
            test: Test::Status(vec![(200, 399)]),
        }];
    }
    rules
        .iter()
        .map(|r| {
            let test = match r.kind {
                ExpectKind::Status => status_ranges(&r.pattern).map(Test::Status),
                ExpectKind::Rstatus => regex::Regex::new(&r.pattern).ok().map(Test::Rstatus),
                ExpectKind::String => Some(Test::String(r.pattern.as_bytes().to_vec())),
                ExpectKind::Rstring => regex::bytes::Regex::new(&r.pattern).ok().map(Test::Rstring),
            };
            let test = test.unwrap_or_else(|| {
                tracing::warn!("http-check expect: invalid pattern '{}'", r.pattern);
                Test::Broken
            });
            Rule {
                negate: r.negate,
                test,
            }
        })
        .collect()
}

/// `200`, `200-399`, `200,204,300-310`.
fn status_ranges(text: &str) -> Option<Vec<(u16, u16)>> {
    text.split(',')
        .map(|part| {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
            (lo <= hi).then_some((lo, hi))
        })
        .collect()
}

/// Run every rule in order; the first that fails decides the result.
pub fn evaluate(rules: &[Rule], resp: &Response) -> CheckResult {
    let code = i32::from(resp.status);
    for rule in rules {
        let (matched, on_fail) = match &rule.test {
            Test::Status(ranges) => (
                ranges
                    .iter()
                    .any(|&(lo, hi)| (lo..=hi).contains(&resp.status)),
                Status::L7Sts,
            ),
            Test::Rstatus(re) => (re.is_match(&format!("{:03}", resp.status)), Status::L7Sts),
            Test::String(_) | Test::Rstring(_) if resp.body.is_empty() => {
                return CheckResult::new(Status::L7Rsp)
                    .code(code)
                    .info("HTTP content check could not find a response body");
            }
            Test::String(needle) => (contains(&resp.body, needle), Status::L7Rsp),
            Test::Rstring(re) => (re.is_match(&resp.body), Status::L7Rsp),
            Test::Broken => (rule.negate, Status::L7Rsp),
        };
        if matched == rule.negate {
            let info = match on_fail {
                // Status rules report the reason phrase, as HAProxy does.
                Status::L7Sts => resp.reason.clone(),
                _ if rule.negate => "HTTP check matched unwanted content".into(),
                _ => "HTTP content check did not match".into(),
            };
            return CheckResult::new(on_fail).code(code).info(info);
        }
    }
    CheckResult::new(Status::L7Ok).code(code)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
