//! `chatgate_server::serve` on a real socket with short limits: a half-sent head is cut off, a
//! slow body gets 408, an idle keep-alive connection is closed, and shutdown answers a long-poll
//! at once and returns within the grace although a request is stuck in a handler.

use std::time::{Duration, Instant};

use chatgate_server::{Limits, serve};
use chatgate_testkit::gateway::{Harness, TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SHORT: Duration = Duration::from_millis(300);

async fn start(
    limits: Limits,
) -> (Harness, std::net::SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let harness = Harness::start(vec![]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = harness.gateway().clone();
    let server = tokio::spawn(async move {
        serve(listener, gateway, limits, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (harness, addr, stop, server)
}

fn short_limits() -> Limits {
    Limits {
        header_read_timeout: SHORT,
        body_read_timeout: SHORT,
        idle_timeout: SHORT,
        shutdown_grace: Duration::from_secs(1),
        ..Limits::default()
    }
}

/// Reads until the server closes the connection (5 s at most); what it sent and when it closed.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection was not closed within 5 s"),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), started.elapsed())
}

#[tokio::test]
async fn a_half_sent_head_is_cut_off_after_the_header_timeout() {
    let (_h, addr, _stop, _server) = start(short_limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let (_, after) = read_until_closed(&mut s).await;
    println!("half-sent head closed after {after:?}");
    assert!(after < Duration::from_secs(3), "{after:?}");
}

#[tokio::test]
async fn a_slow_body_gets_408() {
    let (_h, addr, _stop, _server) = start(short_limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"chan"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (answer, after) = read_until_closed(&mut s).await;
    println!("slow body answered after {after:?}: {}", answer.lines().next().unwrap_or_default());
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    // A long header timeout, so that the idle timer is what closes it.
    let limits = Limits { header_read_timeout: Duration::from_secs(60), ..short_limits() };
    let (h, addr, _stop, _server) = start(limits).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (answer, after) = read_until_closed(&mut s).await;
    println!("idle connection closed {after:?} after its request");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let metrics = h.request(http::Method::GET, "/metrics", &[], "").await.1;
    assert!(metrics.contains("chatgate_connections_idle_closed_total 1"), "{metrics}");
}

#[tokio::test]
async fn shutdown_answers_long_polls_at_once_and_ends_within_the_grace() {
    let limits = Limits {
        header_read_timeout: Duration::from_secs(60),
        body_read_timeout: Duration::from_secs(60),
        ..short_limits()
    };
    let (_h, addr, stop, server) = start(limits).await;
    // A request stuck in a handler (its body never comes) and an open long-poll.
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 500\r\n\r\n{{"
    );
    stuck.write_all(head.as_bytes()).await.unwrap();
    let mut poll = TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET /v1/events?after=0&wait=60 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    poll.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    stop.send(()).unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(2), poll.read(&mut buf)).await.unwrap().unwrap();
    let answered = started.elapsed();
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
    let ended = started.elapsed();
    println!("long-poll answered {answered:?} after the signal; serve returned after {ended:?} (grace 1 s)");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answered < Duration::from_millis(500), "{answered:?}");
    assert!(ended < Duration::from_secs(2), "{ended:?}");
}
