//! OAuth 2.0 through the `oauth2` crate: the web-server flow with PKCE
//! (the authorization URL, then the code's exchange for tokens), the token
//! requests of the password, refresh_token and client_credentials grants.
//!
//! The crate builds the requests (the authorization URL, PKCE S256, the CSRF
//! state, each grant's form) and reads successful token answers. They travel
//! through this client's own HTTP layer (`http::send`): the same timeouts,
//! retries with backoff, interruptible waits and error answers as every
//! other call, so a refused login reads `SalesforceError::Login` whichever
//! grant made it.

use super::auth::Token;
use super::error::SalesforceError;
use super::http::{self, Interrupted};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ErrorResponse, ExtraTokenFields, HttpRequest, HttpResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// What Salesforce's token answer carries besides RFC 6749's fields
/// (`issued_at` and `signature` are not used).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SalesforceFields {
    pub instance_url: String,
    /// The identity URL, `https://login.salesforce.com/id/<org id>/<user id>`.
    #[serde(default)]
    pub id: Option<String>,
}

impl ExtraTokenFields for SalesforceFields {}

/// A successful answer of `/services/oauth2/token`, whatever the grant.
pub type TokenAnswer = StandardTokenResponse<SalesforceFields, BasicTokenType>;

/// An `oauth2` client for Salesforce's endpoints; only the token endpoint is
/// always set.
type OAuthClient<HasAuthUrl = EndpointNotSet> = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    HasAuthUrl,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn endpoint(login_url: &str, name: &str) -> String {
    format!("{}/services/oauth2/{name}", login_url.trim_end_matches('/'))
}

fn not_a_url(what: &str, value: &str) -> SalesforceError {
    SalesforceError::Config(format!("{what} \"{value}\" is not a URL"))
}

