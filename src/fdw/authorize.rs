//! Customers connect their own org: the OAuth 2.0 web-server flow with
//! PKCE. `authorize_url` gives the URL to send the customer to, keeping the
//! state and the code verifier here, for ten minutes and one use;
//! `complete_authorization` exchanges the code Salesforce sends back and
//! stores the refresh token in the caller's user mapping on the server,
//! which must say `grant_type 'refresh_token'` and the connected app's
//! `client_id` (and `client_secret`, if the app has one).

use crate::access;
use crate::catalog;
use crate::connection;
use crate::error::{remember_secrets, Error, OrRaise};
use pgrx::pg_sys::Oid;
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, Spi};
use salesforce_core::client::auth::Grant;
use salesforce_core::client::oauth;

/// How long an authorization may wait for the customer's approval.
const LIFETIME_MINUTES: i64 = 10;

/// The client id and secret of the caller's refresh_token mapping.
fn connected_app(server: Oid, role: Oid) -> (String, Option<String>) {
    let (mapping, _) = catalog::user_mapping(server, role).or_raise();
    match mapping.grant {
        Grant::RefreshToken {
            client_id,
            client_secret,
            ..
        } => (client_id, client_secret),
        _ => Error::sql(
            PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
            format!(
                "the user mapping of role {} on server {} does not say grant_type 'refresh_token'",
                access::role_name(role),
                catalog::server_name(server)
            ),
        )
        .with_hint("CREATE USER MAPPING ... OPTIONS (grant_type 'refresh_token', client_id '...'): the refresh token comes from complete_authorization.")
        .raise(),
    }
}

/// The URL to send the customer to, to approve access to their org.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn authorize_url(
    server: &str,
    redirect_uri: &str,
    scopes: default!(Option<Vec<String>>, "NULL"),
) -> String {
    let server_oid = catalog::server_oid(server).or_raise();
    let role = access::current_role();
    access::check_server_use(server_oid, role).or_raise();
    let (client_id, _) = connected_app(server_oid, role);
    let (options, _) = catalog::server_options(server_oid).or_raise();
    let scopes = scopes.unwrap_or_else(|| vec!["api".into(), "refresh_token".into()]);
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let pending = oauth::authorize_url(&options.login_url, &client_id, redirect_uri, &scopes)
        .map_err(Error::from)
        .or_raise();
    remember_secrets([pending.verifier.clone()]);
    access::as_extension(|| {
        Spi::run("DELETE FROM salesforce.authorizations WHERE expires_at < now()")?;
        Spi::run_with_args(
            "INSERT INTO salesforce.authorizations (state, server, role, verifier, redirect_uri, expires_at) VALUES ($1, $2, $3, $4, $5, now() + make_interval(mins => $6))",
            &[
                pending.state.clone().into(),
                server.into(),
                role.into(),
                pending.verifier.clone().into(),
                redirect_uri.into(),
                (LIFETIME_MINUTES as i32).into(),
            ],
        )
        .map_err(Error::from)
    })
    .or_raise();
    pending.url
}

/// The code Salesforce sent to the redirect URI, exchanged for tokens; the
/// refresh token goes into the caller's user mapping, and appears in no
/// output. The state works once.
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn complete_authorization(state: &str, code: &str) -> String {
    let role = access::current_role();
    type Pending = (String, Oid, String, String, bool);
    let pending: Option<Pending> = access::as_extension(|| {
        Spi::connect_mut(|client| {
            let mut rows = client.update(
                "DELETE FROM salesforce.authorizations WHERE state = $1 RETURNING server::text, role, verifier, redirect_uri, expires_at >= now()",
                None,
                &[state.into()],
            )?;
            Ok(match rows.next() {
                None => None,
                Some(r) => Some((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<Oid>(2)?.unwrap_or(Oid::INVALID),
                    r.get::<String>(3)?.unwrap_or_default(),
                    r.get::<String>(4)?.unwrap_or_default(),
                    r.get::<bool>(5)?.unwrap_or(false),
                )),
            })
        })
        .map_err(|e: pgrx::spi::SpiError| Error::from(e))
    })
    .or_raise();
    let Some((server, owner, verifier, redirect_uri, fresh)) = pending else {
        Error::sql(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "unknown authorization state: it was used already, or never given",
        )
        .with_hint("Start again with salesforce.authorize_url(server, redirect_uri).")
        .raise()
    };
    remember_secrets([verifier.clone()]);
    if owner != role {
        access::check_manages(role, owner, "this authorization").or_raise();
    }
    if !fresh {
        Error::sql(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("the authorization expired: the customer had {LIFETIME_MINUTES} minutes to approve it"),
        )
        .with_hint("Start again with salesforce.authorize_url(server, redirect_uri).")
        .raise()
    }
    let server_oid = catalog::server_oid(&server).or_raise();
    access::check_server_use(server_oid, owner).or_raise();
    let (client_id, client_secret) = connected_app(server_oid, owner);
    let (options, _) = catalog::server_options(server_oid).or_raise();
    let token = oauth::exchange_code(
        &options.login_url,
        &client_id,
        client_secret.as_deref(),
        &redirect_uri,
        code,
        &verifier,
        options.request_timeout,
        connection::interrupted,
    )
    .map_err(Error::from)
    .or_raise();
    remember_secrets([token.access_token.clone()]);
    let Some(refresh_token) = token.refresh_token else {
        Error::sql(
            PgSqlErrorCode::ERRCODE_FDW_ERROR,
            "Salesforce gave no refresh token",
        )
        .with_hint("Give the connected app the refresh_token scope (and ask for it in authorize_url's scopes).")
        .raise()
    };
    connection::store_refresh_token(server_oid, owner, &refresh_token).or_raise();
    server
}
