//! The web widget in a real Chromium (Debian's `chromium` + `chromium-driver`, driven through
//! WebDriver by fantoccini) against the real `chatgate` binary on loopback.
//!
//! Two origins, so the origin check and CORS are real: the gateway on one port, the host pages
//! (a small axum server) on another; a third port serves the same page from an origin the
//! account does not allow. One browser session walks the visitor's whole story — open, write,
//! get an answer (ticks delivered → read), feedback, buttons pressed back as a postback, limits, markup as text, reload, a gateway
//! restart, a page under a strict CSP — and saves screenshots under `target/screenshots/`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (or `CHATGATE_CHROMIUM` /
//! `CHATGATE_CHROMEDRIVER`); `bash scripts/test` installs them as root. Without them the test
//! fails with a message saying so: it is never skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use chatgate_testkit::gateway::TOKEN;
use chatgate_testkit::http::Api;
use chatgate_testkit::process::{Serve, free_port};
use fantoccini::elements::{Element, ShadowRoot};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const ACCOUNT: &str = "site";
const TOKEN_SECRET: &str = "browser-test-visitor-token-secret";
/// The account's colours; the test reads them back as computed styles.
const BUTTON: (&str, &str) = ("#0f766e", "rgb(15, 118, 110)");
const USER: (&str, &str) = ("rgba(124, 58, 237, 0.95)", "rgba(124, 58, 237, 0.95)");
const XSS: &str = "<img src=x onerror=\"window.__pwned=1\">";
/// How long a `wait_*` helper polls before failing.
const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_in_chromium() -> Result<()> {
    let chromium = tool("CHATGATE_CHROMIUM", "/usr/bin/chromium")?;
    let chromedriver = tool("CHATGATE_CHROMEDRIVER", "/usr/bin/chromedriver")?;

    let data = tempfile::tempdir()?;
    let gateway_port = free_port();
    let host = serve_host_pages(gateway_port).await;
    let stranger = serve_host_pages(gateway_port).await;
    let config = write_config(data.path(), gateway_port, &host)?;
    let mut gateway = Gateway::start(&config, data.path(), gateway_port).await?;
    let driver = Driver::start(&chromedriver)?;
    let browser = driver.session(&chromium).await?;

    let outcome = story(&browser, &mut gateway, &config, data.path(), &host, &stranger).await;
    let _ = browser.close().await;
    outcome
}