/// A client for the token endpoint under `login_url`. Client credentials go
/// in the form body, as Salesforce documents for every grant.
pub(super) fn client(
    login_url: &str,
    client_id: &str,
    client_secret: Option<&str>,
) -> Result<OAuthClient, SalesforceError> {
    let token_url = TokenUrl::new(endpoint(login_url, "token"))
        .map_err(|_| not_a_url("the login_url", login_url))?;
    let client = oauth2::Client::new(ClientId::new(client_id.to_string()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(token_url);
    Ok(match client_secret {
        Some(secret) => client.set_client_secret(ClientSecret::new(secret.to_string())),
        None => client,
    })
}

/// A failure of this client's HTTP layer, carried through the crate.
#[derive(Debug)]
pub(super) struct Failed(SalesforceError);

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Failed {}

/// The crate's HTTP client: the request it built, sent by `http::send` (so
/// retried and interruptible like every other call). Error answers come
/// back as this client's errors, a refused login as `SalesforceError::Login`.
pub(super) fn transport(
    client: &reqwest::Client,
    interrupted: Interrupted,
) -> impl Fn(HttpRequest) -> Result<HttpResponse, Failed> + '_ {
    move |request: HttpRequest| {
        let url = request.uri().to_string();
        let answer = http::send(
            || {
                client
                    .request(request.method().clone(), &url)
                    .headers(request.headers().clone())
                    .body(request.body().clone())
            },
            interrupted,
        )
        .map_err(Failed)?;
        let mut response = oauth2::http::Response::builder().status(200);
        if let Some(headers) = response.headers_mut() {
            *headers = answer.headers;
        }
        response
            .body(answer.body)
            .map_err(|e| Failed(SalesforceError::BadResponse(format!("token response: {e}"))))
    }
}

/// This client's error for a failed token request.
pub(super) fn token_error<TE>(e: RequestTokenError<Failed, TE>) -> SalesforceError
where
    TE: ErrorResponse + OAuthErrorText + 'static,
{
    match e {
        RequestTokenError::Request(Failed(e)) => e,
        RequestTokenError::ServerResponse(answer) => {
            let (error, description) = answer.text();
            SalesforceError::Login { error, description }
        }
        RequestTokenError::Parse(e, _body) => {
            SalesforceError::BadResponse(format!("token response: {e}"))
        }
        RequestTokenError::Other(m) => SalesforceError::BadResponse(format!("token response: {m}")),
    }
}

/// An OAuth error answer's `error` and `error_description`.
pub(super) trait OAuthErrorText {
    fn text(&self) -> (String, String);
}

impl<T: oauth2::ErrorResponseType + AsRef<str>> OAuthErrorText
    for oauth2::StandardErrorResponse<T>
{
    fn text(&self) -> (String, String) {
        (
            self.error().as_ref().to_string(),
            self.error_description().cloned().unwrap_or_default(),
        )
    }
}

/// The org's id, from the identity URL of a token answer: the Pub/Sub
/// API's `tenantid`.
fn org_of_identity(id_url: &str) -> Option<String> {
    let mut parts = id_url.rsplit('/');
    let _user = parts.next()?;
    let org = parts.next()?;
    (org.starts_with("00D") && parts.next() == Some("id")).then(|| org.to_string())
}

/// The token a successful answer carries; `instance_url`, when the server
/// names one, stands for the answer's.
pub(super) fn token_of(answer: &TokenAnswer, instance_url: Option<&str>) -> Token {
    let fields = answer.extra_fields();
    Token {
        access_token: answer.access_token().secret().clone(),
        refresh_token: answer.refresh_token().map(|t| t.secret().clone()),
        org_id: fields.id.as_deref().and_then(org_of_identity),
        instance_url: instance_url
            .unwrap_or(&fields.instance_url)
            .trim_end_matches('/')
            .to_string(),
    }
}

/// A web-server flow under way: send the user to `url`; Salesforce sends
/// them back to the redirect URI with `code` and `state`. Check that the
/// state is this one's, then pass the code and `verifier` to
/// `exchange_code`. The verifier is a secret: keep it on the server.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingAuthorization {
    pub url: String,
    /// The CSRF state the redirect must carry back.
    pub state: String,
    /// The PKCE code verifier whose S256 challenge the URL carries.
    pub verifier: String,
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("url", &self.url)
            .field("state", &self.state)
            .field("verifier", &"********")
            .finish()
    }
}

/// Starts the web-server flow: the URL of `{login_url}/services/oauth2/authorize`
/// with response_type=code, the client id, the redirect URI, the scopes
/// (e.g. `api`, `refresh_token`), a random state and a PKCE S256 challenge.
pub fn authorize_url(
    login_url: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[&str],
) -> Result<PendingAuthorization, SalesforceError> {
    let auth_url = AuthUrl::new(endpoint(login_url, "authorize"))
        .map_err(|_| not_a_url("the login_url", login_url))?;
    let redirect = RedirectUrl::new(redirect_uri.to_string())
        .map_err(|_| not_a_url("the redirect URI", redirect_uri))?;
    let client = client(login_url, client_id, None)?
        .set_auth_uri(auth_url)
        .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes.iter().map(|s| Scope::new(s.to_string())))
        .set_pkce_challenge(challenge)
        .url();
    Ok(PendingAuthorization {
        url: url.into(),
        state: state.into_secret(),
        verifier: verifier.into_secret(),
    })
}

/// Ends the web-server flow: exchanges the code Salesforce sent to the
/// redirect URI (as its query decodes it), with the PKCE verifier, for
/// tokens at `{login_url}/services/oauth2/token`
/// (grant_type=authorization_code). `redirect_uri` is the one the
/// authorization URL named; `client_secret` is needed unless the connected
/// app waives it for PKCE. The token has a refresh token when the scopes
/// granted one (`refresh_token`, `offline_access`).
#[allow(clippy::too_many_arguments)]
pub fn exchange_code(
    login_url: &str,
    client_id: &str,
    client_secret: Option<&str>,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
    timeout: Duration,
    interrupted: Interrupted,
) -> Result<Token, SalesforceError> {
    let redirect = RedirectUrl::new(redirect_uri.to_string())
        .map_err(|_| not_a_url("the redirect URI", redirect_uri))?;
    let oauth = client(login_url, client_id, client_secret)?.set_redirect_uri(redirect);
    let web = http::client(timeout)?;
    let send = transport(&web, interrupted);
    let answer = oauth
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
        .request(&send)
        .map_err(token_error)?;
    Ok(token_of(&answer, None))
}

