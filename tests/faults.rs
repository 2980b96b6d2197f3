//! The fault suite: the real `chatgate` binary on loopback under crashes, SIGTERM, slow clients,
//! a full disk and a failing provider. Every test prints its figures.
//!
//! Short forms run in CI. Long forms (README, "Reliability"):
//! `CHATGATE_FAULT_SCALE=10 cargo test --release -p chatgate --test faults -- --nocapture --test-threads 1`
//! multiplies cycles, webhooks and connections; `CHATGATE_FAULT_SEED` picks the seed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatgate::config::{self, MissingSecrets};
use chatgate_adapter::Adapter;
use chatgate_testkit::gateway::TOKEN;
use chatgate_testkit::mock::{MockApi, Reply};
use chatgate_testkit::process::{Serve, free_port};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// One fault test at a time: they measure a process on a shared 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TG_SECRET: &str = "fault-telegram-secret";
const VIBER_TOKEN: &str = "4f1c2b7e9a0d3e51-8c7b6a5f4e3d2c1b-0a9f8e7d6c5b4a39";
const VK_SECRET: &str = "fault-vk-secret";

fn scale() -> u64 {
    std::env::var("CHATGATE_FAULT_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1)
}

fn seed() -> u64 {
    std::env::var("CHATGATE_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(11)
}

/// A `channels.toml` with a Telegram, a Viber and a VK account; outbound calls go to `api`.
fn write_config(dir: &Path, api: &str) -> PathBuf {
    let path = dir.join("channels.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[accounts.main]
kind = "telegram"
bot_token = "1:fault"
secret_token = "{TG_SECRET}"
api_base_url = "{api}"
request_timeout_seconds = 1

[accounts.vb]
kind = "viber"
auth_token = "{VIBER_TOKEN}"
sender_name = "Fault"
api_base_url = "{api}/pa"

[accounts.grp]
kind = "vk"
group_id = 229000001
access_token = "fault-token"
secret = "{VK_SECRET}"
confirmation = "abc"
api_base_url = "{api}/method"
"#
        ),
    )
    .unwrap();
    path
}

/// The gateway process.
struct Gateway(Serve);

impl std::ops::Deref for Gateway {
    type Target = Serve;
    fn deref(&self) -> &Serve {
        &self.0
    }
}

impl std::ops::DerefMut for Gateway {
    fn deref_mut(&mut self) -> &mut Serve {
        &mut self.0
    }
}

impl Gateway {
    /// Starts `chatgate serve` (under `prefix`, e.g. `prlimit`) and waits for `/healthz`.
    async fn start(config: &Path, data: &Path, extra: &[&str], prefix: &[&str]) -> Gateway {
        Gateway(Serve::start(env!("CARGO_BIN_EXE_chatgate"), config, data, free_port(), extra, prefix).await)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Every event on the log, paged.
    async fn all_events(&self) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        loop {
            let after = out.last().map_or(0, |e| e["seq"].as_u64().unwrap());
            let page = self.api.events(after).await;
            if page.is_empty() {
                return out;
            }
            out.extend(page);
        }
    }

    async fn metrics(&self) -> String {
        self.api.client.get(format!("{}/metrics", self.api.base)).send().await.unwrap().text().await.unwrap()
    }
}

/// The value of one unlabelled metric line.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Signs webhooks of the three accounts with their adapters.
#[derive(Clone)]
struct Signer {
    accounts: Arc<HashMap<&'static str, Arc<dyn Adapter>>>,
}

/// The three kinds of webhook the tests send.
const KINDS: [(&str, &str); 3] = [("telegram", "main"), ("viber", "vb"), ("vk", "grp")];

impl Signer {
    fn new(config: &Path) -> Signer {
        let loaded = config::load(config, MissingSecrets::Disable).unwrap();
        let mut accounts = HashMap::new();
        for a in loaded.accounts {
            let kind = KINDS.iter().find(|(_, id)| *id == a.id).unwrap().0;
            accounts.insert(kind, a.adapter);
        }
        Signer { accounts: Arc::new(accounts) }
    }

    /// The body of webhook `n` of `kind`; its text is the marker [`marker`] finds again.
    fn body(kind: &str, n: u64) -> String {
        let text = format!("fault {kind} {n}");
        match kind {
            "telegram" => json!({"update_id": n, "message": {"message_id": n, "date": 1718000000, "text": text,
                "from": {"id": 700 + n % 50, "is_bot": false, "first_name": "Ann"},
                "chat": {"id": 700 + n % 50, "type": "private", "first_name": "Ann"}}}),
            "viber" => json!({"event": "message", "timestamp": 1732190405000_u64 + n, "message_token": 5741311803571721105_u64 + n,
                "sender": {"id": format!("user{}==", n % 50), "name": "Olena"},
                "message": {"type": "text", "text": text}}),
            _ => json!({"group_id": 229000001, "type": "message_new", "event_id": format!("ev{n:040}"), "v": "5.199",
                "object": {"message": {"date": 1717236000, "from_id": 512000000 + n % 50, "id": n, "out": 0,
                "peer_id": 512000000 + n % 50, "text": text, "conversation_message_id": n}}}),
        }
        .to_string()
    }

    /// Posts webhook `n` of `kind`; the status, or `None` when there was no answer.
    async fn post(&self, client: &reqwest::Client, base: &str, kind: &str, n: u64) -> Option<u16> {
        let adapter = &self.accounts[kind];
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, "application/json".parse().unwrap());
        let body = adapter.sign(&mut headers, Signer::body(kind, n).into_bytes());
        let url = format!("{base}/webhooks/{kind}/{}", adapter.account());
        let answer = client.post(url).headers(headers).body(body).timeout(Duration::from_secs(10)).send().await;
        answer.ok().map(|r| r.status().as_u16())
    }
}