/// Everything the visitor and the core do, in order; the first failed check stops it.
async fn story(
    browser: &Client,
    gateway: &mut Gateway,
    config: &Path,
    data: &Path,
    host: &str,
    stranger: &str,
) -> Result<()> {
    let api = gateway.api.clone();
    let gw = api.base.clone();

    // The account refuses other origins and forged tokens, over plain HTTP.
    refusals(&api, host, stranger).await?;
    let baseline = web_events(&api).await?.len();

    // A page on an origin the account does not allow gets no widget at all.
    browser.goto(&format!("{stranger}/landing")).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let drawn = browser.execute("return document.querySelector('[data-chatgate]') !== null", vec![]).await?;
    ensure!(drawn == json!(false), "the widget must not start on {stranger}, which is not in allowed_origins");

    // Arrive from a referring page with UTM tags; before any click nothing is stored or created.
    browser.goto(&format!("{host}/from")).await?;
    browser.find(Locator::Id("go")).await?.click().await?;
    let landing = format!("{host}/landing?utm_source=newsletter&utm_campaign=spring");
    wait_js(browser, "return !!document.querySelector('[data-chatgate]')", "the launcher is drawn").await?;
    let stored = browser.execute("return localStorage.length", vec![]).await?;
    ensure!(stored == json!(0), "the loader wrote to localStorage before the visitor opened the chat");
    ensure!(web_events(&api).await?.len() == baseline, "a session or event exists before the visitor opened the chat");
    let loaded_ui = browser
        .execute("return performance.getEntriesByType('resource').some(e => e.name.includes('widget-ui.js'))", vec![])
        .await?;
    ensure!(loaded_ui == json!(false), "the UI module must load on the first click, not with the page");

    // Open, write, and see it reach the core with the page URL and the visit's source.
    open_widget(browser).await?;
    type_message(browser, "Hello from the browser").await?;
    let message =
        wait_event(&api, |e| e["type"] == "message" && e["message"]["text"] == "Hello from the browser").await?;
    ensure!(message["channel"] == "web" && message["account"] == ACCOUNT, "envelope names the web account: {message}");
    ensure!(message["page"]["url"] == json!(landing), "the message carries the page URL: {message}");
    let chat = message["chat_id"].as_str().context("chat_id")?.to_owned();
    let opened =
        wait_event(&api, |e| e["type"] == "page_view" && e["chat_id"] == json!(chat) && e["source"].is_object())
            .await?;
    let source = &opened["source"];
    ensure!(source["referrer"] == json!(format!("{host}/from")), "source.referrer: {source}");
    ensure!(source["landing_url"] == json!(landing), "source.landing_url: {source}");
    ensure!(source["utm"]["source"] == "newsletter" && source["utm"]["campaign"] == "spring", "source.utm: {source}");
    wait_ui(browser, "status(last('.cg-mine')) === 'sent'", "one tick on the visitor's message").await?;

    // Markup typed by the visitor is text on both sides.
    type_message(browser, XSS).await?;
    wait_event(&api, |e| e["message"]["text"] == XSS).await?;
    wait_ui(
        browser,
        &format!("last('.cg-mine .cg-text').textContent === {}", json!(XSS)),
        "the visitor's markup as text",
    )
    .await?;

    // The core answers (with markup and a link, quoting the first message): shown once, then read.
    let first_client_id = message["message"]["external_id"].as_str().context("external_id")?.to_owned();
    let answer_text = format!("Hi! {XSS} See https://example.com/docs?a=1 or mail help@example.com");
    let sent = send_as_core(&api, &chat, json!({"text": answer_text, "reply_to": first_client_id})).await?;
    wait_ui(
        browser,
        &format!("last('.cg-theirs .cg-text')?.textContent === {}", json!(answer_text)),
        "the answer shown",
    )
    .await?;
    let rendered = ui(
        browser,
        "({imgs: root.querySelectorAll('.cg-log img:not(.cg-avatar):not(.cg-image)').length,
           link: last('.cg-theirs .cg-text a')?.href, quote: last('.cg-theirs .cg-quote')?.textContent,
           pwned: window.__pwned === undefined ? null : window.__pwned})",
    )
    .await?;
    ensure!(rendered["imgs"] == 0 && rendered["pwned"].is_null(), "markup must render as text: {rendered}");
    ensure!(rendered["link"] == "https://example.com/docs?a=1", "links become <a> elements: {rendered}");
    ensure!(rendered["quote"] == "Hello from the browser", "reply_to is shown as a quote: {rendered}");
    wait_status(&api, &sent, "read").await?;
    wait_ui(browser, "status(first('.cg-mine')) === 'delivered'", "two ticks once the operator answered").await?;
    save_screenshot(browser, "widget-open.png").await?;

    // Colours from the account are applied.
    let colors = ui(
        browser,
        "({send: getComputedStyle(root.querySelector('.cg-send')).backgroundColor,
           header: getComputedStyle(root.querySelector('.cg-header')).backgroundColor,
           mine: getComputedStyle(last('.cg-mine .cg-bubble')).backgroundColor,
           font: getComputedStyle(root.querySelector('.cg-input')).fontSize})",
    )
    .await?;
    ensure!(colors["send"] == BUTTON.1 && colors["header"] == BUTTON.1, "button colour: {colors}");
    ensure!(colors["mine"] == USER.1, "user colour: {colors}");
    ensure!(colors["font"] == "16px", "inputs are 16 px (no zoom on iOS): {colors}");

    // Feedback asked by the core, answered with the 4th of 5 stars.
    send_as_core(&api, &chat, json!({"text": "Anything else?", "feedback": {"scale": 5, "prompt": "Rate us"}})).await?;
    wait_ui(browser, "root.querySelectorAll('.cg-feedback.cg-scale-5 .cg-choice').length === 5", "five stars").await?;
    shadow(browser).await?.find(Locator::Css(".cg-feedback .cg-choice[data-score='4']")).await?.click().await?;
    let feedback = wait_event(&api, |e| e["type"] == "feedback" && e["chat_id"] == json!(chat)).await?;
    ensure!(feedback["feedback"]["score"] == 4 && feedback["feedback"]["scale"] == 5, "feedback event: {feedback}");
    wait_ui(browser, "!!root.querySelector('.cg-feedback[data-sent] .cg-feedback-thanks')", "thanks after the click")
        .await?;
    let lit = ui(browser, "root.querySelectorAll('.cg-feedback .cg-choice.cg-lit').length").await?;
    ensure!(lit == 4, "four stars stay lit after the click: {lit}");

    // Buttons offered by the core: pressed in the widget, back as a postback with the payload.
    send_as_core(
        &api,
        &chat,
        json!({"text": "Pick one", "buttons_per_row": 2, "buttons": [
            {"title": "Track order", "payload": "TRACK"}, {"title": "Help page", "url": "https://shop.example/help"}]}),
    )
    .await?;
    wait_ui(browser, "root.querySelectorAll('.cg-buttons .cg-choice').length === 2", "two buttons").await?;
    let link = ui(browser, "root.querySelector('.cg-buttons a.cg-link').getAttribute('href')").await?;
    ensure!(link == "https://shop.example/help", "the link button opens its URL: {link}");
    shadow(browser).await?.find(Locator::Css(".cg-buttons button.cg-choice")).await?.click().await?;
    let pressed = wait_event(&api, |e| e["type"] == "postback" && e["chat_id"] == json!(chat)).await?;
    ensure!(
        pressed["postback"]["payload"] == "TRACK" && pressed["postback"]["title"] == "Track order",
        "postback event: {pressed}"
    );
    wait_ui(browser, "root.querySelector('.cg-buttons button.cg-choice').disabled", "pressed once").await?;

    // 2001 characters: refused in the UI (and Enter sends nothing), and by the server.
    let messages = |events: Vec<Value>| events.into_iter().filter(|e| e["type"] == "message").count();
    let before = messages(web_events(&api).await?);
    let long = "x".repeat(2001);
    ui(browser, &format!("(() => {{ const i = root.querySelector('.cg-input'); i.value = {}; i.dispatchEvent(new Event('input')); return 0; }})()", json!(long))).await?;
    shadow(browser)
        .await?
        .find(Locator::Css(".cg-input"))
        .await?
        .send_keys(&char::from(Key::Enter).to_string())
        .await?;
    let refused = ui(
        browser,
        "({counter: root.querySelector('.cg-counter').textContent, hidden: root.querySelector('.cg-counter').hidden,
           disabled: root.querySelector('.cg-send').disabled, error: root.querySelector('.cg-error').textContent})",
    )
    .await?;
    ensure!(refused["hidden"] == false && refused["disabled"] == true, "the counter and a disabled send: {refused}");
    ensure!(refused["counter"].as_str().is_some_and(|c| c.starts_with("2001 / 2000")), "counter: {refused}");
    ensure!(refused["error"].as_str().is_some_and(|e| e.contains("2000")), "a clear message: {refused}");
    let token = visitor_token(browser).await?;
    let visitor = visitor_id(browser).await?;
    let (status, body) =
        visitor_post(&api, host, &token, "/messages", json!({"client_id": "long-1", "text": long})).await?;
    ensure!(
        status == 422 && body["error"]["code"] == "text_too_long",
        "the server refuses 2001 characters: {status} {body}"
    );
    ui(browser, "(() => { const i = root.querySelector('.cg-input'); i.value = ''; i.dispatchEvent(new Event('input')); return 0; })()").await?;

    // Uploads: an image over the account's 1 MB image limit is refused before upload with a
    // clear error; a small one goes through and reaches the core as an image attachment.
    let files = tempfile::tempdir()?;
    let big = files.path().join("holiday.png");
    let mut bytes = include_bytes!("../crates/channel-web/assets/avatar-user.png").to_vec();
    bytes.resize(2 * 1024 * 1024, 0);
    std::fs::write(&big, bytes)?;
    let small = files.path().join("avatar.png");
    std::fs::write(&small, include_bytes!("../crates/channel-web/assets/avatar-user.png"))?;
    let input = shadow(browser).await?.find(Locator::Css(".cg-file")).await?;
    input.send_keys(&big.display().to_string()).await?;
    wait_ui(browser, "root.querySelector('.cg-error').textContent.includes('holiday.png')", "an upload error").await?;
    let error = ui(browser, "root.querySelector('.cg-error').textContent").await?;
    ensure!(
        error.as_str().is_some_and(|e| e.contains("2 MB") && e.contains("1 MB")),
        "the error names size and limit: {error}"
    );
    ensure!(messages(web_events(&api).await?) == before, "no message was stored for the refused text and upload");
    input.send_keys(&small.display().to_string()).await?;
    let upload =
        wait_event(&api, |e| e["message"]["attachments"][0]["kind"] == "image" && e["chat_id"] == json!(chat)).await?;
    let media = upload["message"]["attachments"][0]["media"].as_str().context("media ref")?;
    let fetched = api.client.get(format!("{gw}/v1/media/{media}")).bearer_auth(TOKEN).send().await?;
    ensure!(fetched.status() == 200, "the upload resolves through /v1/media: {}", fetched.status());

    let history = transcript(browser).await?;
    save_screenshot(browser, "widget-feedback-upload.png").await?;

    // A reload continues the same session and shows the same history.
    browser.refresh().await?;
    open_widget(browser).await?;
    wait_until("the history after a reload", || async { Ok(transcript(browser).await? == history) }).await?;
    ensure!(visitor_id(browser).await? == visitor, "the reload continued the same visitor");

    // The gateway restarts while the widget is open: a message written meanwhile is stored once,
    // the stream comes back, and an answer after the restart is shown exactly once.
    gateway.stop();
    wait_ui(browser, "root.querySelector('.cg-state').textContent.startsWith('Reconnecting')", "reconnecting").await?;
    type_message(browser, "written while the gateway was down").await?;
    wait_ui(browser, "status(last('.cg-mine')) === 'pending'", "the watch while the gateway is down").await?;
    *gateway = Gateway::start(config, data, gateway.port).await?;
    let api = gateway.api.clone();
    wait_ui(browser, "status(last('.cg-mine')) === 'sent'", "stored after the restart").await?;
    send_as_core(&api, &chat, json!({"text": "answered after the restart"})).await?;
    wait_ui(browser, "last('.cg-theirs .cg-text')?.textContent === 'answered after the restart'", "the answer").await?;
    let down =
        web_events(&api).await?.into_iter().filter(|e| e["message"]["text"] == "written while the gateway was down");
    ensure!(down.count() == 1, "the message written during the restart is stored exactly once");
    let mut expected = history.clone();
    expected.push("visitor: written while the gateway was down".into());
    expected.push("operator: answered after the restart".into());
    let after = transcript(browser).await?;
    ensure!(after == expected, "nothing lost or doubled across the restart:\n{after:#?}\nexpected\n{expected:#?}");

    // The same session on a page with a strict CSP that allows only the gateway.
    browser.goto(&format!("{host}/strict")).await?;
    open_widget(browser).await?;
    let shown = ui(browser, "getComputedStyle(root.querySelector('.cg-panel')).position").await?;
    ensure!(shown == "fixed", "widget.css applies under the strict CSP");
    type_message(browser, "from a strict page").await?;
    wait_event(&api, |e| e["message"]["text"] == "from a strict page" && e["chat_id"] == json!(chat)).await?;
    wait_until("the history under the strict CSP", || async {
        Ok(transcript(browser).await?.len() == after.len() + 1)
    })
    .await?;

    demo_page(browser, &api).await
}

