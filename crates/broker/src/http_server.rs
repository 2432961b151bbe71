//! The HTTP listener (`http.listener`): `GET /metrics` answers the broker's metrics in
//! Prometheus' text format ([`crate::stats::render`]); `GET /` is the web console's page and
//! `GET /api/overview` its data ([`crate::console`]). Started by
//! the server before storage opens, so a bad address stops the node at once; until the broker
//! serves clients the page has the events and process metrics only, and a broker state of 0.
//!
//! Connections are bounded ([`MAX_CONNECTIONS`]; more are closed at once) and a client that
//! does not send its request headers in time is dropped, so a scraper cannot hold the broker's
//! memory or file descriptors.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

use crate::stats::Source;

/// HTTP connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one console overview answers the requests that follow it.
const OVERVIEW_REUSE: Duration = Duration::from_secs(1);
/// How often the recorder's summaries drop samples older than their window, when nobody
/// scrapes (rendering does it too).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Binds `addr` (a clear error when it cannot) and logs where `/metrics` is served.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (http.listener): {e}"))?;
    let bound = listener.local_addr()?;
    info!("metrics served on http://{bound}/metrics");
    Ok(listener)
}

/// Serves HTTP on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    source: Arc<Source>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut upkeep = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            _ = upkeep.tick() => {
                handle.run_upkeep();
                crate::stats::sample_runtime();
                crate::stats::sample_raft(&source);
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "http.listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            debug!(%peer, "http.listener: too many connections; closing");
            continue;
        };
        let (handle, source, mut shutdown) =
            (handle.clone(), Arc::clone(&source), shutdown.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (handle, source) = (handle.clone(), Arc::clone(&source));
                async move { Ok::<_, Infallible>(respond(&req, &handle, &source).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        debug!(%peer, error = %e, "http.listener: connection ended");
                    }
                }
                _ = shutdown.changed() => {}
            }
            drop(permit);
        });
    }
}

/// The answer to one request.
async fn respond<B>(
    req: &Request<B>,
    handle: &PrometheusHandle,
    source: &Source,
) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::stats::render(handle, source).await,
        ),
        (&Method::GET, "/") => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            crate::console::PAGE.to_string(),
        ),
        (&Method::GET, "/api/overview") => match source.broker.get() {
            Some(broker) => {
                let mut cached = source.overview.lock().await;
                let body = match &*cached {
                    Some((at, body)) if at.elapsed() < OVERVIEW_REUSE => Arc::clone(body),
                    _ => {
                        let body = Arc::new(crate::console::overview(broker).await.to_string());
                        *cached = Some((std::time::Instant::now(), Arc::clone(&body)));
                        body
                    }
                };
                (StatusCode::OK, "application/json", body.to_string())
            }
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                "application/json",
                serde_json::json!({
                    "node_id": source.node_id,
                    "error": if source.broker_role {
                        "this broker is starting"
                    } else {
                        "a controller-only node has no broker to ask; open a broker's console"
                    },
                })
                .to_string(),
            ),
        },
        (&Method::GET, _) => (StatusCode::NOT_FOUND, TEXT, "not found\n".to_string()),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "only GET is served\n".to_string(),
        ),
    };
    // Prometheus asks for gzip; a page of a thousand partitions shrinks about twentyfold.
    let gzip = status == StatusCode::OK
        && content_type.starts_with("text/plain")
        && req
            .headers()
            .get_all(hyper::header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let zipped = if gzip { gzipped(body.as_bytes()) } else { None };
    let compressed = zipped.is_some();
    let mut response = Response::new(Full::new(match zipped {
        Some(z) => Bytes::from(z),
        None => Bytes::from(body),
    }));
    *response.status_mut() = status;
    if compressed {
        response.headers_mut().insert(
            hyper::header::CONTENT_ENCODING,
            hyper::header::HeaderValue::from_static("gzip"),
        );
    }
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

/// `body` gzipped at the fastest level; `None` if compression failed (then sent as it is).
fn gzipped(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut z = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    z.write_all(body).ok()?;
    z.finish().ok()
}
