//! [`ScriptedHttpServer`]: a loopback HTTP server that answers from a script
//! and records every request. It is the one fake allowed for remote vendors:
//! exporter tests point the real exporter at [`ScriptedHttpServer::url`].
//!
//! ```
//! use std::time::Duration;
//! use aiobs_conformance::http::{ScriptedHttpServer, ScriptedResponse};
//!
//! let server = ScriptedHttpServer::start()?;
//! // First request: 503 with Retry-After; second: connection reset; then the default 200 `{}`.
//! server.push(ScriptedResponse::service_unavailable(Some(Duration::from_secs(1))));
//! server.push(ScriptedResponse::reset());
//! // Requests to this path get their own plan first.
//! server.route("/api/public/ingestion").push(ScriptedResponse::bad_request());
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(server.request_count(), 0);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Answers are chosen in this order: the request path's queue, the path's
//! responder, the global queue, the global responder, then `200 {}`.

mod request;
mod response;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot, watch};

pub use request::CapturedRequest;
use response::Action;
pub use response::{Answer, ScriptedResponse};

/// Builds the answer to a request from the request itself, e.g. a 207 that
/// rejects some of the items the request carried.
pub type Responder = Arc<dyn Fn(&CapturedRequest) -> ScriptedResponse + Send + Sync>;

/// One plan: responses used once each, in order, then a responder for every
/// later request.
#[derive(Default, Clone)]
struct Plan {
    queue: VecDeque<ScriptedResponse>,
    responder: Option<Responder>,
}

#[derive(Default)]
struct Plans {
    global: Plan,
    by_path: HashMap<String, Plan>,
}

impl Plans {
    fn plan_mut(&mut self, path: Option<&str>) -> &mut Plan {
        match path {
            None => &mut self.global,
            Some(p) => self.by_path.entry(p.to_owned()).or_default(),
        }
    }

    /// Takes the next queued response, or the responder that should build one.
    fn next(&mut self, path: &str) -> Result<ScriptedResponse, Option<Responder>> {
        if let Some(plan) = self.by_path.get_mut(path) {
            if let Some(r) = plan.queue.pop_front() {
                return Ok(r);
            }
            if let Some(f) = &plan.responder {
                return Err(Some(f.clone()));
            }
        }
        if let Some(r) = self.global.queue.pop_front() {
            return Ok(r);
        }
        Err(self.global.responder.clone())
    }
}

struct State {
    plans: Mutex<Plans>,
    /// The next request's sequence number, taken when it has been read.
    next_seq: AtomicUsize,
    requests: Mutex<Vec<CapturedRequest>>,
    /// How many requests arrived so far (for `wait_for_requests`).
    arrived: watch::Sender<usize>,
}

impl State {
    fn plans(&self) -> MutexGuard<'_, Plans> {
        // A panicking responder must not make the whole server unusable.
        self.plans.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn requests(&self) -> MutexGuard<'_, Vec<CapturedRequest>> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A scripted HTTP/1.1 server on `127.0.0.1:<random port>`.
///
/// It runs on its own thread with its own tokio runtime, so it works from
/// synchronous tests and from any async runtime, and keeps answering while the
/// test thread blocks (e.g. in `flush_blocking`). Dropping it stops the
/// thread, which cancels every connection, hung ones included.
///
/// Every request is read completely and captured ([`CapturedRequest`]),
/// whatever the answer. See the [module docs](self) for the answer order.
pub struct ScriptedHttpServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ScriptedHttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedHttpServer")
            .field("addr", &self.addr)
            .field("requests", &self.request_count())
            .finish_non_exhaustive()
    }
}

impl ScriptedHttpServer {
    /// Binds `127.0.0.1:0` and starts serving. Until something is scripted,
    /// every request is answered `200` with the JSON body `{}`.
    pub fn start() -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let state = Arc::new(State {
            plans: Mutex::default(),
            next_seq: AtomicUsize::new(0),
            requests: Mutex::default(),
            arrived: watch::Sender::new(0),
        });
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("scripted-http-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            tokio::select! {
                                _stopped = stop_rx => {}
                                () = accept_loop(listener, served) => {}
                            }
                        }
                        Err(e) => eprintln!("scripted http server could not listen: {e}"),
                    }
                });
                // Dropping the runtime here cancels every connection task,
                // including requests scripted to hang.
                drop(runtime);
            })?;
        Ok(Self {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The base URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL joined with `path` (which should start with `/`).
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a response for the next request (any path without its own plan).
    pub fn push(&self, response: ScriptedResponse) -> &Self {
        self.state.plans().global.queue.push_back(response);
        self
    }

    /// Queues the same response for the next `n` requests.
    pub fn push_n(&self, n: usize, response: ScriptedResponse) -> &Self {
        let mut plans = self.state.plans();
        plans.global.queue.extend(std::iter::repeat_n(response, n));
        self
    }

    /// Answers every request that finds no queued response with `response`
    /// (instead of `200 {}`).
    pub fn set_default(&self, response: ScriptedResponse) -> &Self {
        self.respond_with(move |_| response.clone())
    }

    /// Builds the answer to every request that finds no queued response.
    pub fn respond_with(
        &self,
        responder: impl Fn(&CapturedRequest) -> ScriptedResponse + Send + Sync + 'static,
    ) -> &Self {
        self.state.plans().global.responder = Some(Arc::new(responder));
        self
    }

    /// The plan for requests to exactly this path (query excluded). Requests
    /// to it use this plan first and fall back to the global one.
    pub fn route(&self, path: impl Into<String>) -> RoutePlan<'_> {
        RoutePlan {
            server: self,
            path: path.into(),
        }
    }

    /// Forgets every queued response and responder (global and per path):
    /// the server answers `200 {}` again. Captured requests are kept.
    pub fn clear_plan(&self) {
        *self.state.plans() = Plans::default();
    }

    /// How many queued responses are still unused (global and per path).
    pub fn queued(&self) -> usize {
        let plans = self.state.plans();
        plans.global.queue.len() + plans.by_path.values().map(|p| p.queue.len()).sum::<usize>()
    }

    /// Every request received so far, in arrival order (by [`CapturedRequest::seq`]).
    pub fn requests(&self) -> Vec<CapturedRequest> {
        self.state.requests().clone()
    }

    /// The requests to this path.
    pub fn requests_to(&self, path: &str) -> Vec<CapturedRequest> {
        self.state
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The requests answered with a 2xx status.
    pub fn acknowledged_requests(&self) -> Vec<CapturedRequest> {
        self.state
            .requests()
            .iter()
            .filter(|r| r.was_acknowledged())
            .cloned()
            .collect()
    }

    /// The most recent request.
    pub fn last_request(&self) -> Option<CapturedRequest> {
        self.state.requests().last().cloned()
    }

    /// How many requests were received (resets and hangs included).
    pub fn request_count(&self) -> usize {
        *self.state.arrived.borrow()
    }

    /// Forgets the captured requests (the count restarts at 0).
    pub fn clear_requests(&self) {
        let mut r = self.state.requests();
        r.clear();
        self.state.next_seq.store(0, Ordering::Release);
        self.state.arrived.send_replace(0);
    }

    /// Waits until at least `n` requests were received, up to `timeout`.
    /// Returns whether they were. Works from any async runtime.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.state.arrived.subscribe();
        let reached = rx.wait_for(|count| *count >= n);
        matches!(tokio::time::timeout(timeout, reached).await, Ok(Ok(_)))
    }

    /// [`ScriptedHttpServer::wait_for_requests`] for synchronous code.
    pub fn wait_for_requests_blocking(&self, n: usize, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.request_count() >= n {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for ScriptedHttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _thread_may_be_gone = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _joined = thread.join();
        }
    }
}