/// Plain HTTP checks of the origin and the token.
async fn refusals(api: &Api, host: &str, stranger: &str) -> Result<()> {
    let url = format!("{}/web/{ACCOUNT}/sessions", api.base);
    let body = json!({"source": {}, "page": {"url": format!("{stranger}/landing")}});
    let answer = api.client.post(&url).header("origin", stranger).json(&body).send().await?;
    let status = answer.status();
    let error: Value = answer.json().await?;
    ensure!(status == 403 && error["error"]["code"] == "origin_not_allowed", "wrong origin: {status} {error}");

    let session: Value = api.client.post(&url).header("origin", host).json(&body).send().await?.json().await?;
    let token = session["token"].as_str().context("a session token")?;
    let forged = forge(token);
    let (status, error) =
        visitor_post(api, host, &forged, "/messages", json!({"client_id": "f-1", "text": "hi"})).await?;
    ensure!(status == 401 && error["error"]["code"] == "visitor_token_invalid", "forged token: {status} {error}");
    let stream = api
        .client
        .get(format!("{}/web/{ACCOUNT}/stream", api.base))
        .header("origin", host)
        .bearer_auth(&forged)
        .send()
        .await?;
    ensure!(stream.status() == 401, "the stream refuses a forged token: {}", stream.status());
    Ok(())
}

