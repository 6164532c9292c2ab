//! The admin server against hostile clients, over real TCP to the real server: tokens
//! that are missing, wrong or in the wrong scheme, bodies and request heads too large, a
//! client that never finishes its request.

use super::*;
use crate::config::{Config, Sources};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "admin-token-under-test";
/// Longer than [`CLIENT_REQUEST_TIMEOUT`]: a test waits this long for the server to
/// answer and close before it calls the connection held.
const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn tokens_compare_whole() {
    assert!(same_token(b"abc", b"abc"));
    assert!(!same_token(b"abc", b"abd"));
    assert!(!same_token(b"abc", b"abcd"));
    assert!(!same_token(b"", b"a"));
}

/// The admin server with [`TOKEN`] on a free loopback port.
fn start() -> (std::net::SocketAddr, actix_web::dev::ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = listener.local_addr().expect("bound");
    let config = Config::load(&Sources {
        environment: false,
        ..Sources::default()
    })
    .expect("the default configuration loads");
    let state = AdminState::new(
        Observed::new("admin-test".into()),
        Readiness::new(config),
        Some(Secret::new(TOKEN)),
        None,
    );
    let server = serve(listener, state, false).expect("the server starts");
    let handle = server.handle();
    tokio::spawn(server);
    (address, handle)
}

/// What the server answered to `request` (sent as is), read until it closes or resets
/// the connection: the status code (`None` when it closed without a word) and the
/// whole answer.
async fn exchange(address: std::net::SocketAddr, request: &[u8]) -> (Option<u16>, String) {
    let mut stream = TcpStream::connect(address).await.expect("connects");
    // A server that refuses a request before reading all of it closes the connection,
    // and the kernel resets it: writing the rest fails, and the reset can discard the
    // answer before it is read.
    let cut = |error: &std::io::Error| {
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        )
    };
    if let Err(error) = stream.write_all(request).await {
        assert!(cut(&error), "sending the request: {error}");
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("the server held the connection for {PATIENCE:?}"));
    if let Err(error) = read {
        assert!(cut(&error), "reading the answer: {error}");
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    (status, answer)
}

