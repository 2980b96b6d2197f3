//! The gateway on the NATS backend as the core sees it: the same `/v1/events` from every
//! instance, the events stream consumed directly with a NATS client, outbound submission by NATS
//! request with the same answers as `POST /v1/messages`, and start-time refusals that name the
//! setting. Real `nats-server` and `chatgate` processes on loopback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use chatgate_testkit::gateway::TOKEN;
use chatgate_testkit::nats::NatsServers;
use chatgate_testkit::process::{Serve, free_port};
use futures_util::StreamExt;
use serde_json::{Value, json};

const TG_SECRET: &str = "nats-gateway-secret";

fn write_config(dir: &Path, url: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("channels-{}.toml", free_port()));
    std::fs::write(
        &path,
        format!(
            r#"
[queue]
backend = "nats"
url = "{url}"
prefix = "cg"
{extra}

[accounts.main]
kind = "telegram"
bot_token = "1:gw"
secret_token = "{TG_SECRET}"
api_base_url = "http://127.0.0.1:9"
"#
        ),
    )
    .unwrap();
    path
}

async fn post_update(base: &str, n: u64) -> u16 {
    let body = json!({"update_id": n, "message": {"message_id": n, "date": 1718000000, "text": format!("gw-{n}"),
        "chat": {"id": 5, "type": "private"}, "from": {"id": 5, "is_bot": false, "first_name": "G"}}});
    reqwest::Client::new()
        .post(format!("{base}/webhooks/telegram/main"))
        .header("X-Telegram-Bot-Api-Secret-Token", TG_SECRET)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn two_instances_serve_one_log_and_the_core_can_read_it_and_submit_over_nats() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServers::single();
    let config = write_config(dir.path(), &nats.nodes[0].url(), "");
    let a = Serve::start(env!("CARGO_BIN_EXE_chatgate"), &config, &dir.path().join("a"), free_port(), &[], &[]).await;
    let b = Serve::start(env!("CARGO_BIN_EXE_chatgate"), &config, &dir.path().join("b"), free_port(), &[], &[]).await;
    for n in 1..=3 {
        assert_eq!(post_update(&a.api.base, n).await, 200);
        assert_eq!(post_update(&b.api.base, n + 10).await, 200);
    }
    // The same log, same seqs, from both instances.
    let from_a = a.api.events(0).await;
    let from_b = b.api.events(0).await;
    assert_eq!(from_a, from_b);
    let seqs: Vec<u64> = from_a.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs.len(), 6);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(from_a[0]["v"], 1);

    // The core may consume the stream itself: subject per account, payload = envelope v1 (no seq).
    let client = async_nats::connect(nats.nodes[0].url()).await.unwrap();
    let js = jetstream::new(client.clone());
    let stream = js.get_stream("cg_EVENTS").await.unwrap();
    let durable = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("core".into()),
            filter_subject: "cg.events.telegram.main".into(),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = durable.fetch().max_messages(10).messages().await.unwrap();
    let mut direct = Vec::new();
    while let Some(m) = batch.next().await {
        let m = m.unwrap();
        let envelope: Value = serde_json::from_slice(&m.payload).unwrap();
        direct.push((m.info().unwrap().stream_sequence, envelope["message"]["text"].as_str().unwrap().to_owned()));
        m.ack().await.unwrap();
    }
    let over_http: Vec<(u64, String)> = from_a
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), e["message"]["text"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(direct, over_http, "the stream sequence is the seq of /v1/events");

    // Outbound by NATS request: the same body and answers as POST /v1/messages.
    let ask = |body: Value| {
        let client = client.clone();
        async move {
            let reply = tokio::time::timeout(
                Duration::from_secs(10),
                client.request("cg.outbound", serde_json::to_vec(&body).unwrap().into()),
            )
            .await
            .expect("an answer in time")
            .expect("an answer");
            let status = reply.headers.as_ref().and_then(|h| h.get("Chatgate-Status")).unwrap().to_string();
            (status, serde_json::from_slice::<Value>(&reply.payload).unwrap())
        }
    };
    let (status, accepted) =
        ask(json!({"channel": "telegram", "account": "main", "chat_id": "5", "text": "hi", "idempotency_key": "k1"}))
            .await;
    assert_eq!(status, "202", "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    let (status, again) =
        ask(json!({"channel": "telegram", "account": "main", "chat_id": "5", "text": "hi", "idempotency_key": "k1"}))
            .await;
    assert_eq!((status.as_str(), again["id"].as_str()), ("202", Some(id.as_str())), "the same message again: {again}");
    let (status, rejected) =
        ask(json!({"channel": "telegram", "account": "main", "chat_id": "5", "text": "x".repeat(2001)})).await;
    assert_eq!((status.as_str(), rejected["error"]["code"].as_str()), ("422", Some("text_too_long")), "{rejected}");
    let (status, unknown) = ask(json!({"channel": "telegram", "account": "nope", "chat_id": "5", "text": "x"})).await;
    assert!(status.starts_with('4'), "{status} {unknown}");
    assert!(unknown["error"]["code"].is_string(), "{unknown}");
    // The message accepted over NATS is visible over HTTP from the other instance.
    assert_eq!(b.api.message(&id).await["id"], id.as_str());
}

/// `chatgate serve` that must refuse to start: its stderr.
fn refused(config: &Path, data: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port()), "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env("CHATGATE_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success(), "it started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_config_that_cannot_keep_its_promises_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServers::single();
    let url = nats.nodes[0].url();
    // Three replicas on a single server.
    let err = refused(&write_config(dir.path(), &url, "replicas = 3"), &dir.path().join("d1"));
    assert!(err.contains("queue.replicas"), "{err}");
    // Streams made with one replica, then a config asking for three... on the same single server
    // the creation check fires first; a stream with another retention is refused by name.
    let ok = write_config(dir.path(), &url, "");
    drop(Serve::start(env!("CARGO_BIN_EXE_chatgate"), &ok, &dir.path().join("d2"), free_port(), &[], &[]).await);
    let err = refused(&write_config(dir.path(), &url, "retention_days = 30"), &dir.path().join("d3"));
    assert!(err.contains("queue.retention_days"), "{err}");
    // A duplicate window outside 2..=3600 seconds.
    for window in ["duplicate_window_seconds = 1", "duplicate_window_seconds = 3601"] {
        let err = refused(&write_config(dir.path(), &url, window), &dir.path().join("d6"));
        assert!(err.contains("queue.duplicate_window_seconds must be between 2 and 3600"), "{err}");
    }
    // Settings that only make sense for NATS are refused with sqlite, and secrets must be set.
    let sqlite = dir.path().join("sqlite.toml");
    std::fs::write(&sqlite, "[queue]\nreplicas = 3\n").unwrap();
    let err = refused(&sqlite, &dir.path().join("d4"));
    assert!(err.contains("queue.replicas"), "{err}");
    let err = refused(
        &write_config(dir.path(), &url, "token = \"${CHATGATE_TEST_UNSET_NATS_TOKEN}\""),
        &dir.path().join("d5"),
    );
    assert!(err.contains("queue.token") && err.contains("CHATGATE_TEST_UNSET_NATS_TOKEN"), "{err}");
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, made with the `openssl` CLI in
/// `dir`: (CA certificate, server certificate, server key).
fn test_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("the TLS test needs the openssl command (apt-get install openssl): {e}"));
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]
        .into_iter()
        .chain(["-subj", "/CN=chatgate test CA"])
        .collect::<Vec<_>>());
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