/// The same token with one character of its signature changed.
fn forge(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let last = chars.len() - 1;
    chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// The demo page on the gateway's own origin: console connected, the widget open beside it.
async fn demo_page(browser: &Client, api: &Api) -> Result<()> {
    browser.goto(&format!("{}/", api.base)).await?;
    let snippet = browser.find(Locator::Id("snippet")).await?.text().await?;
    ensure!(snippet.contains(&format!("/web/{ACCOUNT}/widget.js")), "the demo shows the snippet: {snippet}");
    browser.find(Locator::Id("token")).await?.send_keys(TOKEN).await?;
    browser.find(Locator::Css("#token-form button")).await?.click().await?;
    wait_js(browser, "return document.querySelectorAll('#conversations button').length > 0", "conversations listed")
        .await?;
    browser.find(Locator::Css("#conversations button")).await?.click().await?;
    open_widget(browser).await?;
    type_message(browser, "Hello from the demo page").await?;
    wait_js(
        browser,
        "return [...document.querySelectorAll('#conversations .last')].some(e => e.textContent.includes('demo page'))",
        "the console shows the demo visitor",
    )
    .await?;
    browser.find(Locator::Css("#conversations button")).await?.click().await?;
    browser.find(Locator::Id("reply-text")).await?.send_keys("Hi! This answer comes from the console.").await?;
    browser.find(Locator::Css("#reply button[type=submit]")).await?.click().await?;
    wait_ui(browser, "last('.cg-theirs .cg-text')?.textContent.includes('from the console')", "the console's answer")
        .await?;
    wait_js(browser, "return !!document.querySelector('#messages .ticks.read')", "read ticks in the console").await?;
    let views = web_events(api)
        .await?
        .into_iter()
        .filter(|e| e["type"] == "page_view" && e["page"]["url"] == json!(format!("{}/", api.base)));
    ensure!(views.count() == 1, "opening the chat reports the demo page once");
    save_screenshot(browser, "demo-console.png").await?;
    browser.execute("window.scrollTo(0, 0); return 0", vec![]).await?;
    save_screenshot(browser, "demo.png").await
}

// ---- the widget, seen from the test ----

/// The widget's shadow root.
async fn shadow(browser: &Client) -> Result<ShadowRoot> {
    let host: Element = browser.find(Locator::Css("[data-chatgate]")).await?;
    Ok(host.shadow_root().await?)
}

async fn open_widget(browser: &Client) -> Result<()> {
    wait_js(browser, "return !!document.querySelector('[data-chatgate]')", "the launcher").await?;
    shadow(browser).await?.find(Locator::Css(".cg-launcher")).await?.click().await?;
    wait_ui(
        browser,
        "!!root.querySelector('.cg-panel:not([hidden])') && root.querySelector('.cg-state').textContent === 'Online'",
        "the open, connected widget",
    )
    .await
}

/// Types into the widget's input and presses Enter, as a visitor does.
async fn type_message(browser: &Client, text: &str) -> Result<()> {
    let input = shadow(browser).await?.find(Locator::Css(".cg-input")).await?;
    input.send_keys(&format!("{text}{}", char::from(Key::Enter))).await?;
    Ok(())
}

/// Evaluates `expression` with `root` (the shadow root), `last(sel)`, `first(sel)` and
/// `status(row)` (the row's tick: pending, sent, delivered, failed) in scope.
async fn ui(browser: &Client, expression: &str) -> Result<Value> {
    let script = format!(
        "const root = document.querySelector('[data-chatgate]').shadowRoot;
         const all = (s) => [...root.querySelectorAll(s)];
         const last = (s) => all(s).pop(); const first = (s) => all(s)[0];
         const status = (row) => row?.querySelector('.cg-status')?.dataset.status;
         return ({expression});"
    );
    Ok(browser.execute(&script, vec![]).await?)
}

/// The conversation as the visitor sees it: `who: text` per bubble (attachments by name).
async fn transcript(browser: &Client) -> Result<Vec<String>> {
    let rows = ui(
        browser,
        "all('.cg-row').map(r => (r.classList.contains('cg-mine') ? 'visitor' : 'operator') + ': ' +
           ((r.querySelector('.cg-text')?.textContent) || [...r.querySelectorAll('.cg-attachment-name')].map(n => n.textContent).join(',')))",
    )
    .await?;
    Ok(serde_json::from_value(rows)?)
}

