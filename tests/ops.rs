//! Operating the gateway: `/metrics` (HELP/TYPE for every family, the histograms, outbox and lag
//! gauges, retries by kind, no secrets, its own token and listener), `/healthz` and `/readyz`,
//! and the `[core]` / `[metrics]` config.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, StatusCode};
use chatgate::config::{self, MissingSecrets};
use chatgate_adapter::Secret;
use chatgate_testkit::account_settings;
use chatgate_testkit::gateway::Harness;
use chatgate_testkit::http::sample;
use chatgate_testkit::process::{Serve, free_port};
use serde_json::{Value, json};

async fn telegram(configure: impl FnOnce(&mut chatgate_server::Settings)) -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let factory = chatgate::registry::factory("telegram").unwrap();
    // The provider's address refuses connections: every send is a transient failure.
    let adapter = factory.build("test", account_settings("telegram")).unwrap();
    let h = Harness::start_in(dir.path(), vec![adapter], configure).await;
    (h, dir)
}

async fn metrics(h: &Harness, headers: &[(&str, &str)]) -> (StatusCode, String) {
    h.request(Method::GET, "/metrics", headers, Body::empty()).await
}

fn update(n: u64) -> String {
    json!({"update_id": n, "message": {"message_id": n, "date": 1718000000, "text": "hi",
        "from": {"id": 42, "is_bot": false, "first_name": "Ann"}, "chat": {"id": 42, "type": "private", "first_name": "Ann"}}})
    .to_string()
}