/// The marker of a stored event (`fault <kind> <n>`), if it is one of ours.
fn marker(event: &Value) -> Option<String> {
    event["message"]["text"].as_str().filter(|t| t.starts_with("fault ")).map(str::to_owned)
}

/// Acknowledged webhooks, by marker.
type Ledger = Arc<Mutex<Vec<String>>>;

/// Workers posting signed webhooks of random kinds until `stop`; some repeat an acknowledged
/// one (a provider's redelivery). Acknowledged ones go into `acked`.
fn load(
    signer: &Signer,
    base: &str,
    workers: usize,
    next: &Arc<AtomicU64>,
    acked: &Ledger,
    stop: &Arc<AtomicBool>,
    seed: u64,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|w| {
            let (signer, base, next, acked, stop) =
                (signer.clone(), base.to_owned(), next.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut rng = StdRng::seed_from_u64(seed ^ (w as u64) << 32);
                while !stop.load(Ordering::Relaxed) {
                    let kind = KINDS[rng.random_range(0..KINDS.len())].0;
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if signer.post(&client, &base, kind, n).await == Some(200) {
                        acked.lock().unwrap().push(format!("fault {kind} {n}"));
                    }
                    if rng.random_bool(0.1) {
                        // A redelivery of the same webhook: answered alike, stored once.
                        let _ = signer.post(&client, &base, kind, n).await;
                    }
                }
            })
        })
        .collect()
}

/// Counts how often each acknowledged marker is on the log; panics on a loss or a double.
fn check_ledger(events: &[Value], acked: &[String], what: &str) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in events {
        if let Some(m) = marker(e) {
            *seen.entry(m).or_default() += 1;
        }
    }
    let lost: Vec<_> = acked.iter().filter(|m| !seen.contains_key(*m)).collect();
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).map(|(m, _)| m).collect();
    let found = acked.iter().filter(|m| seen.contains_key(*m)).count();
    println!(
        "{what}: acknowledged={} found={found} lost={} duplicated={} stored_unacknowledged={}",
        acked.len(),
        lost.len(),
        doubled.len(),
        seen.len().saturating_sub(found)
    );
    assert!(lost.is_empty(), "{what}: acknowledged but lost: {:?}", &lost[..lost.len().min(10)]);
    assert!(doubled.is_empty(), "{what}: stored twice: {:?}", &doubled[..doubled.len().min(10)]);
}