/// The plan of one path, from [`ScriptedHttpServer::route`].
#[derive(Debug)]
pub struct RoutePlan<'a> {
    server: &'a ScriptedHttpServer,
    path: String,
}

impl RoutePlan<'_> {
    /// Queues a response for the next request to this path.
    pub fn push(&self, response: ScriptedResponse) -> &Self {
        self.server
            .state
            .plans()
            .plan_mut(Some(&self.path))
            .queue
            .push_back(response);
        self
    }

    /// Queues the same response for the next `n` requests to this path.
    pub fn push_n(&self, n: usize, response: ScriptedResponse) -> &Self {
        self.server
            .state
            .plans()
            .plan_mut(Some(&self.path))
            .queue
            .extend(std::iter::repeat_n(response, n));
        self
    }

    /// Answers requests to this path that find no queued response with `response`.
    pub fn set_default(&self, response: ScriptedResponse) -> &Self {
        self.respond_with(move |_| response.clone())
    }

    /// Builds the answer to requests to this path that find no queued response.
    pub fn respond_with(
        &self,
        responder: impl Fn(&CapturedRequest) -> ScriptedResponse + Send + Sync + 'static,
    ) -> &Self {
        self.server
            .state
            .plans()
            .plan_mut(Some(&self.path))
            .responder = Some(Arc::new(responder));
        self
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(serve_connection(stream, state.clone()));
            }
            // Out of file descriptors and the like: back off rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Serves one connection until the client closes it, or a handler asks for a reset.
async fn serve_connection(stream: TcpStream, state: Arc<State>) {
    // Keep a duplicate of the socket to set SO_LINGER=0 on it before an
    // abrupt close: closing then sends RST instead of FIN.
    let (stream, socket) = match duplicate(stream) {
        Ok(pair) => pair,
        Err(_) => return,
    };
    let reset = Arc::new(Notify::new());
    let handler_reset = reset.clone();
    let service = service_fn(move |req| handle(req, state.clone(), handler_reset.clone()));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _closed = connection => {}
        () = reset.notified() => {
            let _rst_or_fin = socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO));
        }
    }
}

fn duplicate(stream: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std_stream = stream.into_std()?;
    let copy = std_stream.try_clone()?;
    Ok((TcpStream::from_std(std_stream)?, copy))
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
    reset: Arc<Notify>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    // A client that gave up mid-body still counts as a request received.
    let raw_body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut captured = CapturedRequest::new(
        state.next_seq.fetch_add(1, Ordering::AcqRel),
        parts.method.as_str().to_owned(),
        parts.uri.path().to_owned(),
        parts.uri.query().map(str::to_owned),
        headers,
        raw_body,
    );
    let next = state.plans().next(&captured.path);
    // Responders run outside the lock: they may take their time or panic.
    let response = match next {
        Ok(r) => r,
        Err(Some(responder)) => responder(&captured),
        Err(None) => ScriptedResponse::ok(),
    };
    captured.answer = response.answer();
    {
        let mut requests = state.requests();
        // Concurrent requests may finish out of order: keep them by sequence number.
        let at = requests.partition_point(|r| r.seq < captured.seq);
        requests.insert(at, captured);
        state.arrived.send_replace(requests.len());
    }
    if !response.delay.is_zero() {
        tokio::time::sleep(response.delay).await;
    }
    match response.action {
        Action::Reply {
            status,
            headers,
            body,
        } => Ok(build_reply(status, &headers, body)),
        Action::Reset => {
            reset.notify_one();
            std::future::pending().await
        }
        Action::Hang => std::future::pending().await,
    }
}

fn build_reply(status: u16, headers: &[(String, String)], body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::try_from(name.as_str()),
            hyper::header::HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    response
}
