//! `chatgate webhooks set | info | delete` against mock provider APIs on 127.0.0.1: the exact
//! requests each channel makes, what is printed, and that no token or secret is ever printed
//! (also not in errors, also when the provider cannot be reached).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chatgate::webhooks::{Action, run};
use chatgate_adapter::WebhookTarget;
use chatgate_testkit::mock::{MockApi, Recorded};
use serde_json::json;

const TG_TOKEN: &str = "123456:SECRET-token_x";
const TG_SECRET: &str = "whsec_abc42";

fn config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("channels.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn set(url: &str, drop_pending_updates: bool) -> Action {
    Action::Set(WebhookTarget { url: url.to_owned(), drop_pending_updates })
}

/// The form fields of a request body, in order.
fn form(r: &Recorded) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(&r.body))).unwrap();
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn field(fields: &[(String, String)], key: &str) -> Option<String> {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn assert_clean(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "a secret is shown: {text}");
    }
}

fn telegram_config(dir: &Path, base: &str) -> PathBuf {
    config(
        dir,
        &format!(
            "[accounts.tg]\nkind = \"telegram\"\nbot_token = \"{TG_TOKEN}\"\nsecret_token = \"{TG_SECRET}\"\napi_base_url = \"{base}\"\n"
        ),
    )
}

