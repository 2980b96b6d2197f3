//! `chatgate serve --record DIR` and `chatgate fixtures add`: webhooks recorded through the real
//! binary keep no secret and no personal data, still parse to the same kinds of events, and become
//! fixtures whose golden output the insta snapshot flow accepts; a recorder that cannot write never
//! fails a webhook.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chatgate::registry;
use chatgate_testkit::gateway::Harness;
use chatgate_testkit::process::{Serve, free_port};
use chatgate_testkit::snapshot::assert_envelopes;
use chatgate_testkit::{account_settings, fixture, fixture_dir, handle, load_fixture, test_account};
use http::StatusCode;

/// The fixtures posted: (channel, name).
const POSTED: [(&str, &str); 5] = [
    ("telegram", "contact"),
    ("telegram", "text-entities"),
    ("vk", "message-new-text"),
    ("whatsapp", "contacts"),
    ("viber", "message-text"),
];

/// Secrets and personal data in those fixtures (and their headers) that no recording may keep.
const NEVER_RECORDED: &[&str] = &[
    // secrets: Telegram's secret header, VK's secret in the body, Meta's and Viber's signatures
    "fixture-secret_7Qw2",
    "test-secret",
    "sha256=",
    "X-Viber-Content-Signature",
    // Telegram contact: the sender and the shared contact
    "Maria",
    "Ivanova",
    "maria_iv",
    "523847190",
    "491701234567",
    "Jonas",
    "Becker",
    "5550123456",
    // VK: the sender and the text
    "512345678",
    "Здравствуйте",
    // WhatsApp contacts
    "Erika",
    "Mustermann",
    "4915112345678",
    "Jana",
    "Schmidt",
    "jana@example.com",
    "151 98765432",
    "Lukas",
    // Viber: the sender, the avatar URL's parameters, the text
    "Olena",
    "Kovalenko",
    "gKk1aVm8QbO7i3Gdx0Zs2w",
    "0A1b2C3d4E5f",
    "Привіт",
];

fn toml_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// A `channels.toml` with one account per posted channel, its settings those of the fixture account.
fn config(dir: &Path) -> PathBuf {
    let mut text = String::new();
    let mut channels: Vec<&str> = POSTED.iter().map(|(c, _)| *c).collect();
    channels.dedup();
    for channel in channels {
        text.push_str(&format!("[accounts.{channel}-1]\nkind = \"{channel}\"\n"));
        for (key, value) in account_settings(channel).as_object().unwrap() {
            text.push_str(&format!("{key} = {}\n", toml_value(value)));
        }
    }
    let path = dir.join("channels.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for channel in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(channel.path()).into_iter().flatten().flatten() {
            out.push(file.path());
        }
    }
    out.sort();
    out
}