/// Sequence numbers strictly increase, and everything `before` saw is still there unchanged.
fn check_view(events: &[Value], before: &BTreeMap<u64, String>, what: &str) -> BTreeMap<u64, String> {
    let now: BTreeMap<u64, String> = events.iter().map(|e| (e["seq"].as_u64().unwrap(), e.to_string())).collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{what}: sequence numbers go back");
    for (seq, json) in before {
        assert_eq!(now.get(seq), Some(json), "{what}: event {seq} changed or vanished");
    }
    assert!(now.keys().next_back() >= before.keys().next_back(), "{what}: the last sequence number went back");
    now
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_cycles_lose_and_double_nothing() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9");
    let data = dir.path().join("data");
    let signer = Signer::new(&config);
    let (cycles, seed) = (10 * scale(), seed());
    let mut rng = StdRng::seed_from_u64(seed);
    let (next, acked) = (Arc::new(AtomicU64::new(1)), Ledger::default());
    let mut view = BTreeMap::new();
    let started = Instant::now();
    for cycle in 0..cycles {
        let gateway = Gateway::start(&config, &data, &[], &[]).await;
        view = check_view(&gateway.all_events().await, &view, &format!("cycle {cycle}"));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = load(&signer, &gateway.api.base, 8, &next, &acked, &stop, seed + cycle);
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
        drop(gateway); // SIGKILL at a random moment under load
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.await.unwrap();
        }
    }
    let gateway = Gateway::start(&config, &data, &[], &[]).await;
    let events = gateway.all_events().await;
    check_view(&events, &view, "after the last cycle");
    println!("seed={seed} cycles={cycles} posted={} in {:?}", next.load(Ordering::Relaxed) - 1, started.elapsed());
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 100 * cycles as usize / 10, "too little load to mean anything: {}", acked.len());
    check_ledger(&events, &acked, "kill -9 cycles");
}

/// A client that sends part of a request head and then nothing.
async fn half_sent_head(port: u16) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"POST /webhooks/telegram/main HTTP/1.1\r\nHost: x\r\nContent-Type: appl").await.unwrap();
    s
}

