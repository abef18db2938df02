//! The scripted server as a client sees it: plans, captures, faults, shutdown.

use std::io::Write;
use std::time::{Duration, Instant};

use aiobs_conformance::http::{Answer, ScriptedHttpServer, ScriptedResponse};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What the test client got back.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}

/// Sends one request on a fresh connection.
async fn send(
    server: &ScriptedHttpServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Reply, String> {
    let stream = TcpStream::connect(server.addr())
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", server.addr().to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(body.into()))
        .map_err(|e| e.to_string())?;
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
    .await;
    conn.abort();
    result
}

async fn post(server: &ScriptedHttpServer, path: &str, body: &str) -> Result<Reply, String> {
    send(server, "POST", path, &[], body.to_owned()).await
}

#[tokio::test]
async fn answers_200_empty_json_when_nothing_is_scripted() {
    let server = ScriptedHttpServer::start().unwrap();
    let reply = post(&server, "/ingest", "hello").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "{}");
    assert_eq!(
        reply.headers.get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn queued_responses_are_used_once_each_in_order_then_the_default() {
    let server = ScriptedHttpServer::start().unwrap();
    server
        .push(ScriptedResponse::service_unavailable(Some(
            Duration::from_millis(1500),
        )))
        .push_n(2, ScriptedResponse::bad_request());
    server.set_default(ScriptedResponse::new(202).with_body("accepted"));

    let r1 = post(&server, "/a", "1").await.unwrap();
    assert_eq!(r1.status, 503);
    // Retry-After is whole seconds, rounded up.
    assert_eq!(r1.headers.get("retry-after").unwrap(), "2");
    assert_eq!(post(&server, "/a", "2").await.unwrap().status, 400);
    assert_eq!(post(&server, "/a", "3").await.unwrap().status, 400);
    let r4 = post(&server, "/a", "4").await.unwrap();
    assert_eq!((r4.status, r4.body.as_str()), (202, "accepted"));
    assert_eq!(server.queued(), 0);

    server.clear_plan();
    assert_eq!(post(&server, "/a", "5").await.unwrap().status, 200);
}

#[tokio::test]
async fn path_plans_come_first_and_fall_back_to_the_global_plan() {
    let server = ScriptedHttpServer::start().unwrap();
    server.push(ScriptedResponse::new(500));
    server
        .route("/special")
        .push(ScriptedResponse::new(418))
        .set_default(ScriptedResponse::new(201));

    assert_eq!(post(&server, "/special", "").await.unwrap().status, 418);
    assert_eq!(post(&server, "/special", "").await.unwrap().status, 201);
    // Another path gets the global queue, then the global default.
    assert_eq!(post(&server, "/other", "").await.unwrap().status, 500);
    assert_eq!(post(&server, "/other", "").await.unwrap().status, 200);
}

#[tokio::test]
async fn a_path_plan_without_responder_falls_back_when_its_queue_is_empty() {
    let server = ScriptedHttpServer::start().unwrap();
    server.route("/x").push(ScriptedResponse::new(409));
    server.push(ScriptedResponse::new(429));
    assert_eq!(post(&server, "/x", "").await.unwrap().status, 409);
    assert_eq!(post(&server, "/x", "").await.unwrap().status, 429);
    assert_eq!(post(&server, "/x", "").await.unwrap().status, 200);
}

#[tokio::test]
async fn a_responder_builds_answers_from_the_request() {
    let server = ScriptedHttpServer::start().unwrap();
    server.respond_with(|req| {
        let items: Vec<serde_json::Value> = req.json().unwrap_or_default();
        let errors: Vec<_> = items
            .iter()
            .filter(|i| i["bad"] == true)
            .map(|i| serde_json::json!({"id": i["id"], "status": 400}))
            .collect();
        ScriptedResponse::multi_status(&serde_json::json!({"errors": errors}))
    });
    let reply = post(
        &server,
        "/batch",
        r#"[{"id":"a"},{"id":"b","bad":true},{"id":"c"}]"#,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 207);
    let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(v["errors"], serde_json::json!([{"id": "b", "status": 400}]));
}

#[tokio::test]
async fn captures_method_path_query_headers_and_body() {
    let server = ScriptedHttpServer::start().unwrap();
    let _reply = send(
        &server,
        "PUT",
        "/api/runs?project=demo&x=1",
        &[
            ("x-api-key", "secret"),
            ("Content-Type", "application/json"),
        ],
        r#"{"k":1}"#,
    )
    .await
    .unwrap();
    let req = server.last_request().unwrap();
    assert_eq!(req.seq, 0);
    assert_eq!(req.method, "PUT");
    assert_eq!(req.path, "/api/runs");
    assert_eq!(req.query.as_deref(), Some("project=demo&x=1"));
    assert_eq!(req.header("X-API-KEY"), Some("secret"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.json::<serde_json::Value>().unwrap(),
        serde_json::json!({"k": 1})
    );
    assert!(!req.is_gzip());
    assert_eq!(
        req.answer,
        Answer::Status {
            status: 200,
            body: Bytes::from_static(b"{}")
        }
    );
    assert!(req.was_acknowledged());
    assert_eq!(server.requests_to("/api/runs").len(), 1);
    assert_eq!(server.requests_to("/elsewhere").len(), 0);
}

#[tokio::test]
async fn gzip_bodies_are_decompressed_and_the_raw_bytes_kept() {
    let server = ScriptedHttpServer::start().unwrap();
    let json = br#"{"batch":[1,2,3]}"#;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(json).unwrap();
    let gz = enc.finish().unwrap();
    let _reply = send(
        &server,
        "POST",
        "/gz",
        &[("content-encoding", "gzip")],
        gz.clone(),
    )
    .await
    .unwrap();
    let req = server.last_request().unwrap();
    assert!(req.is_gzip());
    assert_eq!(&req.body[..], json);
    assert_eq!(&req.raw_body[..], &gz[..]);
    assert!(req.decode_error.is_none());

    // A body that claims gzip but is not: kept raw, with the reason.
    let _reply = send(
        &server,
        "POST",
        "/gz",
        &[("content-encoding", "gzip")],
        "plain",
    )
    .await
    .unwrap();
    let bad = server.last_request().unwrap();
    assert_eq!(&bad.body[..], b"plain");
    assert!(bad.decode_error.is_some());
}

#[tokio::test]
async fn reset_closes_the_connection_without_an_answer() {
    let server = ScriptedHttpServer::start().unwrap();
    server.push(ScriptedResponse::reset());
    let err = post(&server, "/r", "payload").await.unwrap_err();
    assert!(!err.is_empty());
    // The request was still read and captured.
    let req = server.last_request().unwrap();
    assert_eq!(&req.body[..], b"payload");
    assert_eq!(req.answer, Answer::Reset);
    assert!(!req.was_acknowledged());
    // The next request gets the default again.
    assert_eq!(post(&server, "/r", "").await.unwrap().status, 200);
}

#[tokio::test]
async fn reset_is_seen_as_a_connection_error_by_a_raw_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = ScriptedHttpServer::start().unwrap();
    server.push(ScriptedResponse::reset());
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(b"POST /r HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap();
    // RST: the read fails with a connection reset, not a clean EOF.
    let err = read.expect_err("expected a connection reset, got a clean close");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(buf.is_empty(), "expected no answer, got {buf:?}");
}

#[tokio::test]
async fn delay_holds_the_answer() {
    let server = ScriptedHttpServer::start().unwrap();
    server.push(ScriptedResponse::ok().with_delay(Duration::from_millis(300)));
    let started = Instant::now();
    let reply = post(&server, "/slow", "").await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn hang_never_answers_and_ends_when_the_server_is_dropped() {
    let server = ScriptedHttpServer::start().unwrap();
    server.push(ScriptedResponse::hang());
    let addr = server.addr();
    let pending = tokio::spawn({
        let stream = TcpStream::connect(addr).await.unwrap();
        async move {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = Request::post("/hang")
                .header("host", addr.to_string())
                .body(Full::new(Bytes::from_static(b"x")))
                .unwrap();
            sender.send_request(req).await.map(|r| r.status().as_u16())
        }
    });
    assert!(server.wait_for_requests(1, Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !pending.is_finished(),
        "a hung request must not be answered"
    );
    assert_eq!(server.last_request().unwrap().answer, Answer::Hang);

    let dropped_at = Instant::now();
    drop(server);
    // Dropping returns promptly and closes the hung connection: the client sees an error.
    assert!(dropped_at.elapsed() < Duration::from_secs(2));
    let outcome = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("the hung request must end when the server is dropped")
        .unwrap();
    assert!(outcome.is_err(), "{outcome:?}");
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn counts_waits_and_clears() {
    let server = ScriptedHttpServer::start().unwrap();
    assert!(!server.wait_for_requests(1, Duration::from_millis(50)).await);
    for i in 0..5 {
        let _reply = post(&server, "/n", &i.to_string()).await.unwrap();
    }
    assert_eq!(server.request_count(), 5);
    assert!(server.wait_for_requests(5, Duration::from_millis(50)).await);
    let seqs: Vec<usize> = server.requests().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
    server.clear_requests();
    assert_eq!(server.request_count(), 0);
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn acknowledged_requests_exclude_errors_resets_and_hangs() {
    let server = ScriptedHttpServer::start().unwrap();
    server
        .push(ScriptedResponse::server_error())
        .push(ScriptedResponse::reset())
        .push(ScriptedResponse::multi_status(&serde_json::json!({})));
    let _reply = post(&server, "/a", "1").await;
    let _reply = post(&server, "/a", "2").await;
    let _reply = post(&server, "/a", "3").await;
    let _reply = post(&server, "/a", "4").await;
    let acked: Vec<String> = server
        .acknowledged_requests()
        .iter()
        .map(|r| r.text())
        .collect();
    assert_eq!(acked, vec!["3", "4"]);
}

#[test]
fn works_from_synchronous_code_and_many_servers_coexist() {
    let servers: Vec<_> = (0..8)
        .map(|_| ScriptedHttpServer::start().unwrap())
        .collect();
    let mut ports: Vec<u16> = servers.iter().map(|s| s.addr().port()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 8);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reply = rt.block_on(post(&servers[3], "/sync", "")).unwrap();
    assert_eq!(reply.status, 200);
    assert!(servers[3].wait_for_requests_blocking(1, Duration::from_secs(1)));
    assert_eq!(
        servers[3].url(),
        format!("http://127.0.0.1:{}", ports_of(&servers[3]))
    );
    assert_eq!(
        servers[3].url_for("/x"),
        format!("http://127.0.0.1:{}/x", ports_of(&servers[3]))
    );
}

fn ports_of(s: &ScriptedHttpServer) -> u16 {
    s.addr().port()
}