async fn visitor_token(browser: &Client) -> Result<String> {
    Ok(stored_session(browser).await?["token"].as_str().context("token")?.to_owned())
}

async fn visitor_id(browser: &Client) -> Result<String> {
    Ok(stored_session(browser).await?["visitor_id"].as_str().context("visitor_id")?.to_owned())
}

/// What the widget keeps in `localStorage` under `chatgate:{gateway origin}:{account}`.
async fn stored_session(browser: &Client) -> Result<Value> {
    let stored =
        browser.execute("return Object.keys(localStorage).map(k => [k, localStorage.getItem(k)])", vec![]).await?;
    let pairs: Vec<(String, String)> = serde_json::from_value(stored)?;
    let (key, value) =
        pairs.into_iter().find(|(k, _)| k.starts_with("chatgate:")).context("no chatgate key in localStorage")?;
    ensure!(key.ends_with(&format!(":{ACCOUNT}")), "the storage key names gateway and account: {key}");
    Ok(serde_json::from_str(&value)?)
}

async fn wait_ui(browser: &Client, expression: &str, what: &str) -> Result<()> {
    wait_until(what, || async { Ok(ui(browser, expression).await? == json!(true)) }).await
}

async fn wait_js(browser: &Client, script: &str, what: &str) -> Result<()> {
    wait_until(what, || async { Ok(browser.execute(script, vec![]).await? == json!(true)) }).await
}

