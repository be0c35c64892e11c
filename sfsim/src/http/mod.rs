//! The HTTP surface: the login endpoints, the data API, and the `/__sim/`
//! control API, on one address, over plain HTTP or TLS.

mod bulk;
mod cdc;
mod collections;
mod composite;
mod control;
mod data;
mod errors;
mod oauth;

use crate::request_log::LoggedRequest;
use crate::sim::Sim;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use errors::ApiError;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// URI plus headers may take this many bytes; past it 431, or 414 for the URI alone.
pub const MAX_REQUEST_HEAD_BYTES: usize = 16_384;
/// Bodies of data API writes kept in the request log.
const LOGGED_BODY_BYTES: usize = 1 << 20;

/// What a data API handler tells the request log about its request.
#[derive(Clone, Default)]
pub struct LogInfo {
    pub counted: bool,
    pub soql: Option<String>,
    pub records: Option<usize>,
    /// A composite call's subrequests, logged after the call itself.
    pub subrequests: Vec<LoggedRequest>,
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(oauth::token))
        .route("/services/oauth2/revoke", post(oauth::revoke))
        .route("/services/data", get(data::versions))
        .route("/services/data/", get(data::versions))
        .route("/services/data/{*rest}", any(data::dispatch))
        .route("/id/{org}/{user}", get(oauth::identity))
        .route("/__sim/{*rest}", any(control::dispatch))
        .fallback(|| async { ApiError::not_found() })
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            log_requests,
        ))
        .with_state(sim)
}

fn head_too_large(req: &Request) -> Option<Response> {
    let uri_len = req.uri().to_string().len();
    if uri_len > MAX_REQUEST_HEAD_BYTES {
        return Some(
            ApiError::new(
                StatusCode::URI_TOO_LONG,
                "URI_TOO_LONG",
                "Request-URI Too Long",
            )
            .into_response(),
        );
    }
    let headers_len: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    (uri_len + headers_len > MAX_REQUEST_HEAD_BYTES).then(|| {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "REQUEST_HEADER_FIELDS_TOO_LARGE",
            "Request Header Fields Too Large",
        )
        .into_response()
    })
}

async fn log_requests(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/__sim/") {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let query = req.uri().query().map(str::to_string);
    let is_data_write = path.starts_with("/services/data/") && method != "GET";
    let (mut response, body) = match head_too_large(&req) {
        Some(r) => (r, None),
        None if is_data_write => {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let logged = (bytes.len() <= LOGGED_BODY_BYTES)
                .then(|| serde_json::from_slice(&bytes).ok())
                .flatten();
            (
                next.run(Request::from_parts(parts, Body::from(bytes)))
                    .await,
                logged,
            )
        }
        None => (next.run(req).await, None),
    };
    let info = response
        .extensions_mut()
        .remove::<LogInfo>()
        .unwrap_or_default();
    let mut log = sim.log.lock();
    let seq = log.push(LoggedRequest {
        seq: 0,
        at: crate::value::format_datetime(&sim.clock.now()),
        method,
        path,
        query,
        soql: info.soql,
        status: response.status().as_u16(),
        counted: info.counted,
        records: info.records,
        body,
        via: None,
        parent_seq: None,
        reference_id: None,
        rpc: None,
    });
    for sub in info.subrequests {
        log.push(LoggedRequest {
            parent_seq: Some(seq),
            ..sub
        });
    }
    drop(log);
    response
}

/// Serves connections until `shutdown` completes.
pub async fn serve(
    sim: Arc<Sim>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let app = router(sim);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(_) => continue,
            },
            _ = &mut shutdown => return,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let builder = hyper::server::conn::http1::Builder::new();
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}