#[tokio::test]
async fn credentials_and_tls_reach_nats_and_wrong_ones_are_refused_without_the_secret() {
    const PASSWORD: &str = "nats-pass-9f3c1e";
    let mut certs = None;
    let nats = NatsServers::single_with(|dir| {
        let (ca, cert, key) = test_certificates(dir);
        certs = Some(ca);
        format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\nauthorization {{\n  user: chatgate\n  password: \"{PASSWORD}\"\n}}",
            cert.display(),
            key.display()
        )
    });
    let ca = certs.unwrap();
    let url = format!("tls://127.0.0.1:{}", nats.nodes[0].port);
    let dir = tempfile::tempdir().unwrap();
    let tls = format!("tls = true\ntls_ca_file = \"{}\"", ca.display());
    let credentials = "user = \"${CG_TEST_NATS_USER}\"\npassword = \"${CG_TEST_NATS_PASSWORD}\"";
    // Right credentials over TLS: the gateway starts and stores a webhook.
    let config = write_config(dir.path(), &url, &format!("{credentials}\n{tls}"));
    let env = ["env", "CG_TEST_NATS_USER=chatgate", &format!("CG_TEST_NATS_PASSWORD={PASSWORD}")];
    let gw =
        Serve::start(env!("CARGO_BIN_EXE_chatgate"), &config, &dir.path().join("d1"), free_port(), &[], &env).await;
    assert_eq!(post_update(&gw.api.base, 1).await, 200);
    let events = gw.api.events(0).await;
    assert_eq!(events[0]["message"]["text"], "gw-1", "{events:?}");
    drop(gw);
    // A wrong password: refused, naming the setting, never showing the password given.
    let refused_with = |password: &str, config: &Path, data: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port()), "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(dir.path().join(data))
            .env("CHATGATE_API_TOKEN", TOKEN)
            .env("CG_TEST_NATS_USER", "chatgate")
            .env("CG_TEST_NATS_PASSWORD", password)
            .output()
            .unwrap();
        assert!(!out.status.success(), "it started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let wrong = "wrong-pass-77aa01";
    let err = refused_with(wrong, &config, "d2");
    assert!(err.contains("queue.user") && err.contains("refused the credentials"), "{err}");
    assert!(!err.contains(wrong) && !err.contains(PASSWORD), "a password in the error: {err}");
    // TLS without our CA: the server's certificate is not trusted.
    let untrusted = write_config(dir.path(), &url, &format!("{credentials}\ntls = true"));
    let err = refused_with(PASSWORD, &untrusted, "d3");
    assert!(err.contains("queue.tls_ca_file") && err.contains("not trusted"), "{err}");
    assert!(!err.contains(PASSWORD), "the password in the error: {err}");
    // No TLS at all against a server that requires it.
    let plain = write_config(dir.path(), &format!("nats://127.0.0.1:{}", nats.nodes[0].port), credentials);
    let err = refused_with(PASSWORD, &plain, "d4");
    assert!(err.contains("queue.") && !err.contains(PASSWORD), "{err}");
    // No credentials for a server that requires them (over TLS with the CA).
    let anonymous = write_config(dir.path(), &url, &tls);
    let err = refused_with(PASSWORD, &anonymous, "d5");
    assert!(err.contains("queue.token") && err.contains("requires credentials"), "{err}");
}