/// A client that sends a whole head and 10 of 5000 body bytes.
async fn half_sent_body(port: u16) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /webhooks/telegram/main HTTP/1.1\r\nHost: x\r\nX-Telegram-Bot-Api-Secret-Token: {TG_SECRET}\r\nContent-Length: 5000\r\n\r\n{{\"update_i"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_within_the_bound_despite_slow_clients_and_long_polls() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9");
    let data = dir.path().join("data");
    let signer = Signer::new(&config);
    let (next, acked) = (Arc::new(AtomicU64::new(1)), Ledger::default());
    let grace = Duration::from_secs(3);
    // Timeouts far longer than the grace: the bound must come from the shutdown, not from them.
    let args = ["--shutdown-grace", "3", "--header-timeout", "120", "--body-timeout", "120", "--idle-timeout", "120"];
    let mut stops = Vec::new();
    for round in 0..2 * scale() {
        let gateway = Gateway::start(&config, &data, &args, &[]).await;
        let _head = half_sent_head(gateway.port).await;
        let _body = half_sent_body(gateway.port).await;
        let last = gateway.all_events().await.last().map_or(0, |e| e["seq"].as_u64().unwrap());
        let poll = {
            let api = gateway.api.clone();
            tokio::spawn(async move {
                let url = format!("{}/v1/events?after={}&wait=60", api.base, last + 1_000_000);
                let r = api.client.get(url).bearer_auth(TOKEN).send().await.unwrap();
                (r.status().as_u16(), Instant::now())
            })
        };
        let stop = Arc::new(AtomicBool::new(false));
        let workers = load(&signer, &gateway.api.base, 4, &next, &acked, &stop, seed() + round);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut gateway = gateway;
        let sent = Instant::now();
        gateway.signal("TERM");
        let (status, answered) = tokio::time::timeout(Duration::from_secs(10), poll).await.unwrap().unwrap();
        let exited = loop {
            if let Some(status) = gateway.child.try_wait().unwrap() {
                break (status, sent.elapsed());
            }
            assert!(sent.elapsed() < grace + Duration::from_secs(5), "no exit {:?} after SIGTERM", sent.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.await.unwrap();
        }
        println!(
            "round {round}: long-poll answered {status} {:?} after SIGTERM; exit {} after {:?} (grace {grace:?})",
            answered - sent,
            exited.0,
            exited.1
        );
        assert_eq!(status, 200);
        assert!(answered - sent < Duration::from_secs(2), "the long-poll waited {:?}", answered - sent);
        assert!(exited.0.success(), "exit status {}", exited.0);
        assert!(exited.1 < grace + Duration::from_secs(2), "exit took {:?}", exited.1);
        stops.push(exited.1);
    }
    let gateway = Gateway::start(&config, &data, &[], &[]).await;
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    check_ledger(&gateway.all_events().await, &acked, "SIGTERM rounds");
    println!("exit times after SIGTERM: {stops:?}");
}

/// Raises this process's open-file soft limit so the test can hold thousands of sockets.
fn raise_own_file_limit(needed: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= needed,
        "this test needs {needed} open files; the hard limit is {hard} (raise it with `ulimit -Hn`)"
    );
    setrlimit(
        Resource::Nofile,
        Rlimit { current: Some(needed.max(limit.current.unwrap_or(0))), maximum: limit.maximum },
    )
    .unwrap();
}

/// p-th percentile of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_under_a_1024_file_limit_do_not_starve_real_webhooks() {
    let _serial = SERIAL.lock().await;
    let (slowloris, slow_bodies, webhooks) = (2000 * scale() as usize, 200 * scale() as usize, 300 * scale());
    raise_own_file_limit((slowloris + slow_bodies) as u64 + 1024);
    assert!(
        Command::new("prlimit").arg("--version").output().is_ok_and(|o| o.status.success()),
        "this test runs the gateway under `prlimit` (util-linux); install it"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9");
    let data = dir.path().join("data");
    let signer = Signer::new(&config);
    let gateway =
        Gateway::start(&config, &data, &["--body-timeout", "5"], &["prlimit", "--nofile=1024:1024", "--"]).await;
    let port = gateway.port;
    let stop = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..slowloris + slow_bodies)
        .map(|i| {
            let stop = stop.clone();
            tokio::spawn(async move {
                // Reconnects when closed, as an attacker would; one header line (or body byte) a second.
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = (if i < slowloris {
                        tokio::time::timeout(Duration::from_secs(2), half_sent_head(port)).await
                    } else {
                        tokio::time::timeout(Duration::from_secs(2), half_sent_body(port)).await
                    }) else {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let drip: &[u8] = if i < slowloris { b"X-Slow: 1\r\n" } else { b" " };
                        if s.write_all(drip).await.is_err() {
                            // Closed by the gateway: come back a little later.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Real traffic on fresh connections while the attack goes on.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let mut latencies = Vec::new();
    let mut acked = Vec::new();
    let mut failures = Vec::new();
    let next = AtomicU64::new(1_000_000);
    for _ in 0..webhooks / 4 {
        let batch: Vec<_> = (0..4)
            .map(|k| {
                let (signer, client, base) = (signer.clone(), client.clone(), gateway.api.base.clone());
                let (kind, n) = (KINDS[k % 3].0, next.fetch_add(1, Ordering::Relaxed));
                tokio::spawn(async move {
                    let t = Instant::now();
                    let status = signer.post(&client, &base, kind, n).await;
                    (kind, n, status, t.elapsed())
                })
            })
            .collect();
        for b in batch {
            let (kind, n, status, took) = b.await.unwrap();
            latencies.push(took);
            match status {
                Some(200) => acked.push(format!("fault {kind} {n}")),
                other => failures.push((n, other, took)),
            }
        }
    }
    let metrics = gateway.metrics().await;
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.abort();
    }
    latencies.sort();
    println!(
        "slow clients: slowloris={slowloris} slow_bodies={slow_bodies}; webhooks={} ok={} failed={} p50={:?} p99={:?} max={:?}",
        latencies.len(),
        acked.len(),
        failures.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    println!(
        "gateway: open={} accepted={} shed={} refused={} idle_closed={} accept_errors={} body_timeouts={}",
        metric(&metrics, "chatgate_connections_open"),
        metric(&metrics, "chatgate_connections_accepted_total"),
        metric(&metrics, "chatgate_connections_shed_total"),
        metric(&metrics, "chatgate_connections_refused_total"),
        metric(&metrics, "chatgate_connections_idle_closed_total"),
        metric(&metrics, "chatgate_connections_accept_errors_total"),
        metric(&metrics, "chatgate_connections_body_timeouts_total"),
    );
    assert!(failures.is_empty(), "real webhooks not answered 200: {:?}", &failures[..failures.len().min(10)]);
    assert!(metric(&metrics, "chatgate_connections_shed_total") > 0, "the attack never reached the connection cap");
    assert!(metric(&metrics, "chatgate_connections_open") <= 1024, "more connections than file handles");
    check_ledger(&gateway.all_events().await, &acked, "slow clients");
}

/// Mounts a tmpfs of `size` on `dir`; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).output();
        match out {
            Ok(o) if o.status.success() => Tmpfs(dir.to_owned()),
            Ok(o) => panic!(
                "the disk-full test mounts a small tmpfs and needs root with CAP_SYS_ADMIN: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("the disk-full test needs `mount`: {e}"),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_acknowledges_only_what_is_stored_and_recovers() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9");
    let mount = dir.path().join("disk");
    let _tmpfs = Tmpfs::mount(&mount, "4m");
    let data = mount.join("data");
    let signer = Signer::new(&config);
    let gateway = Gateway::start(&config, &data, &[], &[]).await;
    // Fill the disk with a file we can delete later, leaving a little room.
    let filler = mount.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .and_then(|f| f.set_len(f.metadata()?.len().saturating_sub(300 * 1024)));
    let client = reqwest::Client::new();
    let (mut acked, mut refused, mut retry_after) = (Vec::new(), 0, 0);
    let mut n = 1;
    while refused < 20 && n < 20_000 {
        let kind = KINDS[(n % 3) as usize].0;
        let adapter = &signer.accounts[kind];
        let mut headers = http::HeaderMap::new();
        // Big texts fill the little room quickly.
        let mut body: Value = serde_json::from_str(&Signer::body(kind, n)).unwrap();
        let pad = "x".repeat(4000);
        match kind {
            "telegram" => body["message"]["caption"] = json!(pad),
            "viber" => body["message"]["tracking_data"] = json!(pad),
            _ => body["object"]["message"]["payload"] = json!(pad),
        }
        let body = adapter.sign(&mut headers, body.to_string().into_bytes());
        let url = format!("{}/webhooks/{kind}/{}", gateway.api.base, adapter.account());
        let r = client.post(url).headers(headers).body(body).send().await.unwrap();
        match r.status().as_u16() {
            200 => acked.push(format!("fault {kind} {n}")),
            503 => {
                refused += 1;
                if r.headers().get("retry-after").is_some() {
                    retry_after += 1;
                }
            }
            other => panic!("webhook {n}: unexpected {other}"),
        }
        n += 1;
    }
    println!("disk full: acknowledged={} refused_503={refused} with_retry_after={retry_after}", acked.len());
    assert!(refused >= 20, "the disk never filled up ({} acknowledged)", acked.len());
    assert_eq!(retry_after, refused, "every 503 carries Retry-After");

    // Space comes back: the same process takes webhooks again without a restart.
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = None;
    for attempt in 0..100 {
        let kind = KINDS[(n % 3) as usize].0;
        if signer.post(&client, &gateway.api.base, kind, n).await == Some(200) {
            acked.push(format!("fault {kind} {n}"));
            recovered = Some(attempt);
            break;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("recovered after {recovered:?} retries");
    assert!(recovered.is_some(), "no webhook was taken after space came back");
    check_ledger(&gateway.all_events().await, &acked, "disk full, before restart");
    drop(gateway);
    let gateway = Gateway::start(&config, &data, &[], &[]).await;
    check_ledger(&gateway.all_events().await, &acked, "disk full, after kill -9");
}

/// What the provider did with one call, by arrival time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Accepted,
    BadGateway,
    /// 429 with `retry_after` 1 in a private chat: the whole bot waits.
    TooMany,
    Refused,
    /// Held past the client's 1 s timeout, never accepted.
    Hung,
    /// The connection dropped unanswered, never accepted.
    Reset,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_and_a_restart_end_every_message_once_in_order() {
    let _serial = SERIAL.lock().await;
    let seed = seed();
    let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
    // Accepted texts in the order the provider took them, per chat; every call with its time.
    let taken: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let calls: Arc<Mutex<Vec<(Instant, Call)>>> = Arc::default();
    let tg = {
        let (rng, taken, calls) = (rng.clone(), taken.clone(), calls.clone());
        MockApi::start_with(move |r| {
            // Calls 3, 6 and 10 are a 429, a reset and a hang whatever the seed; the rest is random.
            let roll: f64 = match calls.lock().unwrap().len() {
                2 => 0.12,
                5 => 0.17,
                9 => 0.20,
                _ => rng.lock().unwrap().random(),
            };
            let (call, reply) = if roll < 0.10 {
                (Call::BadGateway, Reply::Json(502, json!({"ok": false, "error_code": 502, "description": "Bad Gateway"})))
            } else if roll < 0.13 {
                let body = json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}});
                (Call::TooMany, Reply::Json(429, body))
            } else if roll < 0.16 {
                (Call::Refused, Reply::Json(400, json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"})))
            } else if roll < 0.19 {
                (Call::Reset, Reply::Reset)
            } else if roll < 0.21 {
                let never = Reply::Json(504, json!({"ok": false, "error_code": 504, "description": "Gateway Timeout"}));
                (Call::Hung, Reply::Late(Duration::from_secs(3), Box::new(never)))
            } else {
                let body = r.json();
                let (chat, text) = (body["chat_id"].to_string(), body["text"].as_str().unwrap_or_default().to_owned());
                taken.lock().unwrap().push((chat, text));
                (Call::Accepted, Reply::Json(200, json!({"ok": true, "result": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}}})))
            };
            calls.lock().unwrap().push((Instant::now(), call));
            reply
        })
        .await
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &tg.base_url);
    let data = dir.path().join("data");
    let (chats, per_chat) = (20, 3 * scale());
    let gateway = Gateway::start(&config, &data, &["--shutdown-grace", "3"], &[]).await;
    let mut ids = Vec::new();
    for i in 0..per_chat {
        for chat in 0..chats {
            let text = format!("c{chat} m{i}");
            let (status, reply) = gateway
                .api
                .send(&json!({"channel": "telegram", "account": "main", "chat_id": format!("{}", 900 + chat), "text": text}))
                .await;
            assert_eq!(status, 202, "{reply}");
            ids.push((reply["id"].as_str().unwrap().to_owned(), chat, text));
        }
    }
    // A restart in the middle of the storm.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut gateway = gateway;
    gateway.signal("TERM");
    let _ = gateway.child.wait();
    let gateway = Gateway::start(&config, &data, &[], &[]).await;
    let mut outcome: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (id, _, _) in &ids {
        let record = loop {
            let record = gateway.api.message(id).await;
            if record["status"] == "delivered" || record["status"] == "failed" || Instant::now() > deadline {
                break record;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let end = match record["status"].as_str() {
            Some("failed") => format!("failed {}", record["error"]["code"].as_str().unwrap_or("untyped")),
            other => other.unwrap_or("?").to_owned(),
        };
        *outcome.entry(end).or_default() += 1;
    }
    let taken = taken.lock().unwrap().clone();
    let mut per_text: HashMap<&str, usize> = HashMap::new();
    for (_, text) in &taken {
        *per_text.entry(text).or_default() += 1;
    }
    let twice = per_text.values().filter(|n| **n > 1).count();
    let calls = calls.lock().unwrap().clone();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for (_, call) in &calls {
        *by_kind.entry(format!("{call:?}")).or_default() += 1;
    }
    // The bot's wait: after a 429 with `retry_after` 1, no call of the bot may arrive until that
    // second is over, except calls already on their way when the 429 left the mock (a worker per
    // chat: at most one in flight per chat, sent within a few ms of each other).
    let in_flight = Duration::from_millis(250);
    let early: Vec<Duration> = calls
        .iter()
        .filter(|(_, c)| *c == Call::TooMany)
        .flat_map(|(at, _)| {
            calls
                .iter()
                .map(move |(next, _)| next.saturating_duration_since(*at))
                .filter(move |gap| *gap > in_flight && *gap < Duration::from_millis(950))
        })
        .collect();
    println!(
        "outbound faults (seed {seed}): messages={} outcomes={outcome:?} provider_calls={by_kind:?} provider_accepted={} sent_twice={twice} calls_inside_a_wait={}",
        ids.len(),
        taken.len(),
        early.len()
    );
    for fault in ["TooMany", "Reset", "Hung"] {
        assert!(by_kind.contains_key(fault), "no {fault} call: {by_kind:?}");
    }
    assert!(early.is_empty(), "calls arrived inside the bot's 1 s wait after a 429: {early:?}");
    for end in outcome.keys() {
        assert!(end == "delivered" || end == "failed provider_rejected", "a message ended as `{end}`");
    }
    assert_eq!(twice, 0, "a part was accepted twice");
    // Order per chat: the accepted texts of each chat in the order they were queued.
    for chat in 0..chats {
        let got: Vec<usize> = taken
            .iter()
            .filter(|(c, _)| *c == format!("{}", 900 + chat) || *c == format!("\"{}\"", 900 + chat))
            .map(|(_, t)| t.rsplit('m').next().unwrap().parse().unwrap())
            .collect();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "chat {chat} out of order: {got:?}");
    }
}
