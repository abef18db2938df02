//! aiobs-http against a real loopback server: what goes on the wire, and how
//! every kind of answer and transport failure is classified.

use std::time::Duration;

use aiobs_conformance::http::{ScriptedHttpServer, ScriptedResponse};
use aiobs_core::ErrorClass;
use aiobs_http::{
    Auth, BatchResults, Compression, HttpClientConfig, HttpTransport, ItemAnswers, ItemError,
    SendError, send_split,
};
use serde_json::{Value, json};

fn transport() -> HttpTransport {
    let client = HttpClientConfig::new("test")
        .timeout(Duration::from_secs(5))
        .env_proxy(false)
        .build()
        .unwrap();
    HttpTransport::new(client)
        .with_auth(Auth::bearer("tok-123"))
        .unwrap()
}

fn class_of(r: Result<aiobs_http::HttpReply, SendError>) -> (ErrorClass, String) {
    match r {
        Ok(reply) => panic!("expected a failure, got HTTP {}", reply.status),
        Err(e) => (e.class(), e.to_string()),
    }
}

#[tokio::test]
async fn posts_gzip_json_with_auth_and_user_agent() {
    let server = ScriptedHttpServer::start().unwrap();
    let body = json!({"items": [{"id": "a"}, {"id": "b"}]}).to_string();
    let reply = transport()
        .with_header("x-extra", "1")
        .unwrap()
        .post(
            &server.url_for("/v1/spans"),
            "application/json",
            body.as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), Some(json!({})));
    let req = server.last_request().unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/spans");
    assert!(req.is_gzip());
    assert!(req.raw_body.len() < body.len() + 30);
    assert_eq!(req.decode_error, None);
    assert_eq!(req.text(), body);
    assert_eq!(req.header("authorization"), Some("Bearer tok-123"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("x-extra"), Some("1"));
    let ua = req.header("user-agent").unwrap();
    assert!(ua.starts_with("aiobs-test/"), "{ua}");
}

#[tokio::test]
async fn uncompressed_and_basic_auth() {
    let server = ScriptedHttpServer::start().unwrap();
    let t = HttpTransport::new(HttpClientConfig::new("t").build().unwrap())
        .with_auth(Auth::basic("pk", "sk"))
        .unwrap()
        .with_compression(Compression::None);
    t.post(&server.url_for("/x"), "text/plain", "hello")
        .await
        .unwrap();
    let req = server.last_request().unwrap();
    assert!(!req.is_gzip());
    assert_eq!(&req.raw_body[..], b"hello");
    assert_eq!(req.header("authorization"), Some("Basic cGs6c2s="));
}

#[tokio::test]
async fn throttling_with_retry_after_seconds_and_date() {
    let server = ScriptedHttpServer::start().unwrap();
    server.push(ScriptedResponse::service_unavailable(Some(
        Duration::from_secs(1),
    )));
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(20));
    server.push(ScriptedResponse::text(429, "slow").with_header("retry-after", date));
    server.push(ScriptedResponse::too_many_requests(None));
    let t = transport();
    let url = server.url_for("/v1/spans");
    let (c, msg) = class_of(t.post(&url, "application/json", "{}").await);
    assert_eq!(
        c,
        ErrorClass::Throttled(Some(Duration::from_secs(1))),
        "{msg}"
    );
    assert!(msg.contains("503"), "{msg}");
    match class_of(t.post(&url, "application/json", "{}").await).0 {
        ErrorClass::Throttled(Some(d)) => assert!(
            d > Duration::from_secs(17) && d <= Duration::from_secs(20),
            "{d:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        class_of(t.post(&url, "application/json", "{}").await).0,
        ErrorClass::Throttled(None)
    );
}

