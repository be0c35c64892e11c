//! `/services/oauth2/token`, `/services/oauth2/revoke` and the identity URL.

use super::errors::{json, ApiError};
use crate::auth::{response_signature, GrantContext};
use crate::sim::Sim;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
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

pub async fn token(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
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
    State(sim): State<Arc<Sim>>,
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
    State(sim): State<Arc<Sim>>,
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