/// The first answer to `request`, read up to the end of its body (by its
/// content-length), without waiting for the server to close the connection.
async fn first_answer(address: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.expect("connects");
    stream.write_all(request).await.expect("request sent");
    let mut answer = Vec::new();
    let complete = |answer: &[u8]| {
        let text = String::from_utf8_lossy(answer);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let length = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|n| n.trim().parse::<usize>().unwrap_or(0))
            })
            .unwrap_or(0);
        body.len() >= length
    };
    tokio::time::timeout(PATIENCE, async {
        let mut chunk = [0u8; 4096];
        while !complete(&answer) {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed before a whole answer: {answer:?}");
            answer.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no whole answer within {PATIENCE:?}"));
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(path: &str, headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n{headers}\r\n").into_bytes()
}

#[tokio::test]
async fn a_missing_wrong_or_misplaced_token_gets_401_and_the_right_one_200() {
    let (address, server) = start();
    let almost = &TOKEN[..TOKEN.len() - 1];
    let refused = [
        get("/api/status", ""),
        get("/api/status", "Authorization: Bearer wrong\r\n"),
        get(
            "/api/status",
            &format!("Authorization: Bearer {almost}\r\n"),
        ),
        get(
            "/api/status",
            &format!("Authorization: Bearer {TOKEN}x\r\n"),
        ),
        get("/api/status", &format!("Authorization: Basic {TOKEN}\r\n")),
        get("/api/status", &format!("Authorization: {TOKEN}\r\n")),
        get("/metrics?token=wrong", ""),
        get("/?token=", ""),
    ];
    for request in refused {
        let (status, answer) = exchange(address, &request).await;
        let sent = String::from_utf8_lossy(&request);
        assert_eq!(status, Some(401), "{sent} got {answer}");
        assert!(
            answer.contains("WWW-Authenticate: Bearer")
                || answer.contains("www-authenticate: Bearer"),
            "{sent} got {answer}"
        );
        assert!(answer.contains("admin token required"), "{answer}");
        assert!(
            !answer.contains(TOKEN),
            "the answer echoes the token: {answer}"
        );
    }
    let admitted = [
        get("/api/status", &format!("Authorization: Bearer {TOKEN}\r\n")),
        get(&format!("/api/status?token={TOKEN}"), ""),
        // Probes stay open to orchestrators without credentials.
        get("/healthz", ""),
    ];
    for request in admitted {
        let (status, answer) = exchange(address, &request).await;
        assert_eq!(
            status,
            Some(200),
            "{} got {answer}",
            String::from_utf8_lossy(&request)
        );
    }
    server.stop(false).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_it_is_read() {
    let (address, server) = start();
    // A gigabyte announced and never sent: the answer comes at once, token or not, and
    // the connection is closed rather than drained.
    for auth in [String::new(), format!("Authorization: Bearer {TOKEN}\r\n")] {
        let request = format!(
            "POST /api/status HTTP/1.1\r\nHost: admin\r\n{auth}Content-Length: 1073741824\r\n\r\n"
        );
        let (status, answer) = exchange(address, request.as_bytes()).await;
        assert_eq!(status, Some(413), "{answer}");
        assert!(
            answer.contains(&format!("at most {MAX_BODY_BYTES} bytes")),
            "{answer}"
        );
    }
    // A chunked body has no announced length: it could go on for ever.
    let request = format!(
        "POST /api/status HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n"
    );
    let answer = first_answer(address, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("no announced length"), "{answer}");
    // At the limit a body is accepted (and ignored: no route reads one).
    let body = "x".repeat(usize::try_from(MAX_BODY_BYTES).expect("small"));
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, answer) = exchange(address, request.as_bytes()).await;
    assert_eq!(status, Some(200), "{answer}");
    server.stop(false).await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_cut_off() {
    let (address, server) = start();
    // The head's final empty line never comes (a slow-loris client). The server waits
    // for it (a slow client is not refused at once), then cuts the client off.
    let started = std::time::Instant::now();
    let (status, answer) = exchange(address, b"GET /healthz HTTP/1.1\r\nHost: admin\r\n").await;
    assert!(
        status.is_none() || status == Some(408),
        "expected 408 or a closed connection, got {answer}"
    );
    assert!(
        started.elapsed() >= CLIENT_REQUEST_TIMEOUT / 2,
        "cut off after {:?}",
        started.elapsed()
    );
    // And the server still serves everyone else.
    let (status, answer) = exchange(address, &get("/healthz", "")).await;
    assert_eq!(status, Some(200), "{answer}");
    server.stop(false).await;
}

#[tokio::test]
async fn a_request_head_over_the_limits_is_refused() {
    let (address, server) = start();
    let filler = "a".repeat(200 * 1024);
    let (status, answer) = exchange(
        address,
        &get("/healthz", &format!("X-Filler: {filler}\r\n")),
    )
    .await;
    // 431, unless the reset of the connection (the server stops reading at 128 KiB)
    // overtook it.
    assert!(
        matches!(status, Some(431) | None),
        "{}",
        answer.lines().next().unwrap_or("")
    );
    let many: String = (0..200).map(|n| format!("X-Header-{n}: {n}\r\n")).collect();
    let (status, answer) = exchange(address, &get("/healthz", &many)).await;
    // The server stops reading at the 97th header: a reset can overtake this 431 too.
    assert!(
        matches!(status, Some(431) | None),
        "{}",
        answer.lines().next().unwrap_or("")
    );
    let (status, answer) = exchange(address, &get("/healthz", "")).await;
    assert_eq!(status, Some(200), "{answer}");
    server.stop(false).await;
}
