//! The stats page's admin controls in a cluster: a server set to maint
//! through one node's page (the form posted as the page renders it) is in
//! maint on every node and takes no traffic through any; back to ready
//! through another node's page; and one real click in Chromium.

use crate::support::*;
use scraper::{Html, Selector};
use std::net::SocketAddr;

/// The stats frontend every node serves (no credentials; admin from
/// loopback, where the tests run).
const STATS: &str = "frontend stats\n\
                     \x20   bind \"${NODE_IP}:0\"\n\
                     \x20   stats enable\n\
                     \x20   stats uri /stats\n\
                     \x20   stats admin if LOCALHOST\n";

/// GET the stats page at `addr`: its HTML.
async fn page(addr: SocketAddr) -> String {
    let r = get(addr, "/stats").await;
    assert_eq!(r.status, 200, "the stats page at {addr}: {}", r.body);
    r.body
}

/// What a browser submits when `button` (its `data-action`) is clicked in
/// the form of `server` (`backend/server`): the form's `action` and its
/// body, `application/x-www-form-urlencoded`, the controls in document
/// order with the clicked button the only button included.
fn submission(html: &str, server: &str, button: &str) -> (String, String) {
    let doc = Html::parse_document(html);
    let css = format!("tr[data-server=\"{server}\"] form");
    let form_sel = Selector::parse(&css).expect("a valid selector");
    let form = doc
        .select(&form_sel)
        .next()
        .unwrap_or_else(|| panic!("no form in the row of {server} ({css}) in:\n{html}"));
    assert_eq!(
        form.value().attr("method").map(str::to_ascii_lowercase),
        Some("post".to_string()),
        "the form of {server} posts"
    );
    let action = form
        .value()
        .attr("action")
        .unwrap_or_else(|| panic!("the form of {server} has no action"))
        .to_string();
    let controls = Selector::parse("input[name], button[name]").expect("a valid selector");
    let mut body = form_urlencoded::Serializer::new(String::new());
    let mut clicked = false;
    for control in form.select(&controls) {
        let el = control.value();
        let name = el.attr("name").unwrap_or_default();
        let value = el.attr("value").unwrap_or_default();
        match el.name() {
            "button" if el.attr("data-action") == Some(button) => {
                clicked = true;
                body.append_pair(name, value);
            }
            "button" => {}
            _ => match el.attr("type").unwrap_or("text") {
                "submit" | "button" | "reset" | "image" => {}
                "checkbox" | "radio" if el.attr("checked").is_none() => {}
                _ => {
                    body.append_pair(name, value);
                }
            },
        }
    }
    assert!(
        clicked,
        "no named button data-action={button:?} in the form of {server}"
    );
    (action, body.finish())
}

/// Click `button` in the form of `server` on the stats page at `addr` as
/// its HTML says, and check the page's answer: 303 to `URI;st=DONE`.
async fn post_from_page(addr: SocketAddr, server: &str, button: &str) {
    let (action, body) = submission(&page(addr).await, server, button);
    assert!(
        action.starts_with('/'),
        "the form posts to a path on the same frontend: {action:?}"
    );
    let r = try_http(
        addr,
        "POST",
        &action,
        &[("content-type", "application/x-www-form-urlencoded")],
        &body,
        DEADLINE,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let location = r.headers.get("location").and_then(|v| v.to_str().ok());
    assert_eq!(
        (r.status, location),
        (303, Some(format!("{action};st=DONE").as_str())),
        "posting {body:?} to {action} on {addr}: {}",
        r.body
    );
}

/// Wait until node `id`'s runtime socket shows `app/s2` as `status`.
async fn wait_s2_status(c: &Cluster, id: u64, status: &str) {
    let socket = c.node(id).socket();
    poll(
        &format!("node {id}'s show stat gives app/s2 {status}"),
        || async { (stat_field(&socket, "app", "s2", "status") == status).then_some(()) },
    )
    .await;
}

/// Connections `backend` accepted so far, this query's included.
async fn conns(backend: &Backend) -> usize {
    let r = get(backend.addr, "/conns").await;
    r.body.trim().parse().expect("a connection count")
}

/// No request through `fronts` reaches s2: every answer comes from s1, and
/// s2 accepts no connection but the probes.
async fn s2_gets_nothing(s2: &Backend, fronts: &[(u64, SocketAddr)], why: &str) {
    let before = conns(s2).await;
    for &(id, front) in fronts {
        let t = tally(front, 30).await;
        assert_eq!(
            t.get("s1"),
            Some(&30),
            "s2 ({why}) got traffic through node {id}: {t:?}"
        );
    }
    assert_eq!(
        conns(s2).await,
        before + 1,
        "s2 ({why}) accepted connections besides the probes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_page_buttons_act_cluster_wide() {
    require_chromium();
    let s1 = Backend::http("s1");
    let s2 = Backend::http("s2");
    let mut c = Cluster::start(3, &config(&[&s1, &s2], STATS)).await;
    let all = c.ids();
    let stats: Vec<SocketAddr> = all
        .iter()
        .map(|&id| c.node_mut(id).front("stats"))
        .collect();
    let fronts: Vec<(u64, SocketAddr)> = all
        .iter()
        .map(|&id| (id, c.node_mut(id).front("web")))
        .collect();
    let stats_of = |id: u64| stats[(id - 1) as usize];
    let others = [fronts[0], fronts[2]];

    // Maint through node 2's page, as its form says.
    post_from_page(stats_of(2), "app/s2", "maint").await;
    for id in [1, 3] {
        wait_s2_status(&c, id, "MAINT").await;
        assert_eq!(
            c.server(id, "app", "s2").await["status"],
            "MAINT",
            "node {id}'s admin API"
        );
    }
    s2_gets_nothing(&s2, &others, "maint through node 2's stats page").await;

    // Ready again through node 3's page.
    post_from_page(stats_of(3), "app/s2", "ready").await;
    for &id in &all {
        wait_s2_status(&c, id, "no check").await;
    }
    for &(id, front) in &fronts {
        poll(&format!("node {id} sends to s2 again"), || async {
            tally(front, 10).await.contains_key("s2").then_some(())
        })
        .await;
    }

    // One real click in Chromium on node 2's page: drain.
    let dir = TempDir::new("chromium");
    let driver = Driver::start(&dir.path("profile")).await;
    driver.open(&format!("http://{}/stats", stats_of(2))).await;
    assert_eq!(
        driver.text("tr[data-server=\"app/s2\"] td.st").await,
        "no check"
    );
    driver
        .click("button[data-server=\"app/s2\"][data-action=\"drain\"]")
        .await;
    driver.wait_url("/stats;st=DONE").await;
    assert_eq!(
        driver.text("#action-result").await,
        "Action processed successfully."
    );
    assert_eq!(
        driver.text("tr[data-server=\"app/s2\"] td.st").await,
        "DRAIN",
        "node 2's page after the click"
    );
    drop(driver);
    for id in [1, 3] {
        wait_s2_status(&c, id, "DRAIN").await;
    }
    s2_gets_nothing(&s2, &others, "drained by a click on node 2's page").await;
    c.converged(&all).await;
}