#[tokio::test]
async fn metrics_have_help_and_type_histograms_outbox_lag_and_retries_by_kind() {
    let (h, _dir) = telegram(|_| {}).await;
    assert_eq!(h.webhook(&update(1), &[]).await.0, StatusCode::OK);
    // A webhook URL naming no configured account is not timed (no label sets from strangers).
    let (status, _) = h.request(Method::POST, "/webhooks/telegram/stranger", &[], Body::from("{}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, sent) =
        h.send(json!({"channel": "telegram", "account": "test", "chat_id": "42", "text": "hello"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    // The core pulls from the start: everything on the log is "not pulled" yet.
    let _ = h.events_after(0).await;

    // Wait until delivery has retried (the provider refuses connections).
    let started = Instant::now();
    let text = loop {
        let (status, text) = metrics(&h, &[]).await;
        assert_eq!(status, StatusCode::OK);
        if text.contains("chatgate_outbound_retries_total{channel=\"telegram\",account=\"test\",kind=\"transient\"} ")
            && sample(
                &text,
                "chatgate_outbound_retries_total{channel=\"telegram\",account=\"test\",kind=\"transient\"}",
            ) >= 1.0
        {
            break text;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no transient retry counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Every family has HELP and TYPE.
    let mut families = 0;
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP line");
        families += 1;
    }
    assert!(families >= 29, "only {families} families");
    assert!(text.ends_with("# EOF\n"), "an OpenMetrics exposition ends with # EOF");

    let account = "channel=\"telegram\",account=\"test\"";
    assert_eq!(sample(&text, &format!("chatgate_webhooks_accepted_total{{{account}}}")), 1.0);
    assert!(text.contains("# TYPE chatgate_webhook_duration_seconds histogram"));
    assert_eq!(sample(&text, &format!("chatgate_webhook_duration_seconds_count{{{account}}}")), 1.0);
    assert!(!text.contains("stranger"), "an unknown account got a label set");
    assert_eq!(sample(&text, "chatgate_commit_duration_seconds_count{channel=\"telegram\"}"), 1.0);
    assert!(sample(&text, &format!("chatgate_send_duration_seconds_count{{{account}}}")) >= 1.0);
    assert_eq!(sample(&text, &format!("chatgate_outbound_retries_total{{{account},kind=\"retry_after\"}}")), 0.0);
    assert_eq!(sample(&text, &format!("chatgate_outbox_depth{{{account}}}")), 1.0);
    assert!(sample(&text, &format!("chatgate_outbox_oldest_age_seconds{{{account}}}")) > 0.0);
    for family in ["inbound_blocked", "inbound_unsupported", "inbound_unrouted", "inbound_duplicates"] {
        assert_eq!(sample(&text, &format!("chatgate_{family}_total{{{account}}}")), 0.0, "{family}");
    }
    let durable = sample(&text, "chatgate_queue_durable_seq");
    assert!(durable >= 2.0, "the message and the queued status are on the log");
    assert_eq!(sample(&text, "chatgate_events_unpulled"), durable);
    assert!(sample(&text, "chatgate_events_oldest_unpulled_age_seconds") >= 0.0);
    assert!(!text.contains("chatgate_push_lag_events"), "no push lag without push");

    // Secrets of the account never appear.
    let settings = account_settings("telegram");
    for secret in [settings["bot_token"].as_str().unwrap(), settings["secret_token"].as_str().unwrap()] {
        assert!(!text.contains(secret), "a secret is in /metrics");
    }

    // The core catches up.
    let _ = h.events_after(durable as u64).await;
    let (_, text) = metrics(&h, &[]).await;
    assert_eq!(sample(&text, "chatgate_events_unpulled"), sample(&text, "chatgate_queue_durable_seq") - durable);
}

#[tokio::test]
async fn metrics_can_require_their_own_token() {
    let token = "metrics-token-0123456789";
    let (h, _dir) = telegram(|s| s.metrics.token = Some(Secret::new(token))).await;
    assert_eq!(metrics(&h, &[]).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(metrics(&h, &[("authorization", "Bearer wrong-token-0123456789")]).await.0, StatusCode::UNAUTHORIZED);
    let api_token = format!("Bearer {}", chatgate_testkit::gateway::TOKEN);
    assert_eq!(
        metrics(&h, &[("authorization", &api_token)]).await.0,
        StatusCode::UNAUTHORIZED,
        "the API token is not the metrics token"
    );
    let bearer = format!("Bearer {token}");
    let (status, text) = metrics(&h, &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("# TYPE chatgate_webhooks_accepted counter"));
    // A gateway with the metrics on a listener of their own has no /metrics on the main one.
    let (h, _dir) = telegram(|s| s.metrics.separate_listener = true).await;
    assert_eq!(metrics(&h, &[]).await.0, StatusCode::NOT_FOUND);
}

async fn readyz(h: &Harness) -> (StatusCode, Value) {
    let (status, text) = h.request(Method::GET, "/readyz", &[], Body::empty()).await;
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
}

#[tokio::test]
async fn readyz_checks_the_store_the_accounts_the_push_target_and_shutdown() {
    let (h, _dir) = telegram(|_| {}).await;
    assert_eq!(h.request(Method::GET, "/healthz", &[], Body::empty()).await, (StatusCode::OK, "ok".to_owned()));
    let (status, body) = readyz(&h).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"ready": true, "checks": {
        "queue": {"ok": true}, "accounts": {"ok": true, "count": 1}, "shutdown": {"ok": true}}})
    );
    h.gateway().begin_shutdown();
    let (status, body) = readyz(&h).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["checks"]["shutdown"]["ok"], false, "{body}");
    assert_eq!(h.request(Method::GET, "/healthz", &[], Body::empty()).await.0, StatusCode::OK, "still alive");

    // No account enabled: not ready.
    let dir = tempfile::tempdir().unwrap();
    let empty = Harness::start_in(dir.path(), vec![], |_| {}).await;
    let (status, body) = readyz(&empty).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["checks"]["accounts"]["ok"], false, "{body}");

    // A push target that refuses connections: not ready once a push failed; pull still works.
    let closed = free_port();
    let (h, _dir) = telegram(|s| {
        let mut push = chatgate_server::PushSettings::new(
            format!("http://127.0.0.1:{closed}/in").parse().unwrap(),
            "push-secret-0123456789",
        );
        push.base_backoff = Duration::from_millis(20);
        push.max_backoff = Duration::from_millis(50);
        s.push = Some(push);
    })
    .await;
    assert_eq!(h.webhook(&update(7), &[]).await.0, StatusCode::OK);
    let started = Instant::now();
    loop {
        let (status, body) = readyz(&h).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["checks"]["push"]["ok"], false, "{body}");
            assert!(body["checks"]["push"]["error"].as_str().unwrap().contains("pushing to the core fails"), "{body}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "readyz never saw the push fail: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.events().await.len(), 1, "pull works beside a failing push");
    let (_, text) = metrics(&h, &[]).await;
    assert_eq!(sample(&text, "chatgate_push_lag_events"), 1.0);
    assert!(sample(&text, "chatgate_push_lag_seconds") >= 0.0);
    assert!(sample(&text, "chatgate_push_failures_total") >= 1.0);
}

fn parse(text: &str) -> anyhow::Result<config::Config> {
    let env = |name: &str| (name == "PUSH_SECRET").then(|| "push-secret-0123456789".to_owned());
    config::parse(text, &env, MissingSecrets::Disable)
}

#[test]
fn core_and_metrics_sections_are_checked_and_name_the_key() {
    let ok = parse(
        "[core]\npush_url = \"https://core.example/in\"\npush_secret = \"${PUSH_SECRET}\"\npush_batch = 50\n\
         [metrics]\nlisten = \"127.0.0.1:9464\"\ntoken = \"${PUSH_SECRET}\"\n",
    )
    .unwrap();
    let push = ok.push.unwrap();
    assert_eq!(
        (push.url.as_str(), push.secret.expose(), push.batch),
        ("https://core.example/in", "push-secret-0123456789", 50)
    );
    assert_eq!(ok.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
    assert!(ok.metrics_token.is_some());
    assert!(parse("").unwrap().push.is_none(), "no [core]: pull only");

    for (text, expected) in [
        ("[core]\npush_url = \"https://core.example/in\"\n", "core.push_secret is required"),
        ("[core]\npush_url = \"ftp://core.example/in\"\npush_secret = \"${PUSH_SECRET}\"\n", "http(s)"),
        ("[core]\npush_url = \"https://core.example/in\"\npush_secret = \"${UNSET_VAR}\"\n", "UNSET_VAR"),
        ("[core]\npush_url = \"https://core.example/in\"\npush_secret = \"short\"\n", "at least 16"),
        (
            "[core]\npush_url = \"https://core.example/in\"\npush_secret = \"${PUSH_SECRET}\"\npush_batch = 0\n",
            "push_batch",
        ),
        ("[core]\npush_urll = \"https://core.example/in\"\n", "push_urll"),
        ("[metrics]\nlisten = \"nowhere\"\n", "metrics"),
        ("[metrics]\ntoken = \"short\"\n", "metrics.token"),
    ] {
        let err = format!("{:#}", parse(text).unwrap_err());
        assert!(err.contains(expected), "`{text}`: {err} does not name {expected}");
    }
}

#[tokio::test]
async fn the_binary_serves_metrics_on_their_own_listener_behind_their_token() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let token = "metrics-token-abcdef0123";
    let config = dir.path().join("channels.toml");
    let tg = account_settings("telegram");
    std::fs::write(
        &config,
        format!(
            "[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\ntoken = \"{token}\"\n\n[accounts.main]\nkind = \"telegram\"\n\
             bot_token = \"{}\"\nsecret_token = \"{}\"\napi_base_url = \"http://127.0.0.1:9\"\n",
            tg["bot_token"].as_str().unwrap(),
            tg["secret_token"].as_str().unwrap()
        ),
    )
    .unwrap();
    let gateway =
        Serve::start(env!("CARGO_BIN_EXE_chatgate"), &config, &dir.path().join("data"), free_port(), &[], &[]).await;
    let client = &gateway.api.client;
    let main = client.get(format!("{}/metrics", gateway.api.base)).send().await.unwrap();
    assert_eq!(main.status(), 404, "not on the main listener");
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    let answer = client.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], chatgate_server::metrics::CONTENT_TYPE);
    let text = answer.text().await.unwrap();
    assert!(text.contains("chatgate_webhooks_accepted_total{channel=\"telegram\",account=\"main\"} 0"), "{text}");
    let ready = client.get(format!("{}/readyz", gateway.api.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}