#[cfg(test)]
mod sfsim_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use sha2::Digest;
    use std::collections::HashMap;

    fn query_of(url: &str) -> HashMap<String, String> {
        url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    #[test]
    fn the_authorize_url_asks_for_a_code_with_pkce_s256_and_a_state() {
        let pending = authorize_url(
            "https://login.salesforce.com/",
            "3MVG9client",
            "https://app.example/callback?x=1",
            &["api", "refresh_token"],
        )
        .unwrap();
        let url = url::Url::parse(&pending.url).unwrap();
        assert_eq!(url.scheme(), "https");
        assert_eq!(url.host_str(), Some("login.salesforce.com"));
        assert_eq!(url.path(), "/services/oauth2/authorize");
        let q = query_of(&pending.url);
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "3MVG9client");
        assert_eq!(q["redirect_uri"], "https://app.example/callback?x=1");
        assert_eq!(q["scope"], "api refresh_token");
        assert_eq!(q["state"], pending.state);
        assert_eq!(q["code_challenge_method"], "S256");
        // RFC 7636: a verifier of 43 to 128 unreserved characters, and a
        // challenge that is the base64url (unpadded) SHA-256 of it.
        assert!((43..=128).contains(&pending.verifier.len()));
        assert!(pending
            .verifier
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c)));
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(pending.verifier.as_bytes()));
        assert_eq!(q["code_challenge"], expected);
        assert!(!q.contains_key("client_secret"));
        assert!(!pending.url.contains(&pending.verifier));
        assert!(!format!("{pending:?}").contains(&pending.verifier));
    }

    #[test]
    fn each_authorization_has_its_own_state_and_verifier() {
        let a = authorize_url(
            "https://x.my.salesforce.com",
            "c",
            "http://localhost/cb",
            &[],
        )
        .unwrap();
        let b = authorize_url(
            "https://x.my.salesforce.com",
            "c",
            "http://localhost/cb",
            &[],
        )
        .unwrap();
        assert!(a.state.len() >= 16);
        assert_ne!(a.state, b.state);
        assert_ne!(a.verifier, b.verifier);
        assert!(!query_of(&a.url).contains_key("scope"));
    }

    #[test]
    fn a_bad_url_is_a_configuration_error() {
        let e = authorize_url("login.salesforce.com", "c", "http://localhost/cb", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the login_url \"login.salesforce.com\" is not a URL"
        );
        let e = authorize_url("https://login.salesforce.com", "c", "/cb", &[]).unwrap_err();
        assert!(matches!(e, SalesforceError::Config(_)), "{e}");
    }

    #[test]
    fn the_org_id_is_read_from_the_identity_url() {
        assert_eq!(
            org_of_identity(
                "https://login.salesforce.com/id/00D5e000000AbCdEAK/0055e000001XyZaAAK"
            )
            .as_deref(),
            Some("00D5e000000AbCdEAK")
        );
        assert_eq!(org_of_identity("https://example.com/id/"), None);
        assert_eq!(org_of_identity("nonsense"), None);
    }

    fn never_interrupted() -> bool {
        false
    }

    /// A server that answers each connection with the next canned response
    /// and hands back the requests it read.
    fn scripted_server(answers: Vec<String>) -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for answer in answers {
                let (mut stream, _) = listener.accept().unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the head, then the body its Content-Length announces.
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break;
                        }
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&request).to_string());
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        (url, rx)
    }

    fn answer(status: &str, body: &str) -> String {
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    }

    fn form_of(request: &str) -> HashMap<String, String> {
        let body = request.split_once("\r\n\r\n").unwrap().1;
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn the_code_is_exchanged_with_its_verifier() {
        let (base, requests) = scripted_server(vec![answer(
            "200 OK",
            r#"{"access_token":"00Dx!AQ","refresh_token":"5Aep.r1","instance_url":"https://acme.my.salesforce.com/","id":"https://login.salesforce.com/id/00D5e000000AbCdEAK/0055e000001XyZaAAK","token_type":"Bearer","issued_at":"1700000000000","signature":"s","scope":"api refresh_token"}"#,
        )]);
        let token = exchange_code(
            &base,
            "3MVG9client",
            Some("shh"),
            "https://app.example/callback",
            "aPrx.code",
            "the-verifier-0123456789-0123456789-0123456789",
            Duration::from_secs(5),
            never_interrupted,
        )
        .unwrap();
        assert_eq!(token.access_token, "00Dx!AQ");
        assert_eq!(token.refresh_token.as_deref(), Some("5Aep.r1"));
        assert_eq!(token.instance_url, "https://acme.my.salesforce.com");
        assert_eq!(token.org_id.as_deref(), Some("00D5e000000AbCdEAK"));
        let request = requests.recv().unwrap();
        assert!(
            request.starts_with("POST /services/oauth2/token "),
            "{request}"
        );
        let form = form_of(&request);
        assert_eq!(form["grant_type"], "authorization_code");
        assert_eq!(form["code"], "aPrx.code");
        assert_eq!(
            form["code_verifier"],
            "the-verifier-0123456789-0123456789-0123456789"
        );
        assert_eq!(form["redirect_uri"], "https://app.example/callback");
        assert_eq!(form["client_id"], "3MVG9client");
        assert_eq!(form["client_secret"], "shh");
    }

    #[test]
    fn salesforce_refusing_the_code_is_a_login_error() {
        let (base, _) = scripted_server(vec![answer(
            "400 Bad Request",
            r#"{"error":"invalid_grant","error_description":"invalid authorization code"}"#,
        )]);
        let e = exchange_code(
            &base,
            "c",
            None,
            "https://app.example/callback",
            "stale",
            "v",
            Duration::from_secs(5),
            never_interrupted,
        )
        .unwrap_err();
        assert_eq!(
            e,
            SalesforceError::Login {
                error: "invalid_grant".into(),
                description: "invalid authorization code".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "Salesforce login failed: invalid_grant: invalid authorization code"
        );
    }

    #[test]
    fn a_cancel_ends_the_wait_for_the_token_endpoint() {
        fn interrupted() -> bool {
            true
        }
        // Connections are taken into the backlog and never answered.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let started = std::time::Instant::now();
        let e = exchange_code(
            &base,
            "c",
            None,
            "https://app.example/callback",
            "code",
            "v",
            Duration::from_secs(30),
            interrupted,
        )
        .unwrap_err();
        assert_eq!(e, SalesforceError::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
    }

    #[test]
    fn an_unavailable_token_endpoint_is_retried_and_a_malformed_answer_is_an_error() {
        let (base, _) = scripted_server(vec![
            answer("503 Service Unavailable", ""),
            answer("200 OK", r#"{"access_token":"a","token_type":"Bearer"}"#),
        ]);
        let e = exchange_code(
            &base,
            "c",
            None,
            "https://app.example/callback",
            "code",
            "v",
            Duration::from_secs(5),
            never_interrupted,
        )
        .unwrap_err();
        assert!(
            matches!(&e, SalesforceError::BadResponse(m) if m.starts_with("token response:") && m.contains("instance_url")),
            "{e:?}"
        );
        assert!(!e.to_string().contains("\"a\""), "{e}");
    }
}
