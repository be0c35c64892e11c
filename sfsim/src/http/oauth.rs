//! `/services/oauth2/authorize`, `/services/oauth2/token`,
//! `/services/oauth2/revoke` and the identity URL.

use super::errors::{json, ApiError};
use crate::auth::{response_signature, GrantContext, CLIENT_ID, DEFAULT_SCOPE, KNOWN_SCOPES};
use crate::orgs::Orgs;
use crate::sim::Sim;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::collections::HashMap;
use std::sync::Arc;

fn form(bytes: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

pub async fn token(
    Extension(sim): Extension<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let (org_id, admin_user_id, logins) = {
        let org = sim.org.read();
        let logins: HashMap<String, String> = org
            .logins
            .iter()
            .map(|l| (l.username.clone(), l.user_id.clone()))
            .collect();
        (org.org_id.clone(), org.admin_user_id.clone(), logins)
    };
    let ctx = GrantContext {
        now: sim.clock.now(),
        lifetime: sim.token_lifetime(),
        org_id: &org_id,
        own_url: &sim.config.base_url,
        logins: &logins,
        admin_user_id: &admin_user_id,
    };
    let issued = sim
        .auth
        .lock()
        .grant(&fields, basic_credentials(&headers), &ctx);
    match issued {
        Ok(issued) => {
            let id_url = format!("{}/id/{}/{}", sim.config.base_url, org_id, issued.user_id);
            let issued_at = issued.issued_at.timestamp_millis().to_string();
            let mut body = serde_json::json!({
                "access_token": issued.access_token,
                "instance_url": sim.config.base_url,
                "id": id_url,
                "token_type": "Bearer",
                "issued_at": issued_at,
                "signature": response_signature(&id_url, &issued_at),
            });
            if let Some(scope) = issued.scope {
                body["scope"] = scope.into();
            }
            if let Some(refresh) = issued.refresh_token {
                body["refresh_token"] = refresh.into();
            }
            json(StatusCode::OK, &body)
        }
        Err(e) => json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": e.error, "error_description": e.description}),
        ),
    }
}

pub async fn revoke(
    Extension(sim): Extension<Arc<Sim>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let mut fields = form(&body);
    fields.extend(form(query.unwrap_or_default().as_bytes()));
    let revoked = fields
        .get("token")
        .is_some_and(|t| sim.auth.lock().revoke(t));
    if revoked {
        StatusCode::OK.into_response()
    } else {
        json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "unsupported_token_type", "error_description": "this token type is not supported"}),
        )
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("OAuth "))
        .map(str::trim)
}

pub async fn identity(
    Extension(sim): Extension<Arc<Sim>>,
    Path((org_id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let now = sim.clock.now();
    if bearer(&headers)
        .and_then(|t| sim.auth.lock().user_of(t, now).map(str::to_string))
        .is_none()
    {
        return ApiError::invalid_session().into_response();
    }
    let org = sim.org.read();
    let Some((_, user)) = org.record_by_id(&user_id).filter(|_| org_id == org.org_id) else {
        return ApiError::not_found().into_response();
    };
    let def = org.def(org.object("User").expect("the org has users"));
    let text = |name: &str| {
        def.field_index(name)
            .and_then(|i| user.get(i).as_str().map(str::to_string))
    };
    let base = &sim.config.base_url;
    let version = format!("{}.0", crate::sim::NEWEST_API_VERSION);
    json(
        StatusCode::OK,
        &serde_json::json!({
            "id": format!("{base}/id/{org_id}/{}", user.id()),
            "asserted_user": true,
            "user_id": user.id(),
            "organization_id": org_id,
            "username": text("Username"),
            "display_name": org.read(def, user, def.field_index("Name").expect("users have names")).as_str(),
            "email": text("Email"),
            "active": true,
            "user_type": "STANDARD",
            "urls": {
                "rest": format!("{base}/services/data/v{version}/"),
                "sobjects": format!("{base}/services/data/v{version}/sobjects/"),
                "query": format!("{base}/services/data/v{version}/query/"),
                "limits": format!("{base}/services/data/v{version}/limits/"),
            }
        }),
    )
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(
        status,
        &serde_json::json!({"error": error, "error_description": description}),
    )
}

/// `redirect_uri` with `params` added to its query, as the authorize
/// endpoint sends the browser back.
pub fn callback(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{separator}{}", query.finish())
}

/// A callback URL the connected app accepts: any absolute http or https URL
/// without a fragment (sfsim's connected app lists no callback URLs).
fn acceptable_callback(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.fragment().is_none()
    })
}

/// A PKCE S256 challenge: base64url without padding of 32 bytes.
fn well_formed_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `GET /services/oauth2/authorize`: the start of the web-server flow. The
/// answer stands for Salesforce's login and approval page; the customer's
/// answer comes through the control API (`POST /__sim/oauth/approve`),
/// which picks the org by the username it logs in as.
pub async fn authorize(State(orgs): State<Arc<Orgs>>, RawQuery(query): RawQuery) -> Response {
    let params: HashMap<String, String> = form(query.unwrap_or_default().as_bytes());
    let param = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if param("client_id") != Some(CLIENT_ID) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_id",
            "client identifier invalid",
        );
    }
    let Some(redirect_uri) = param("redirect_uri").filter(|u| acceptable_callback(u)) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        );
    };
    // The approval names the request by its state; a request without one
    // waits under the empty state.
    let state = param("state").unwrap_or("");
    // From here on, errors go back to the app's callback, as Salesforce sends them.
    let refuse = |error: &str, description: &str| {
        let mut params = vec![("error", error), ("error_description", description)];
        if !state.is_empty() {
            params.push(("state", state));
        }
        let location = callback(redirect_uri, &params);
        (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
    };
    if param("response_type") != Some("code") {
        return refuse("unsupported_response_type", "response type not supported");
    }
    let challenge = param("code_challenge");
    if let Some(challenge) = challenge {
        if param("code_challenge_method").is_some_and(|m| m != "S256") {
            return refuse("invalid_request", "code_challenge_method must be S256");
        }
        if !well_formed_challenge(challenge) {
            return refuse("invalid_request", "invalid code_challenge");
        }
    }
    let scope = param("scope")
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_SCOPE.to_string());
    if scope.split(' ').any(|s| !KNOWN_SCOPES.contains(&s)) {
        return refuse("invalid_scope", "the requested scope is not allowed");
    }
    orgs.remember(
        redirect_uri.to_string(),
        scope.clone(),
        challenge.map(str::to_string),
        state.to_string(),
    );
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Login | sfsim</title></head>\n\
         <body><h1>sfsim</h1><p>Log in and allow access for <b>{CLIENT_ID}</b> (scope: {scope}).</p>\n\
         <p>This page stands for Salesforce's login and approval pages. Approve with\n\
         <code>POST /__sim/oauth/approve {{\"state\": \"{state}\", \"username\": \"admin@sfsim.example\"}}</code>\n\
         or decline with <code>{{\"state\": \"{state}\", \"deny\": true}}</code>.</p></body></html>\n",
        scope = escape(&scope),
        state = escape(state),
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
        page,
    )
        .into_response()
}