async fn wait_until<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let started = Instant::now();
    let mut last_error = None;
    while started.elapsed() < PATIENCE {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match last_error {
        Some(e) => Err(e.context(format!("waited {PATIENCE:?} for {what}"))),
        None => bail!("waited {PATIENCE:?} for {what}"),
    }
}

async fn save_screenshot(browser: &Client, name: &str) -> Result<()> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().context("target dir")?.join("screenshots");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, browser.screenshot().await?)?;
    eprintln!("screenshot: {}", path.display());
    Ok(())
}

// ---- the core's side ----

async fn web_events(api: &Api) -> Result<Vec<Value>> {
    Ok(api.events(0).await.into_iter().filter(|e| e["channel"] == "web").collect())
}

async fn wait_event(api: &Api, wanted: impl Fn(&Value) -> bool) -> Result<Value> {
    let started = Instant::now();
    while started.elapsed() < PATIENCE {
        if let Some(event) = web_events(api).await?.into_iter().find(&wanted) {
            return Ok(event);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no such event in /v1/events after {PATIENCE:?}")
}

/// `POST /v1/messages` to the visitor's chat; the message id.
async fn send_as_core(api: &Api, chat: &str, extra: Value) -> Result<String> {
    let mut body = json!({"channel": "web", "account": ACCOUNT, "chat_id": chat});
    for (key, value) in extra.as_object().context("fields")? {
        body[key] = value.clone();
    }
    let (status, answer) = api.send(&body).await;
    ensure!(status == 202, "POST /v1/messages: {status} {answer}");
    Ok(answer["id"].as_str().context("message id")?.to_owned())
}

async fn wait_status(api: &Api, id: &str, wanted: &str) -> Result<()> {
    let record = api.wait_message(id, |r| r["status"] == wanted).await;
    ensure!(record["status"] == wanted, "message {id} should reach {wanted}: {record}");
    Ok(())
}

/// A visitor API call from the host's origin with a bearer token.
async fn visitor_post(api: &Api, origin: &str, token: &str, path: &str, body: Value) -> Result<(u16, Value)> {
    let answer = api
        .client
        .post(format!("{}/web/{ACCOUNT}{path}", api.base))
        .header("origin", origin)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = answer.status().as_u16();
    Ok((status, answer.json().await.unwrap_or(Value::Null)))
}

// ---- processes and servers ----

fn tool(var: &str, default: &str) -> Result<PathBuf> {
    let path = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_owned()));
    if path.exists() {
        return Ok(path);
    }
    bail!(
        "{} is missing: the browser test needs Debian's chromium and chromium-driver \
         (`apt-get install chromium chromium-driver`, which `bash scripts/test` does as root), \
         or {var} pointing at the binary",
        path.display()
    )
}

