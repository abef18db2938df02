//! What every response carries, and which `Host` names are answered.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, HOST, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The Content-Security-Policy of every response: scripts, styles and
/// requests only from the viewer itself, no inline script or style, no
/// plugins, frames or forms elsewhere, and Trusted Types with no policy, so
/// that assigning a string to `innerHTML` (or any other HTML sink) throws in
/// the page instead of parsing span data as markup.
pub(crate) const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// Which `Host` headers the viewer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostPolicy {
    /// Bound to loopback: only loopback names (`localhost`, `*.localhost`,
    /// `127.x.y.z`, `[::1]`). A web page whose own name resolves to
    /// 127.0.0.1 (DNS rebinding) is refused, so it cannot read the traces.
    Loopback,
    /// Bound elsewhere with `--allow-remote`: any name.
    Any,
}

impl HostPolicy {
    fn allows(self, headers: &HeaderMap) -> bool {
        if self == Self::Any {
            return true;
        }
        let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
            // HTTP/1.0 without Host: no browser sends that.
            return !headers.contains_key(HOST);
        };
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.rsplit_once(':').map_or(host, |(n, _port)| n),
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name == "localhost"
            || name.ends_with(".localhost")
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// Refuses unexpected `Host` names, then sets the security headers (and
/// `Cache-Control: no-store` where the handler set no caching).
pub(crate) async fn secure(
    State(hosts): State<Arc<HostPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = if hosts.allows(request.headers()) {
        next.run(request).await
    } else {
        (
            StatusCode::FORBIDDEN,
            "This aiobs viewer answers only to loopback names (localhost, 127.0.0.1, [::1]); \
             start it with --addr and --allow-remote to serve other names.\n",
        )
            .into_response()
    };
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, CONTENT_SECURITY_POLICY, POLICY);
    set(h, X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, X_FRAME_OPTIONS, "DENY");
    set(h, REFERRER_POLICY, "no-referrer");
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    if !h.contains_key(CACHE_CONTROL) {
        set(h, CACHE_CONTROL, "no-store");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn loopback_policy_answers_loopback_names_only() {
        for ok in [
            "localhost",
            "localhost:7878",
            "LOCALHOST.:1",
            "viewer.localhost:80",
            "127.0.0.1:7878",
            "127.1.2.3",
            "[::1]:7878",
        ] {
            assert!(HostPolicy::Loopback.allows(&host(ok)), "{ok}");
        }
        for bad in [
            "evil.example:7878",
            "localhost.evil.example",
            "10.0.0.1:7878",
            "[2001:db8::1]:7878",
            "",
        ] {
            assert!(!HostPolicy::Loopback.allows(&host(bad)), "{bad}");
            assert!(HostPolicy::Any.allows(&host(bad)), "{bad}");
        }
        assert!(HostPolicy::Loopback.allows(&HeaderMap::new()));
    }
}
