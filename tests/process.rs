//! The real `chatgate` binary as a process: acknowledged webhooks and queued replies survive
//! `kill -9`, and redelivered updates are still recognised after the restart.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chatgate_testkit::http::Api;
use chatgate_testkit::mock::MockApi;
use chatgate_testkit::process::{Serve, free_port};
use serde_json::{Value, json};

const SECRET: &str = "process-secret";

type Gateway = Serve;

async fn start(config: &Path, data: &Path) -> Gateway {
    Serve::start(env!("CARGO_BIN_EXE_chatgate"), config, data, free_port(), &[], &[]).await
}

fn update(id: u64) -> String {
    json!({
        "update_id": id,
        "message": {"message_id": id, "date": 1718000000, "text": format!("message {id}"),
                    "from": {"id": 777, "is_bot": false, "first_name": "Ann"},
                    "chat": {"id": 777, "type": "private", "first_name": "Ann"}}
    })
    .to_string()
}

async fn post_update(api: &Api, id: u64) -> u16 {
    api.client
        .post(format!("{}/webhooks/telegram/main", api.base))
        .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
        .header("Content-Type", "application/json")
        .body(update(id))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn acknowledged_work_survives_kill_9() {
    let provider_up = Arc::new(AtomicBool::new(false));
    let tg = {
        let up = provider_up.clone();
        MockApi::start(move |_| {
            if up.load(Ordering::SeqCst) {
                (200, json!({"ok": true, "result": {"message_id": 5}}))
            } else {
                (502, json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}))
            }
        })
        .await
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("channels.toml");
    std::fs::write(
        &config,
        format!("[accounts.main]\nkind = \"telegram\"\nbot_token = \"1:process\"\nsecret_token = \"{SECRET}\"\napi_base_url = \"{}\"\n", tg.base_url),
    )
    .unwrap();
    let data = dir.path().join("data");

    let first = start(&config, &data).await;
    let posts: Vec<_> = (1..=50)
        .map(|id| {
            let api = first.api.clone();
            tokio::spawn(async move { post_update(&api, id).await })
        })
        .collect();
    for p in posts {
        assert_eq!(p.await.unwrap(), 200);
    }
    let (status, reply) = first
        .api
        .send(&json!({"channel": "telegram", "account": "main", "chat_id": "777", "text": "are you there?"}))
        .await;
    assert_eq!(status, 202, "{reply}");
    let id = reply["id"].as_str().unwrap().to_owned();
    drop(first); // SIGKILL: no graceful shutdown

    provider_up.store(true, Ordering::SeqCst);
    let second = start(&config, &data).await;
    let events = second.api.events(0).await;
    let messages = events.iter().filter(|e| e["type"] == "message").count();
    assert_eq!(messages, 50, "every acknowledged update is still there");
    assert_eq!(post_update(&second.api, 7).await, 200, "a redelivery is answered 200");
    let again = second.api.events(0).await;
    assert_eq!(again.iter().filter(|e| e["type"] == "message").count(), 50, "and stored once");

    let record = second.api.wait_message(&id, |m| m["status"] == "delivered").await;
    assert_eq!(record["status"], "delivered", "the queued reply was sent after the restart");
}

/// `chatgate normalize --channel telegram FILE` in the workspace root with an empty environment.
fn normalize(file: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .current_dir(chatgate_testkit::workspace_root())
        .env_clear()
        .args(["normalize", "--channel", "telegram", file])
        .output()
        .unwrap()
}

#[test]
fn normalize_prints_envelopes_with_the_shipped_config_and_no_environment() {
    let output = normalize("fixtures/telegram/photo-caption.body");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one envelope per line"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "message");
    assert_eq!(lines[0]["message"]["attachments"][0]["kind"], "image");

    let bad = normalize("Cargo.toml");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not JSON"), "{}", String::from_utf8_lossy(&bad.stderr));

    let schema = Command::new(env!("CARGO_BIN_EXE_chatgate")).arg("schema").output().unwrap();
    let schema: Value = serde_json::from_slice(&schema.stdout).unwrap();
    assert_eq!(schema["title"], "Event");
}
