//! The HTTP surface: the login endpoints, the data API, and the `/__sim/`
//! control API, on one address, over plain HTTP or TLS. Each request is
//! served by one org (see `crate::orgs` for which): the handlers find its
//! `Sim` in the request's extensions.

mod bulk;
mod cdc;
mod collections;
mod composite;
mod control;
mod data;
mod errors;
mod events;
mod ingest;
mod multipart;
mod oauth;
mod tooling;

use crate::orgs::Orgs;
use crate::request_log::LoggedRequest;
use crate::sim::Sim;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use base64::Engine;
use errors::ApiError;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// URI plus headers may take this many bytes; past it 431, or 414 for the URI alone.
pub const MAX_REQUEST_HEAD_BYTES: usize = 16_384;
/// Data API bodies axum reads; Bulk ingest uploads are refused in
/// Salesforce's terms below this (see `bulk::ingest::MAX_UPLOAD_BASE64_BYTES`).
const MAX_DATA_BODY_BYTES: usize = 256 << 20;
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

pub fn router(orgs: Arc<Orgs>) -> Router {
    Router::new()
        .route("/services/oauth2/authorize", get(oauth::authorize))
        .route("/services/oauth2/token", post(oauth::token))
        .route(
            "/services/oauth2/revoke",
            post(oauth::revoke).get(oauth::revoke),
        )
        .route("/services/data", get(data::versions))
        .route("/services/data/", get(data::versions))
        .route(
            "/services/data/{*rest}",
            any(data::dispatch).layer(axum::extract::DefaultBodyLimit::max(MAX_DATA_BODY_BYTES)),
        )
        .route("/id/{org}/{user}", get(oauth::identity))
        .route("/__sim/{*rest}", any(control::dispatch))
        .fallback(|| async { ApiError::not_found() })
        .layer(axum::middleware::from_fn_with_state(
            orgs.clone(),
            serve_org,
        ))
        .with_state(orgs)
}

/// The subject of a JWT bearer assertion, read without checking the
/// signature: only to route the request, the org checks the assertion.
fn jwt_subject(assertion: &str) -> Option<String> {
    let claims = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["sub"].as_str().map(str::to_string)
}

/// Which org a request is for (None: the first), and the request again
/// (a token or revoke request's body is read to route it).
async fn route(orgs: &Orgs, req: Request) -> (Request, Option<usize>) {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .and_then(|h| orgs.by_host(h));
    let path = req.uri().path();
    let is_token = path == "/services/oauth2/token";
    if !is_token && path != "/services/oauth2/revoke" {
        let by_token = oauth::bearer(req.headers()).and_then(|t| orgs.by_access_token(t));
        return (req, by_token.or(host));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut form: HashMap<String, String> =
        url::form_urlencoded::parse(&bytes).into_owned().collect();
    let field = |form: &HashMap<String, String>, k: &str| form.get(k).cloned().unwrap_or_default();
    let number = if is_token {
        match field(&form, "grant_type").as_str() {
            "password" => orgs.by_username(&field(&form, "username")),
            "refresh_token" => orgs.by_refresh_token(&field(&form, "refresh_token")),
            "authorization_code" => orgs.by_code(&field(&form, "code")),
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => host.or_else(|| {
                jwt_subject(&field(&form, "assertion")).and_then(|sub| orgs.by_username(&sub))
            }),
            _ => host,
        }
    } else {
        form.extend(
            url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
                .into_owned(),
        );
        let token = field(&form, "token");
        orgs.by_access_token(&token)
            .or_else(|| orgs.by_refresh_token(&token))
            .or(host)
    };
    (Request::from_parts(parts, Body::from(bytes)), number)
}

/// Serves a request as its org: held while the org hangs, logged in the
/// org's log, its answer delayed by the org's delay. The control API is
/// served at once, whatever the faults.
async fn serve_org(State(orgs): State<Arc<Orgs>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/__sim/") {
        return next.run(req).await;
    }
    let (mut req, number) = route(&orgs, req).await;
    let sim = orgs.or_first(number).clone();
    sim.stall.wait_while_hung().await;
    req.extensions_mut().insert(sim.clone());
    let response = log_requests(&sim, req, next).await;
    sim.stall.delay().await;
    response
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

async fn log_requests(sim: &Sim, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
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
    orgs: Arc<Orgs>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut outage = orgs.outage.subscribe();
    let app = router(orgs);
    tokio::pin!(shutdown);
    let Ok(address) = listener.local_addr() else {
        return;
    };
    let mut listener = listener;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(_) => continue,
            },
            changed = outage.changed() => {
                let until = *outage.borrow_and_update();
                match (changed, until) {
                    (Ok(()), Some(until)) if until > std::time::Instant::now() => {
                        // Down: the port refuses connections until it ends.
                        drop(listener);
                        tokio::select! {
                            _ = tokio::time::sleep_until(until.into()) => {}
                            _ = &mut shutdown => return,
                        }
                        listener = loop {
                            match TcpListener::bind(address).await {
                                Ok(l) => break l,
                                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                            }
                        };
                    }
                    (Err(_), _) => return,
                    _ => {}
                }
                continue;
            }
            _ = &mut shutdown => return,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let tls = tls.clone();
        let mut cut = outage.clone();
        tokio::spawn(async move {
            let builder = hyper::server::conn::http1::Builder::new();
            let serve = async {
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
            };
            // An outage cuts the connections open, as a server going down does.
            tokio::select! {
                _ = serve => {}
                _ = cut.changed() => {}
            }
        });
    }
}