#[tokio::test]
async fn statuses_classified() {
    let server = ScriptedHttpServer::start().unwrap();
    let cases = [
        (ScriptedResponse::server_error(), ErrorClass::Transient),
        (
            ScriptedResponse::text(502, "bad gateway"),
            ErrorClass::Transient,
        ),
        (
            ScriptedResponse::text(504, "gateway timeout"),
            ErrorClass::Transient,
        ),
        (ScriptedResponse::bad_request(), ErrorClass::Permanent),
        (
            ScriptedResponse::text(404, "no such route"),
            ErrorClass::Permanent,
        ),
        (ScriptedResponse::text(422, "schema"), ErrorClass::Permanent),
        (ScriptedResponse::unauthorized(), ErrorClass::Disabled),
        (
            ScriptedResponse::text(403, "forbidden"),
            ErrorClass::Disabled,
        ),
    ];
    let t = transport();
    for (resp, want) in cases {
        let status = resp.status();
        server.push(resp);
        let (got, msg) = class_of(
            t.post(&server.url_for("/v1/logs"), "application/json", "{}")
                .await,
        );
        assert_eq!(got, want, "status {status:?}: {msg}");
        assert!(msg.contains("/v1/logs"), "{msg}");
    }
    server.push(ScriptedResponse::payload_too_large());
    let err = t
        .post(&server.url_for("/v1/logs"), "application/json", "{}")
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::TooLarge(_)), "{err}");
    // A 207 is a 2xx: the caller reads the per-item results.
    server.push(ScriptedResponse::multi_status(
        &json!({"errors": [{"id": "b", "status": 400, "message": "bad"}]}),
    ));
    let reply = t
        .post(&server.url_for("/v1/logs"), "application/json", "{}")
        .await
        .unwrap();
    assert_eq!(reply.status, 207);
}

#[tokio::test]
async fn connection_reset_is_transient() {
    let server = ScriptedHttpServer::start().unwrap();
    server.push(ScriptedResponse::reset());
    let (c, msg) = class_of(
        transport()
            .post(&server.url_for("/v1/spans"), "application/json", "{}")
            .await,
    );
    assert_eq!(c, ErrorClass::Transient, "{msg}");
}