/// The `type`s of the events a fixture gives for the test account.
fn kinds_of(channel: &str, name: &str) -> Vec<String> {
    let factory = registry::factory(channel).unwrap();
    let f = fixture(channel, name);
    let inbound = handle(test_account(factory).as_ref(), &f.request()).unwrap();
    inbound.events.iter().map(|e| serde_json::to_value(e.event.kind).unwrap().as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn recorded_webhooks_are_redacted_and_become_fixtures_of_the_same_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("recorded");
    let config = config(dir.path());
    let port = free_port();
    let serve = Serve::start(
        env!("CARGO_BIN_EXE_chatgate"),
        &config,
        &dir.path().join("data"),
        port,
        &["--record", record.to_str().unwrap()],
        &[],
    )
    .await;
    for (channel, name) in POSTED {
        let body = fixture_dir(channel).join(format!("{name}.body"));
        let url = format!("{}/webhooks/{channel}/{channel}-1", serve.api.base);
        chatgate::commands::replay(&config, &[body], &url).await.unwrap();
    }
    // The recorder writes after the answer: wait for every recording (bounded).
    let mut bodies = Vec::new();
    for _ in 0..500 {
        bodies = files_in(&record).into_iter().filter(|p| p.extension().is_some_and(|x| x == "body")).collect();
        if bodies.len() >= POSTED.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bodies.len(), POSTED.len(), "recordings: {bodies:?}");
    let metrics =
        serve.api.client.get(format!("{}/metrics", serve.api.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("chatgate_record_written_total {}", POSTED.len())), "{metrics}");

    for file in files_in(&record) {
        let text = std::fs::read_to_string(&file).unwrap();
        for secret in NEVER_RECORDED {
            assert!(!text.contains(secret), "{} keeps `{secret}`:\n{text}", file.display());
        }
    }

    // Each recording becomes a fixture of the same kinds, and its golden output is what the
    // fixture test compares.
    let fixtures = dir.path().join("fixtures");
    for (channel, name) in POSTED {
        let recorded: Vec<&PathBuf> = bodies.iter().filter(|p| p.parent().unwrap().ends_with(channel)).collect();
        std::fs::create_dir_all(fixtures.join(channel)).unwrap();
        std::fs::copy(fixture_dir(channel).join("account.json"), fixtures.join(channel).join("account.json")).unwrap();
        let expected = kinds_of(channel, name);
        let added = recorded
            .iter()
            .map(|p| chatgate::fixtures_cmd::add(p, channel, None, &fixtures).unwrap())
            .find(|a| a.kinds == expected)
            .unwrap_or_else(|| panic!("no recording of {channel}/{name} parses to {expected:?}"));
        assert!(chatgate::fixtures_cmd::summary(&added).contains(".snap.new"));
        let snapshot = std::fs::read_to_string(&added.snapshot).unwrap();
        for secret in NEVER_RECORDED.iter().filter(|s| !["fixture-secret_7Qw2", "test-secret", "sha256="].contains(s)) {
            assert!(!snapshot.contains(secret), "{} keeps `{secret}`", added.snapshot.display());
        }
        let stem = added.body.file_stem().unwrap().to_str().unwrap().to_owned();
        std::fs::rename(&added.snapshot, added.snapshot.with_extension("")).unwrap();
        let added_fixture = load_fixture(&fixtures.join(channel), &stem);
        let factory = registry::factory(channel).unwrap();
        let inbound = handle(test_account(factory).as_ref(), &added_fixture.request()).unwrap();
        assert_envelopes(&added_fixture, &inbound);
    }
}

#[tokio::test]
async fn a_recorder_that_cannot_write_never_fails_or_holds_a_webhook() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the folder should be: every write fails.
    let blocked = dir.path().join("not-a-folder");
    std::fs::write(&blocked, "x").unwrap();
    let factory = registry::factory("telegram").unwrap();
    let h = Harness::start_in(&dir.path().join("data"), vec![test_account(factory)], |s| s.record_dir = Some(blocked))
        .await;
    for name in ["contact", "text-entities", "audio"] {
        let (status, _) = h.replay(&fixture("telegram", name)).await;
        assert_eq!(status, StatusCode::OK, "{name}");
    }
    assert_eq!(h.events().await.len(), 3, "every webhook stored");
    let mut metrics = String::new();
    for _ in 0..500 {
        metrics = h.request(http::Method::GET, "/metrics", &[], "").await.1;
        if metrics.contains("chatgate_record_failed_total 3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(metrics.contains("chatgate_record_failed_total 3"), "{metrics}");
    assert!(metrics.contains("chatgate_record_written_total 0"), "{metrics}");
}

/// `chatgate health` is the container's health check: 0 with the answer while the gateway
/// serves, non-zero when nothing answers.
#[tokio::test]
async fn the_health_command_follows_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let port = free_port();
    let mut serve =
        Serve::start(env!("CARGO_BIN_EXE_chatgate"), &config, &dir.path().join("data"), port, &[], &[]).await;
    let url = format!("http://127.0.0.1:{port}/healthz");
    let health = |url: String| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_chatgate")).args(["health", "--url", &url]).output().unwrap()
        })
    };
    let output = health(url.clone()).await.unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
    serve.kill();
    let output = health(url).await.unwrap();
    assert!(!output.status.success(), "{output:?}");
}
