//! `channels.toml`: errors name the key, missing secrets disable the account, the shipped file starts.

use chatgate::config::{MissingSecrets, parse};

fn env(name: &str) -> Option<String> {
    match name {
        "TG_TOKEN" => Some("123:abc".into()),
        "TG_SECRET" => Some("s3cret".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn load(text: &str) -> anyhow::Result<chatgate::config::Config> {
    parse(text, &env, MissingSecrets::Disable)
}

fn error_of(text: &str) -> String {
    format!("{:#}", load(text).expect_err("should be refused"))
}

const GOOD: &str = r#"
[accounts.bot]
kind = "telegram"
bot_token = "${TG_TOKEN}"
secret_token = "${TG_SECRET}"
[accounts.bot.limits]
image_mb = 2
"#;

#[test]
fn a_complete_account_loads_with_its_overrides() {
    let config = load(GOOD).unwrap();
    assert_eq!(config.accounts.len(), 1);
    let a = &config.accounts[0];
    assert_eq!((a.id.as_str(), a.kind.as_str(), a.adapter.account()), ("bot", "telegram", "bot"));
    let limits = a.adapter.facts().limits.with_overrides(&a.limits);
    assert_eq!(limits.image_bytes, Some(2 * 1024 * 1024));
    assert_eq!(limits.file_bytes, Some(50 * 1024 * 1024));
}

#[test]
fn missing_secret_disables_the_account() {
    let text = GOOD.replace("${TG_SECRET}", "${NOT_SET}");
    let config = load(&text).unwrap();
    assert!(config.accounts.is_empty());
    assert_eq!(config.disabled.len(), 1);
    assert_eq!(config.disabled[0].missing, vec!["NOT_SET".to_owned()]);
    let empty = load(&GOOD.replace("${TG_SECRET}", "${EMPTY}")).unwrap();
    assert!(empty.accounts.is_empty(), "an empty secret counts as missing");
    // `normalize` verifies nothing and may use a placeholder.
    assert_eq!(parse(&text, &env, MissingSecrets::Placeholder).unwrap().accounts.len(), 1);
}

#[test]
fn errors_name_the_key() {
    assert!(error_of(&format!("{GOOD}\nsurprise = 1\n")).contains("surprise"));
    let e = error_of(&GOOD.replace("secret_token", "secret_tokn"));
    assert!(e.contains("accounts.bot") && e.contains("secret_tokn"), "{e}");
    let e = error_of(&GOOD.replace("secret_token = \"${TG_SECRET}\"\n", ""));
    assert!(e.contains("accounts.bot") && e.contains("secret_token"), "{e}");
    let e = error_of(&GOOD.replace("kind = \"telegram\"", "kind = \"fax\""));
    assert!(e.contains("accounts.bot.kind") && e.contains("fax"), "{e}");
    let e = error_of(&GOOD.replace("kind = \"telegram\"\n", ""));
    assert!(e.contains("accounts.bot.kind"), "{e}");
    let e = error_of(&GOOD.replace("image_mb", "imag_mb"));
    assert!(e.contains("accounts.bot.limits") && e.contains("imag_mb"), "{e}");
    let e = error_of(
        &GOOD.replace("[accounts.bot]", "[accounts.\"b/t\"]").replace("accounts.bot.limits", "accounts.\"b/t\".limits"),
    );
    assert!(e.contains("account id"), "{e}");
    let e = error_of(&GOOD.replace("${TG_TOKEN}", "${TG_TOKEN"));
    assert!(e.contains("unclosed"), "{e}");
    let e = error_of("[fetch]\nallow = [\"not-an-ip\"]\n");
    assert!(e.contains("fetch.allow[0]"), "{e}");
}

#[test]
fn the_shipped_file_starts_without_environment() {
    let path = chatgate_testkit::workspace_root().join("channels.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let config = parse(&text, &|_| None, MissingSecrets::Disable).unwrap();
    // Only the web widget starts without environment (its token secret is generated).
    let enabled: Vec<_> = config.accounts.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(enabled, ["web"]);
    let mut kinds: Vec<_> = config.disabled.iter().map(|d| d.kind.as_str()).collect();
    kinds.extend(&enabled);
    for channel in chatgate::registry::channels() {
        let kind = channel.as_str();
        assert!(kinds.contains(&kind), "channels.toml has no example account of kind {kind}");
    }
    // With every variable set, every shipped account builds.
    let all = parse(
        &text,
        &|name| Some(format!("{}x1", name.to_ascii_lowercase().replace('_', ""))),
        MissingSecrets::Disable,
    )
    .unwrap();
    assert_eq!(all.accounts.len(), config.disabled.len() + config.accounts.len());
}

#[test]
fn queue_retention_is_configurable_but_outlives_provider_retries() {
    let config = load(&format!("[queue]\nretention_days = 30\n{GOOD}")).unwrap();
    assert_eq!(config.retention, std::time::Duration::from_secs(30 * 86_400));
    assert_eq!(load(GOOD).unwrap().retention, chatgate_queue::DEFAULT_RETENTION);
    assert!(error_of(&format!("[queue]\nretention_days = 2\n{GOOD}")).contains("queue.retention_days"));
    assert!(error_of(&format!("[queue]\nretention = 9\n{GOOD}")).contains("retention"));
}