fn write_config(data: &Path, gateway_port: u16, host: &str) -> Result<PathBuf> {
    let gw = format!("http://127.0.0.1:{gateway_port}");
    let text = format!(
        r##"[accounts.{ACCOUNT}]
kind = "web"
name = "Acme Support"
public_url = "{gw}"
allowed_origins = ["{host}", "{gw}"]
token_secret = "{TOKEN_SECRET}"
knowledge_base_url = "https://example.com/help"

[accounts.{ACCOUNT}.colors]
button = "{button}"
button_text = "#ffffff"
user = "{user}"
operator = "hsla(210, 40%, 96%, 1)"
bot = "#eef2ff"

[accounts.{ACCOUNT}.limits]
image_mb = 1

[[accounts.{ACCOUNT}.messenger_links]]
kind = "telegram"
url = "https://t.me/acme_bot"
label = "Telegram"

[[accounts.{ACCOUNT}.messenger_links]]
kind = "whatsapp"
url = "https://wa.me/15550100"
label = "WhatsApp"
"##,
        button = BUTTON.0,
        user = USER.0,
    );
    let path = data.join("channels.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The real binary on a fixed port, so a restart comes back where the widget looks for it.
struct Gateway {
    serve: Option<Serve>,
    api: Api,
    port: u16,
}

impl Gateway {
    async fn start(config: &Path, data: &Path, port: u16) -> Result<Gateway> {
        let serve = Serve::start(env!("CARGO_BIN_EXE_chatgate"), config, data, port, &[], &[]).await;
        Ok(Gateway { api: serve.api.clone(), serve: Some(serve), port })
    }

    /// SIGKILL: the browser sees the connection drop as it would on a crash.
    fn stop(&mut self) {
        self.serve.take();
    }
}

/// chromedriver in its own process group, so the browsers it starts end with it.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(binary: &Path) -> Result<Driver> {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("{} starts", binary.display()))?;
        Ok(Driver { child, url: format!("http://127.0.0.1:{port}") })
    }

    async fn session(&self, chromium: &Path) -> Result<Client> {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"],
            }),
        );
        let started = Instant::now();
        loop {
            let attempt = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&self.url)
                .await;
            match attempt {
                Ok(client) => return Ok(client),
                Err(e) if started.elapsed() > Duration::from_secs(15) => {
                    return Err(anyhow!("no WebDriver session from {}: {e}", self.url));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// The host site on its own loopback origin: a referring page, a landing page with the snippet,
/// and the same page under a strict CSP that allows only the gateway.
async fn serve_host_pages(gateway_port: u16) -> String {
    let gw = format!("http://127.0.0.1:{gateway_port}");
    let snippet = format!(r#"<script src="{gw}/web/{ACCOUNT}/widget.js" async></script>"#);
    let page = |title: &str, body: &str, snippet: &str| {
        format!(
            "<!doctype html><html><head><meta charset=utf-8><title>{title}</title>{snippet}</head>\
             <body><h1>{title}</h1>{body}</body></html>"
        )
    };
    let from = page(
        "Partner blog",
        r#"<a id="go" href="/landing?utm_source=newsletter&amp;utm_campaign=spring">Acme</a>"#,
        "",
    );
    let landing = page("Acme — spring offers", "<p>A page of the customer's site.</p>", &snippet);
    let strict = page(
        "Acme — strict CSP",
        "<p>This page allows scripts, styles and connections to the gateway only.</p>",
        &snippet,
    );
    let csp = format!("default-src 'none'; script-src {gw}; connect-src {gw}; style-src {gw}; img-src {gw} data:");
    let app = Router::new()
        .route("/from", get(move || async move { Html(from) }))
        .route("/landing", get(move || async move { Html(landing) }))
        .route(
            "/strict",
            get(move || async move { ([(header::CONTENT_SECURITY_POLICY, csp)], Html(strict)).into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("host pages serve") });
    format!("http://{addr}")
}