#[tokio::test]
async fn timeout_is_transient() {
    let server = ScriptedHttpServer::start().unwrap();
    server.push(ScriptedResponse::hang());
    let client = HttpClientConfig::new("t")
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let (c, msg) = class_of(
        HttpTransport::new(client)
            .post(&server.url_for("/"), "application/json", "{}")
            .await,
    );
    assert_eq!(c, ErrorClass::Transient, "{msg}");
    assert!(msg.contains("timed out"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn refused_connection_is_transient() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: nothing listens there now
    let (c, msg) = class_of(
        transport()
            .post(
                &format!("http://127.0.0.1:{port}/v1/spans"),
                "application/json",
                "{}",
            )
            .await,
    );
    assert_eq!(c, ErrorClass::Transient, "{msg}");
    assert!(msg.contains("refused"), "{msg}");
}

#[tokio::test]
async fn dns_failure_is_transient_and_named() {
    // `.invalid` never resolves (RFC 2606).
    let (c, msg) = class_of(
        transport()
            .post(
                "http://ingest.aiobs-test.invalid/v1/spans",
                "application/json",
                "{}",
            )
            .await,
    );
    assert_eq!(c, ErrorClass::Transient, "{msg}");
    assert!(
        msg.contains("DNS lookup of ingest.aiobs-test.invalid failed"),
        "{msg}"
    );
}

#[tokio::test]
async fn tls_failure_is_permanent_and_named() {
    // Speaking TLS to a plain-HTTP server fails the handshake.
    let server = ScriptedHttpServer::start().unwrap();
    let url = format!("https://{}/v1/spans", server.addr());
    let (c, msg) = class_of(transport().post(&url, "application/json", "{}").await);
    assert_eq!(c, ErrorClass::Permanent, "{msg}");
    assert!(msg.contains("TLS handshake with 127.0.0.1 failed"), "{msg}");
}

#[tokio::test]
async fn invalid_url_is_permanent() {
    let (c, msg) = class_of(
        transport()
            .post("not a url", "application/json", "{}")
            .await,
    );
    assert_eq!(c, ErrorClass::Permanent, "{msg}");
}

/// A destination that answers 413 to requests with more than 3 items, and
/// always to item "big"; the helper halves until everything fits.
#[tokio::test]
async fn split_on_413_against_a_real_server() {
    let server = ScriptedHttpServer::start().unwrap();
    server.respond_with(|req| {
        let items: Vec<Value> = req.json::<Vec<Value>>().unwrap_or_default();
        if items.len() > 3 || items.iter().any(|i| i == "big") {
            ScriptedResponse::payload_too_large()
        } else {
            ScriptedResponse::ok()
        }
    });
    let items: Vec<String> = (0..10)
        .map(|i| {
            if i == 6 {
                "big".to_owned()
            } else {
                format!("item-{i}")
            }
        })
        .collect();
    let t = transport();
    let url = server.url_for("/v1/items");
    let indices: Vec<usize> = (0..items.len()).collect();
    let mut results = BatchResults::new();
    send_split(&indices, &mut results, |part| {
        let body =
            serde_json::to_vec(&part.iter().map(|&i| &items[i]).collect::<Vec<_>>()).unwrap();
        let (t, url) = (t.clone(), url.clone());
        async move {
            t.post(&url, "application/json", body).await?;
            Ok(Vec::new())
        }
    })
    .await;
    assert_eq!(results.delivered_count(), 9);
    let outcome = results.into_outcome().unwrap();
    assert_eq!(outcome.rejected.len(), 1);
    assert_eq!(outcome.rejected[0].index, 6);
    assert_eq!(outcome.rejected[0].class, ErrorClass::Permanent);
    // Every item but "big" was acknowledged exactly once.
    let mut acked: Vec<String> = server
        .acknowledged_requests()
        .iter()
        .flat_map(|r| r.json::<Vec<String>>().unwrap())
        .collect();
    acked.sort();
    let mut want: Vec<String> = items.iter().filter(|i| *i != "big").cloned().collect();
    want.sort();
    assert_eq!(acked, want);
}

#[tokio::test]
async fn multi_status_answers_refuse_the_named_items() {
    let server = ScriptedHttpServer::start().unwrap();
    server.push(ScriptedResponse::multi_status(&json!({
        "successes": [{"id": "a", "status": 201}],
        "errors": [{"id": "b", "status": 400, "message": "invalid"}, {"id": "c", "status": 500, "message": "later"}]
    })));
    let reply = transport()
        .post(&server.url_for("/ingest"), "application/json", "[]")
        .await
        .unwrap();
    let body = reply.json().unwrap();
    let errors = body["errors"].as_array().unwrap().iter().map(|e| {
        ItemError::new(
            e["id"].as_str().unwrap(),
            e["status"].as_u64().unwrap() as u16,
            e["message"].as_str().unwrap(),
        )
    });
    let r = ItemAnswers::Refused(errors.collect())
        .resolve([(0, "a"), (1, "b"), (2, "c")])
        .unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].index, r[0].class), (1, ErrorClass::Permanent));
    assert_eq!((r[1].index, r[1].class), (2, ErrorClass::Transient));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = ScriptedHttpServer::start().unwrap();
    server.push(
        ScriptedResponse::new(302).with_header("location", "https://elsewhere.example/v1/spans"),
    );
    let (c, msg) = class_of(
        transport()
            .post(&server.url_for("/v1/spans"), "application/json", "{}")
            .await,
    );
    assert_eq!(c, ErrorClass::Permanent, "{msg}");
    assert!(
        msg.contains("302") && msg.contains("https://elsewhere.example/v1/spans"),
        "{msg}"
    );
    assert_eq!(
        server.request_count(),
        1,
        "no second request to the redirect target"
    );
}