#[tokio::test]
async fn telegram_set_info_delete_make_the_exact_calls_and_show_pending_and_last_error() {
    let api = MockApi::start(|r| {
        if r.path.ends_with("/getWebhookInfo") {
            (
                200,
                json!({"ok": true, "result": {
                    "url": "https://gw.example/webhooks/telegram/tg", "has_custom_certificate": false,
                    "pending_update_count": 3, "last_error_date": 1700000000,
                    "last_error_message": "Connection refused", "max_connections": 40,
                    "allowed_updates": ["message", "edited_message", "callback_query", "my_chat_member", "message_reaction"]
                }}),
            )
        } else {
            (200, json!({"ok": true, "result": true}))
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = telegram_config(dir.path(), &api.base_url);

    let out = run(&path, "tg", set("https://gw.example/webhooks/telegram/tg", true)).await.unwrap();
    let requests = api.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("POST", "/bot123456:SECRET-token_x/setWebhook")
    );
    assert_eq!(
        requests[0].json(),
        json!({
            "url": "https://gw.example/webhooks/telegram/tg",
            "secret_token": TG_SECRET,
            "allowed_updates": ["message", "edited_message", "callback_query", "my_chat_member", "message_reaction"],
            "drop_pending_updates": true,
        })
    );
    assert_eq!(requests[1].path, "/bot123456:SECRET-token_x/getWebhookInfo");
    assert!(out.starts_with("telegram account `tg`: webhook set\n"), "{out}");
    assert!(out.contains("url:") && out.contains("https://gw.example/webhooks/telegram/tg"), "{out}");
    assert!(out.contains("pending updates:") && out.contains(" 3\n"), "{out}");
    assert!(out.contains("2023-11-14T22:13:20+00:00 Connection refused"), "{out}");
    assert!(out.contains("pending updates dropped:"), "{out}");
    assert_clean(&out, &[TG_TOKEN, TG_SECRET]);

    let out = run(&path, "tg", Action::Info).await.unwrap();
    assert_eq!(api.requests().len(), 3);
    assert!(out.contains("events:") && out.contains("message_reaction"), "{out}");

    run(&path, "tg", Action::Delete).await.unwrap();
    let requests = api.requests();
    assert_eq!(requests[3].path, "/bot123456:SECRET-token_x/deleteWebhook");
    assert_eq!(requests[3].json(), json!({"drop_pending_updates": false}));
    assert_eq!(requests[4].path, "/bot123456:SECRET-token_x/getWebhookInfo");
}

#[tokio::test]
async fn telegram_errors_are_typed_and_never_show_the_token() {
    let api = MockApi::start(|_| (401, json!({"ok": false, "error_code": 401, "description": "Unauthorized"}))).await;
    let dir = tempfile::tempdir().unwrap();
    let path = telegram_config(dir.path(), &api.base_url);
    let error = run(&path, "tg", Action::Info).await.unwrap_err().to_string();
    assert!(error.contains("refused the account's credentials") && error.contains("Unauthorized"), "{error}");
    assert_clean(&error, &[TG_TOKEN, TG_SECRET]);

    // Nothing listens there: the transport error carries the URL (with the token) unless stripped.
    let closed = format!("http://127.0.0.1:{}", chatgate_testkit::process::free_port());
    let path = telegram_config(dir.path(), &closed);
    let error = format!("{:#}", run(&path, "tg", Action::Info).await.unwrap_err());
    assert!(error.contains("could not be reached"), "{error}");
    assert_clean(&error, &[TG_TOKEN, "SECRET-token", TG_SECRET]);

    // The URL is checked before any call.
    let error = run(&path, "tg", set("http://gw.example/webhooks/telegram/tg", false)).await.unwrap_err().to_string();
    assert!(error.contains("https"), "{error}");
}

#[tokio::test]
async fn the_binary_prints_the_report_and_exits_non_zero_on_errors() {
    let api = MockApi::start(|r| {
        if r.path.ends_with("/getWebhookInfo") {
            (
                200,
                json!({"ok": true, "result": {"url": "", "has_custom_certificate": false, "pending_update_count": 0}}),
            )
        } else {
            (
                400,
                json!({"ok": false, "error_code": 400, "description": format!("Bad Request: bad webhook: {TG_TOKEN}")}),
            )
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = telegram_config(dir.path(), &api.base_url);
    let binary = env!("CARGO_BIN_EXE_chatgate");
    let output = chatgate_cli(binary, &path, &["webhooks", "info", "tg"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("(none registered)") && stdout.contains("last error:") && stdout.contains("none"),
        "{stdout}"
    );

    let output = chatgate_cli(
        binary,
        &path,
        &["webhooks", "set", "tg", "--url", "https://gw.example/webhooks/telegram/tg", "--drop-pending-updates"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{output:?}");
    assert!(stderr.contains("the provider refused") && stderr.contains("bad webhook"), "{stderr}");
    assert_clean(&stderr, &[TG_TOKEN, TG_SECRET]);
    assert_eq!(api.requests()[1].json()["drop_pending_updates"], true);
}

/// Runs the binary off the runtime's thread (the mock API answers on it meanwhile).
async fn chatgate_cli(binary: &str, config: &Path, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(binary);
    command.arg("--config").arg(config).args(args).env_remove("RUST_BACKTRACE");
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

#[tokio::test]
async fn viber_sets_the_event_types_we_handle_and_removes_with_an_empty_url() {
    let api = MockApi::start(|r| match r.path.as_str() {
        "/pa/get_account_info" => (
            200,
            json!({"status": 0, "status_message": "ok", "id": "pa:1", "name": "Acme", "uri": "acme",
                   "webhook": "https://gw.example/webhooks/viber/vb", "subscribers_count": 12,
                   "event_types": ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"]}),
        ),
        _ => (200, json!({"status": 0, "status_message": "ok"})),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = "viber-auth-TOKEN-1";
    let path = config(
        dir.path(),
        &format!(
            "[accounts.vb]\nkind = \"viber\"\nauth_token = \"{token}\"\nsender_name = \"Acme\"\napi_base_url = \"{}/pa\"\n",
            api.base_url
        ),
    );
    let out = run(&path, "vb", set("https://gw.example/webhooks/viber/vb", false)).await.unwrap();
    let requests = api.requests();
    assert_eq!(requests[0].path, "/pa/set_webhook");
    assert_eq!(requests[0].headers["x-viber-auth-token"], token);
    assert_eq!(
        requests[0].json(),
        json!({"url": "https://gw.example/webhooks/viber/vb",
               "event_types": ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"],
               "send_name": true, "send_photo": true})
    );
    assert_eq!(requests[1].path, "/pa/get_account_info");
    assert!(out.contains("https://gw.example/webhooks/viber/vb") && out.contains("subscribers:"), "{out}");
    assert!(!out.contains("to do by hand"), "{out}");
    assert_clean(&out, &[token]);

    run(&path, "vb", Action::Delete).await.unwrap();
    assert_eq!(api.requests()[2].json(), json!({"url": ""}));

    let refusing = MockApi::start(|_| (200, json!({"status": 2, "status_message": "invalidAuthToken"}))).await;
    let path = config(
        dir.path(),
        &format!(
            "[accounts.vb]\nkind = \"viber\"\nauth_token = \"{token}\"\nsender_name = \"Acme\"\napi_base_url = \"{}/pa\"\n",
            refusing.base_url
        ),
    );
    let error = run(&path, "vb", Action::Info).await.unwrap_err().to_string();
    assert!(error.contains("refused the account's credentials") && error.contains("invalidAuthToken"), "{error}");
}

fn vk_config(dir: &Path, base: &str, confirmation: &str) -> PathBuf {
    config(
        dir,
        &format!(
            "[accounts.vk1]\nkind = \"vk\"\ngroup_id = 229000001\naccess_token = \"vk-TOKEN-1\"\nsecret = \"vk-SECRET-1\"\n\
             confirmation = \"{confirmation}\"\napi_base_url = \"{base}/method\"\n"
        ),
    )
}

#[tokio::test]
async fn vk_adds_a_callback_server_with_our_events_and_api_version_then_deletes_it() {
    const URL: &str = "https://gw.example/webhooks/vk/vk1";
    let added = Arc::new(AtomicUsize::new(0));
    let state = added.clone();
    let api = MockApi::start(move |r| {
        let method = r.path.trim_start_matches("/method/");
        let other = json!({"id": 3, "url": "https://old.example/cb", "title": "other", "status": "ok"});
        let ours = json!({"id": 7, "url": URL, "title": "chatgate", "status": "ok"});
        let response = match method {
            "groups.getCallbackConfirmationCode" => json!({"code": "a1b2c3d4"}),
            "groups.getCallbackServers" if state.load(Ordering::SeqCst) == 1 => {
                json!({"count": 2, "items": [other, ours]})
            }
            "groups.getCallbackServers" => json!({"count": 1, "items": [other]}),
            "groups.addCallbackServer" => {
                state.store(1, Ordering::SeqCst);
                json!({"server_id": 7})
            }
            "groups.deleteCallbackServer" => {
                state.store(2, Ordering::SeqCst);
                json!(1)
            }
            "groups.getCallbackSettings" => json!({"api_version": "5.199", "events": {
                "message_new": 1, "message_reply": 1, "message_edit": 1, "message_allow": 1,
                "message_deny": 1, "message_event": 1, "message_read": 1, "wall_post_new": 0}}),
            _ => json!(1),
        };
        (200, json!({"response": response}))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = vk_config(dir.path(), &api.base_url, "a1b2c3d4");
    let out = run(&path, "vk1", set(URL, false)).await.unwrap();
    let requests = api.requests();
    let methods: Vec<&str> = requests.iter().map(|r| r.path.trim_start_matches("/method/")).collect();
    assert_eq!(
        methods,
        [
            "groups.getCallbackConfirmationCode",
            "groups.getCallbackServers",
            "groups.addCallbackServer",
            "groups.setCallbackSettings",
            "groups.getCallbackServers",
            "groups.getCallbackSettings"
        ]
    );
    for r in &requests {
        let f = form(r);
        assert_eq!(field(&f, "group_id").as_deref(), Some("229000001"), "{f:?}");
        assert_eq!(field(&f, "access_token").as_deref(), Some("vk-TOKEN-1"));
        assert_eq!(field(&f, "v").as_deref(), Some("5.199"));
        assert!(r.query.is_none(), "nothing in the URL: {:?}", r.query);
    }
    let add = form(&requests[2]);
    assert_eq!(field(&add, "url").as_deref(), Some(URL));
    assert_eq!(field(&add, "title").as_deref(), Some("chatgate"));
    assert_eq!(field(&add, "secret_key").as_deref(), Some("vk-SECRET-1"));
    let settings = form(&requests[3]);
    assert_eq!(field(&settings, "server_id").as_deref(), Some("7"));
    assert_eq!(field(&settings, "api_version").as_deref(), Some("5.199"));
    for event in chatgate_channel_vk_events() {
        assert_eq!(field(&settings, event).as_deref(), Some("1"), "{event} in {settings:?}");
    }
    assert!(out.contains(URL) && out.contains("server 7:") && out.contains("status ok"), "{out}");
    assert!(out.contains("other callback servers:"), "{out}");
    assert!(!out.contains("to do by hand"), "{out}");
    assert_clean(&out, &["vk-TOKEN-1", "vk-SECRET-1", "a1b2c3d4"]);

    run(&path, "vk1", Action::Delete).await.unwrap();
    let requests = api.requests();
    let delete = requests.iter().find(|r| r.path.ends_with("groups.deleteCallbackServer")).unwrap();
    assert_eq!(field(&form(delete), "server_id").as_deref(), Some("7"));
    assert_eq!(requests.iter().filter(|r| r.path.ends_with("groups.deleteCallbackServer")).count(), 1);

    // A confirmation string that differs from VK's stops before any server is added.
    let path = vk_config(dir.path(), &api.base_url, "zzzz");
    let before = api.requests().len();
    let error = run(&path, "vk1", set(URL, false)).await.unwrap_err().to_string();
    assert!(error.contains("differs from the account's `confirmation`"), "{error}");
    assert_clean(&error, &["zzzz", "a1b2c3d4"]);
    assert_eq!(api.requests().len(), before + 1);
}

fn chatgate_channel_vk_events() -> [&'static str; 7] {
    ["message_new", "message_reply", "message_edit", "message_allow", "message_deny", "message_event", "message_read"]
}

#[tokio::test]
async fn messenger_subscribes_the_page_and_prints_the_dashboard_steps() {
    let api = MockApi::start(|r| match r.method.as_str() {
        "GET" => (
            200,
            json!({"data": [{"name": "Acme app", "id": "555", "subscribed_fields": ["messages", "message_reads"]}]}),
        ),
        _ => (200, json!({"success": true})),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        dir.path(),
        &format!(
            "[accounts.fb]\nkind = \"messenger\"\npage_id = \"1001\"\npage_access_token = \"PAGE-TOKEN-1\"\n\
             app_secret = \"APP-SECRET-1\"\nverify_token = \"VERIFY-1\"\napi_base_url = \"{}/v26.0\"\n",
            api.base_url
        ),
    );
    let out = run(&path, "fb", set("https://gw.example/webhooks/messenger/fb", false)).await.unwrap();
    let requests = api.requests();
    assert_eq!((requests[0].method.as_str(), requests[0].path.as_str()), ("POST", "/v26.0/1001/subscribed_apps"));
    assert_eq!(requests[0].headers["authorization"], "Bearer PAGE-TOKEN-1");
    assert_eq!(
        field(&form(&requests[0]), "subscribed_fields").as_deref(),
        Some(
            "messages,message_deliveries,message_reads,message_echoes,message_edits,message_reactions,messaging_postbacks,messaging_optins,messaging_referrals,standby"
        )
    );
    assert_eq!((requests[1].method.as_str(), requests[1].path.as_str()), ("GET", "/v26.0/1001/subscribed_apps"));
    assert!(out.contains("subscribed app 555:") && out.contains("Acme app: messages, message_reads"), "{out}");
    assert!(out.contains("to do by hand:"), "{out}");
    assert!(out.contains("object `Page`: Callback URL = https://gw.example/webhooks/messenger/fb"), "{out}");
    assert!(out.contains("Verify token = the `verify_token` of account `fb`"), "{out}");
    assert!(out.contains("Subscribe the app to the fields: messages, message_deliveries"), "{out}");
    assert_clean(&out, &["PAGE-TOKEN-1", "APP-SECRET-1", "VERIFY-1"]);

    run(&path, "fb", Action::Delete).await.unwrap();
    assert_eq!(api.requests()[2].method, "DELETE");
}

#[tokio::test]
async fn instagram_through_a_page_subscribes_the_page_and_names_the_instagram_fields() {
    let api = MockApi::start(|r| match r.method.as_str() {
        "GET" => (200, json!({"data": []})),
        _ => (200, json!({"success": true})),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        dir.path(),
        &format!(
            "[accounts.ig]\nkind = \"instagram\"\npage_id = \"1001\"\ninstagram_account_id = \"1784\"\npage_access_token = \"PT\"\n\
             app_secret = \"AS\"\nverify_token = \"VT\"\napi_base_url = \"{}/v26.0\"\n",
            api.base_url
        ),
    );
    let out = run(&path, "ig", set("https://gw.example/webhooks/instagram/ig", false)).await.unwrap();
    assert_eq!(field(&form(&api.requests()[0]), "subscribed_fields").as_deref(), Some("messages"));
    assert!(out.contains("subscribed apps:") && out.contains("none"), "{out}");
    assert!(out.contains("object `Instagram`") && out.contains("messaging_seen"), "{out}");
}

#[tokio::test]
async fn whatsapp_subscribes_the_business_account_with_a_callback_override() {
    let api = MockApi::start(|r| match r.method.as_str() {
        "GET" => (
            200,
            json!({"data": [{"whatsapp_business_api_data": {"id": "777", "link": "https://x", "name": "Acme app"},
                             "override_callback_uri": "https://gw.example/webhooks/whatsapp/wa"}]}),
        ),
        _ => (200, json!({"success": true})),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let table = |waba: &str| {
        format!(
            "[accounts.wa]\nkind = \"whatsapp\"\nphone_number_id = \"1065\"\naccess_token = \"WA-TOKEN\"\napp_secret = \"WA-APP\"\n\
             verify_token = \"WA-VERIFY\"\napi_base_url = \"{}/v26.0\"\n{waba}",
            api.base_url
        )
    };
    let path = config(dir.path(), &table("business_account_id = \"4242\"\n"));
    let out = run(&path, "wa", set("https://gw.example/webhooks/whatsapp/wa", false)).await.unwrap();
    let requests = api.requests();
    assert_eq!((requests[0].method.as_str(), requests[0].path.as_str()), ("POST", "/v26.0/4242/subscribed_apps"));
    assert_eq!(requests[0].headers["authorization"], "Bearer WA-TOKEN");
    assert_eq!(
        requests[0].json(),
        json!({"override_callback_uri": "https://gw.example/webhooks/whatsapp/wa", "verify_token": "WA-VERIFY"})
    );
    assert!(out.contains("https://gw.example/webhooks/whatsapp/wa") && out.contains("subscribed app 777:"), "{out}");
    assert!(out.contains("WhatsApp → Configuration") && out.contains("messages"), "{out}");
    assert_clean(&out, &["WA-TOKEN", "WA-APP", "WA-VERIFY"]);
    run(&path, "wa", Action::Delete).await.unwrap();
    assert_eq!(
        (api.requests()[2].method.as_str(), api.requests()[2].path.as_str()),
        ("DELETE", "/v26.0/4242/subscribed_apps")
    );

    let path = config(dir.path(), &table(""));
    let error = run(&path, "wa", Action::Info).await.unwrap_err().to_string();
    assert!(error.contains("no `business_account_id`"), "{error}");
    assert_eq!(api.requests().len(), 4, "no call without the id");
}

#[tokio::test]
async fn web_needs_no_registration_and_unknown_or_disabled_accounts_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        dir.path(),
        "[accounts.site]\nkind = \"web\"\nname = \"Acme\"\npublic_url = \"https://chat.example\"\nallowed_origins = [\"https://example.com\"]\n\
         token_secret = \"0123456789abcdef0123\"\n\
         [accounts.off]\nkind = \"telegram\"\nbot_token = \"${CHATGATE_TEST_UNSET_TOKEN}\"\nsecret_token = \"s\"\n",
    );
    let out = run(&path, "site", Action::Info).await.unwrap();
    assert!(out.contains("needs no webhook registration"), "{out}");
    let error = run(&path, "nope", Action::Info).await.unwrap_err().to_string();
    assert!(error.contains("no account `nope`") && error.contains("site"), "{error}");
    let error = run(&path, "off", Action::Info).await.unwrap_err().to_string();
    assert!(error.contains("disabled") && error.contains("CHATGATE_TEST_UNSET_TOKEN"), "{error}");
}
