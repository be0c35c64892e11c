//! The org's connected app, its OAuth grants and the access tokens it issued.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::distr::{Alphanumeric, SampleString};
use sha2::Sha256;
use std::collections::HashMap;

pub const CLIENT_ID: &str = "sfsim-client-id";
pub const CLIENT_SECRET: &str = "sfsim-client-secret";
pub const PASSWORD: &str = "sfsim-password";
pub const SECURITY_TOKEN: &str = "SFSIMTOKEN";
/// A fixed refresh token for the admin user, so tests can use the refresh flow.
pub const DEMO_REFRESH_TOKEN: &str = "5Aep861sfsim.demo.refresh.token";
pub const JWT_PUBLIC_KEY_PEM: &str = include_str!("../fixtures/jwt/public.pem");
pub const JWT_MAX_LIFETIME_SECS: i64 = 180;
/// Login hosts a JWT's `aud` may name, besides the simulator's own URL.
const LOGIN_HOSTS: &[&str] = &[
    "https://login.salesforce.com",
    "https://test.salesforce.com",
];

#[derive(Debug, PartialEq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: &'static str,
}

fn oauth_error(error: &'static str, description: &'static str) -> OAuthError {
    OAuthError { error, description }
}

pub struct Issued {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub user_id: String,
    pub issued_at: DateTime<Utc>,
    pub scope: Option<String>,
}

/// How long an authorization code may be exchanged, on the org's clock.
pub const AUTH_CODE_LIFETIME_SECS: i64 = 15 * 60;
/// Used and expired codes are remembered this long past their expiry, so a
/// second exchange is told the code expired rather than that it is unknown.
const SPENT_CODE_MEMORY_SECS: i64 = 24 * 3600;
/// Scopes the connected app grants when the authorize request names none.
pub const DEFAULT_SCOPE: &str = "api refresh_token";
/// Scopes the connected app may be granted.
pub const KNOWN_SCOPES: &[&str] = &[
    "address",
    "api",
    "cdp_api",
    "chatter_api",
    "content",
    "custom_permissions",
    "email",
    "full",
    "id",
    "lightning",
    "offline_access",
    "openid",
    "pardot_api",
    "phone",
    "profile",
    "refresh_token",
    "visualforce",
    "web",
];

struct AccessToken {
    user_id: String,
    expires_at: DateTime<Utc>,
    /// The refresh token's grant it came from, so revoking that refresh
    /// token ends it too.
    grant: Option<u64>,
}

struct RefreshToken {
    user_id: String,
    scope: String,
    /// One grant per approval; under rotation every refresh token of an
    /// approval shares it.
    grant: u64,
}

struct AuthCode {
    user_id: String,
    redirect_uri: String,
    code_challenge: Option<String>,
    scope: String,
    expires_at: DateTime<Utc>,
    used: bool,
}

/// A customer's approval of the connected app on the authorize page.
pub struct Approval {
    pub user_id: String,
    pub redirect_uri: String,
    /// base64url(SHA-256(verifier)), when the authorize request had one.
    pub code_challenge: Option<String>,
    pub scope: String,
}

/// What a grant needs to know of the org.
pub struct GrantContext<'a> {
    pub now: DateTime<Utc>,
    pub lifetime: Duration,
    pub org_id: &'a str,
    pub own_url: &'a str,
    /// Users the password and JWT grants log in: username to user id.
    pub logins: &'a HashMap<String, String>,
    /// The user client credentials run as.
    pub admin_user_id: &'a str,
}

#[derive(Default)]
pub struct Auth {
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    codes: HashMap<String, AuthCode>,
    /// Whether a refresh answers with a new refresh token and retires the
    /// one it used (the connected app's refresh token rotation).
    pub rotate_refresh_tokens: bool,
    grants: u64,
}

fn random_text(n: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), n)
}

/// A new refresh token. It carries the org id's first 15 characters after
/// Salesforce's usual `5Aep861` prefix, so a server of several orgs can tell
/// whose it is; it is otherwise opaque.
fn new_refresh_token(org_id: &str) -> String {
    format!("5Aep861{}{}", &org_id[..15], random_text(72))
}

/// base64url (no padding) of the SHA-256 of a PKCE code verifier: the
/// S256 code challenge it answers.
pub fn s256_challenge(verifier: &str) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether a scope list asks for a refresh token.
fn grants_refresh(scope: &str) -> bool {
    scope
        .split_whitespace()
        .any(|s| s == "refresh_token" || s == "offline_access")
}

impl Auth {
    pub fn new(admin_user_id: &str) -> Auth {
        Auth::with_refresh_token(admin_user_id, DEMO_REFRESH_TOKEN)
    }

    /// The org's auth, with a fixed refresh token for its admin.
    pub fn with_refresh_token(admin_user_id: &str, refresh_token: &str) -> Auth {
        let mut auth = Auth::default();
        let grant = auth.new_grant();
        auth.refresh.insert(
            refresh_token.into(),
            RefreshToken {
                user_id: admin_user_id.into(),
                scope: DEFAULT_SCOPE.into(),
                grant,
            },
        );
        auth
    }

    fn new_grant(&mut self) -> u64 {
        self.grants += 1;
        self.grants
    }

    /// Hands out an authorization code for an approval: single use, alive
    /// for 15 minutes from `now`. Like refresh tokens, it carries the org
    /// id's first 15 characters after the `aPrx` Salesforce's codes start with.
    pub fn issue_code(&mut self, approval: Approval, org_id: &str, now: DateTime<Utc>) -> String {
        self.codes
            .retain(|_, c| c.expires_at + Duration::seconds(SPENT_CODE_MEMORY_SECS) > now);
        let code = format!("aPrx{}{}", &org_id[..15], random_text(48));
        self.codes.insert(
            code.clone(),
            AuthCode {
                user_id: approval.user_id,
                redirect_uri: approval.redirect_uri,
                code_challenge: approval.code_challenge,
                scope: approval.scope,
                expires_at: now + Duration::seconds(AUTH_CODE_LIFETIME_SECS),
                used: false,
            },
        );
        code
    }

    /// Handles `POST /services/oauth2/token`. `basic` is the client id and
    /// secret from an HTTP Basic header, when one was sent.
    pub fn grant(
        &mut self,
        form: &HashMap<String, String>,
        basic: Option<(String, String)>,
        ctx: &GrantContext,
    ) -> Result<Issued, OAuthError> {
        let field = |k: &str| form.get(k).map(String::as_str);
        let (client_id, client_secret) = match basic {
            Some((id, secret)) => (Some(id), Some(secret)),
            None => (
                field("client_id").map(str::to_string),
                field("client_secret").map(str::to_string),
            ),
        };
        let grant_type = field("grant_type").unwrap_or("");
        let check_client = |require_secret: bool| -> Result<(), OAuthError> {
            if client_id.as_deref() != Some(CLIENT_ID) {
                return Err(oauth_error(
                    "invalid_client_id",
                    "client identifier invalid",
                ));
            }
            match client_secret.as_deref() {
                Some(s) if s != CLIENT_SECRET => {
                    Err(oauth_error("invalid_client", "invalid client credentials"))
                }
                None if require_secret => {
                    Err(oauth_error("invalid_client", "invalid client credentials"))
                }
                _ => Ok(()),
            }
        };
        let (user_id, refresh_token, scope, grant) = match grant_type {
            "password" => {
                check_client(true)?;
                let expected = format!("{PASSWORD}{SECURITY_TOKEN}");
                let user = field("username")
                    .and_then(|u| ctx.logins.get(u))
                    .filter(|_| field("password") == Some(expected.as_str()))
                    .ok_or_else(|| oauth_error("invalid_grant", "authentication failure"))?;
                (user.clone(), None, None, None)
            }
            "refresh_token" => {
                check_client(false)?;
                let old = field("refresh_token").unwrap_or("");
                let stored = self
                    .refresh
                    .get(old)
                    .ok_or_else(|| oauth_error("invalid_grant", "expired access/refresh token"))?;
                let (user, scope, grant) =
                    (stored.user_id.clone(), stored.scope.clone(), stored.grant);
                let rotated = self.rotate_refresh_tokens.then(|| {
                    self.refresh.remove(old);
                    let new = new_refresh_token(ctx.org_id);
                    self.refresh.insert(
                        new.clone(),
                        RefreshToken {
                            user_id: user.clone(),
                            scope: scope.clone(),
                            grant,
                        },
                    );
                    new
                });
                (user, rotated, Some(scope), Some(grant))
            }
            "authorization_code" => {
                check_client(false)?;
                let code = field("code")
                    .and_then(|c| self.codes.get_mut(c))
                    .ok_or_else(|| oauth_error("invalid_grant", "invalid authorization code"))?;
                if code.used || code.expires_at <= ctx.now {
                    return Err(oauth_error("invalid_grant", "expired authorization code"));
                }
                // Without PKCE only the client secret proves who exchanges the code.
                if code.code_challenge.is_none() && client_secret.is_none() {
                    return Err(oauth_error("invalid_client", "invalid client credentials"));
                }
                if field("redirect_uri") != Some(code.redirect_uri.as_str()) {
                    return Err(oauth_error(
                        "invalid_grant",
                        "redirect_uri must match configuration",
                    ));
                }
                if let Some(challenge) = &code.code_challenge {
                    if field("code_verifier").is_none_or(|v| s256_challenge(v) != *challenge) {
                        return Err(oauth_error("invalid_grant", "invalid code verifier"));
                    }
                }
                code.used = true;
                let (user, scope) = (code.user_id.clone(), code.scope.clone());
                let grant = self.new_grant();
                let refresh = grants_refresh(&scope).then(|| {
                    let token = new_refresh_token(ctx.org_id);
                    self.refresh.insert(
                        token.clone(),
                        RefreshToken {
                            user_id: user.clone(),
                            scope: scope.clone(),
                            grant,
                        },
                    );
                    token
                });
                (user, refresh, Some(scope), Some(grant))
            }
            "client_credentials" => {
                check_client(true)?;
                (
                    ctx.admin_user_id.to_string(),
                    None,
                    Some("api".into()),
                    None,
                )
            }
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
                let assertion = field("assertion")
                    .ok_or_else(|| oauth_error("invalid_request", "assertion required"))?;
                (verify_jwt(assertion, ctx)?, None, Some("api".into()), None)
            }
            _ => {
                return Err(oauth_error(
                    "unsupported_grant_type",
                    "grant type not supported",
                ))
            }
        };
        let access_token = format!("{}!{}", &ctx.org_id[..15], random_text(96));
        self.access.insert(
            access_token.clone(),
            AccessToken {
                user_id: user_id.clone(),
                expires_at: ctx.now + ctx.lifetime,
                grant,
            },
        );
        Ok(Issued {
            access_token,
            refresh_token,
            user_id,
            issued_at: ctx.now,
            scope,
        })
    }

    /// The user behind a live access token.
    pub fn user_of(&self, token: &str, now: DateTime<Utc>) -> Option<&str> {
        self.access
            .get(token)
            .filter(|t| t.expires_at > now)
            .map(|t| t.user_id.as_str())
    }

    /// Revokes an access token, or a refresh token and every access token
    /// issued under its grant. Answers whether the token was one.
    pub fn revoke(&mut self, token: &str) -> bool {
        if self.access.remove(token).is_some() {
            return true;
        }
        match self.refresh.remove(token) {
            Some(refresh) => {
                self.access.retain(|_, a| a.grant != Some(refresh.grant));
                true
            }
            None => false,
        }
    }

    /// Ends every access token's life now, as a session timeout does.
    pub fn expire_all(&mut self) {
        self.access.clear();
    }
}

/// `signature` in a token response: HMAC-SHA256 of `id` and `issued_at`, keyed
/// with the client secret.
pub fn response_signature(id_url: &str, issued_at_ms: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).expect("any key length");
    mac.update(id_url.as_bytes());
    mac.update(issued_at_ms.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a JWT bearer assertion and returns the id of the user it names.
fn verify_jwt(assertion: &str, ctx: &GrantContext) -> Result<String, OAuthError> {
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
    let invalid = || oauth_error("invalid_grant", "invalid assertion");
    let key = DecodingKey::from_rsa_pem(JWT_PUBLIC_KEY_PEM.as_bytes())
        .expect("the bundled public key is valid");
    // Claims are checked below against the simulator's clock, which tests can move.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = decode::<serde_json::Value>(assertion, &key, &validation)
        .map_err(|_| invalid())?
        .claims;
    if claims["iss"].as_str() != Some(CLIENT_ID) {
        return Err(oauth_error(
            "invalid_client_id",
            "client identifier invalid",
        ));
    }
    let audience_ok = match &claims["aud"] {
        serde_json::Value::String(a) => {
            a.trim_end_matches('/') == ctx.own_url || LOGIN_HOSTS.contains(&a.trim_end_matches('/'))
        }
        _ => false,
    };
    if !audience_ok {
        return Err(oauth_error("invalid_grant", "audience is invalid"));
    }
    let user = claims["sub"]
        .as_str()
        .and_then(|sub| ctx.logins.get(sub))
        .ok_or_else(|| oauth_error("invalid_grant", "user hasn't approved this consumer"))?;
    let exp = match &claims["exp"] {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(invalid)?;
    let now = ctx.now.timestamp();
    if exp <= now || exp > now + JWT_MAX_LIFETIME_SECS {
        return Err(oauth_error("invalid_grant", "expired authorization code"));
    }
    Ok(user.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logins() -> &'static HashMap<String, String> {
        static LOGINS: std::sync::OnceLock<HashMap<String, String>> = std::sync::OnceLock::new();
        LOGINS.get_or_init(|| {
            HashMap::from([
                ("admin@sfsim.example".into(), "0055g00000000001AAA".into()),
                ("limited@sfsim.example".into(), "0055g00000000002AAA".into()),
            ])
        })
    }

    fn ctx(now: DateTime<Utc>) -> GrantContext<'static> {
        GrantContext {
            now,
            lifetime: Duration::hours(2),
            org_id: "00D5g000004SIMxEAG",
            own_url: "http://127.0.0.1:1",
            logins: logins(),
            admin_user_id: "0055g00000000001AAA",
        }
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn password_grant_needs_password_and_token() {
        let mut auth = Auth::new("0055g00000000001AAA");
        let now = Utc::now();
        let good = form(&[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", "admin@sfsim.example"),
            ("password", "sfsim-passwordSFSIMTOKEN"),
        ]);
        let issued = auth.grant(&good, None, &ctx(now)).unwrap();
        assert!(issued.refresh_token.is_none());
        assert_eq!(
            auth.user_of(&issued.access_token, now),
            Some("0055g00000000001AAA")
        );
        assert_eq!(
            auth.user_of(&issued.access_token, now + Duration::hours(3)),
            None,
            "tokens expire"
        );
        let mut bad = good.clone();
        bad.insert("password".into(), PASSWORD.into());
        assert_eq!(
            auth.grant(&bad, None, &ctx(now)).err().unwrap().error,
            "invalid_grant"
        );
        let mut bad_client = good;
        bad_client.insert("client_id".into(), "nope".into());
        assert_eq!(
            auth.grant(&bad_client, None, &ctx(now))
                .err()
                .unwrap()
                .error,
            "invalid_client_id"
        );
    }

    #[test]
    fn refresh_and_client_credentials() {
        let mut auth = Auth::new("0055g00000000001AAA");
        let now = Utc::now();
        let refreshed = auth.grant(
            &form(&[
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("refresh_token", DEMO_REFRESH_TOKEN),
            ]),
            None,
            &ctx(now),
        );
        assert!(refreshed.is_ok());
        let unknown = auth.grant(
            &form(&[
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("refresh_token", "x"),
            ]),
            None,
            &ctx(now),
        );
        assert_eq!(unknown.err().unwrap().error, "invalid_grant");
        let basic = auth.grant(
            &form(&[("grant_type", "client_credentials")]),
            Some((CLIENT_ID.into(), CLIENT_SECRET.into())),
            &ctx(now),
        );
        assert!(basic.is_ok());
        let wrong = auth.grant(
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", "x"),
            ]),
            None,
            &ctx(now),
        );
        assert_eq!(wrong.err().unwrap().error, "invalid_client");
        assert_eq!(
            auth.grant(&form(&[("grant_type", "implicit")]), None, &ctx(now))
                .err()
                .unwrap()
                .error,
            "unsupported_grant_type"
        );
    }

    #[test]
    fn jwt_bearer_checks_signature_and_claims() {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let key = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/jwt/private.pem")).unwrap();
        let now = Utc::now();
        let sign = |claims: serde_json::Value| {
            encode(&Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).unwrap()
        };
        let mut auth = Auth::new("0055g00000000001AAA");
        let grant = |auth: &mut Auth, jwt: String| {
            auth.grant(
                &form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &jwt),
                ]),
                None,
                &ctx(now),
            )
        };
        let exp = now.timestamp() + 120;
        let good = serde_json::json!({"iss": CLIENT_ID, "sub": "admin@sfsim.example", "aud": "https://login.salesforce.com", "exp": exp});
        assert!(grant(&mut auth, sign(good.clone())).is_ok());
        let mut as_string = good.clone();
        as_string["exp"] = serde_json::json!(exp.to_string());
        assert!(
            grant(&mut auth, sign(as_string)).is_ok(),
            "exp may be a numeric string"
        );
        let mut expired = good.clone();
        expired["exp"] = serde_json::json!(now.timestamp() - 1);
        assert_eq!(
            grant(&mut auth, sign(expired)).err().unwrap().error,
            "invalid_grant"
        );
        let mut far = good.clone();
        far["exp"] = serde_json::json!(now.timestamp() + 3600);
        assert_eq!(
            grant(&mut auth, sign(far)).err().unwrap().error,
            "invalid_grant"
        );
        let mut wrong_aud = good.clone();
        wrong_aud["aud"] = serde_json::json!("https://example.com");
        assert_eq!(
            grant(&mut auth, sign(wrong_aud)).err().unwrap().description,
            "audience is invalid"
        );
        let mut tampered = sign(good);
        tampered.pop();
        assert_eq!(
            grant(&mut auth, tampered).err().unwrap().description,
            "invalid assertion"
        );
    }

    #[test]
    fn password_and_jwt_grants_log_in_each_declared_user() {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let mut auth = Auth::new("0055g00000000001AAA");
        let now = Utc::now();
        let password = |username: &str| {
            form(&[
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("username", username),
                ("password", "sfsim-passwordSFSIMTOKEN"),
            ])
        };
        let issued = auth
            .grant(&password("limited@sfsim.example"), None, &ctx(now))
            .unwrap();
        assert_eq!(issued.user_id, "0055g00000000002AAA");
        assert_eq!(
            auth.user_of(&issued.access_token, now),
            Some("0055g00000000002AAA")
        );
        assert_eq!(
            auth.grant(&password("user1@sfsim.example"), None, &ctx(now))
                .err()
                .unwrap()
                .error,
            "invalid_grant",
            "only declared users log in"
        );
        let key = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/jwt/private.pem")).unwrap();
        let jwt = |sub: &str| {
            let claims = serde_json::json!({"iss": CLIENT_ID, "sub": sub, "aud": "https://login.salesforce.com", "exp": now.timestamp() + 60});
            let assertion =
                encode(&Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).unwrap();
            form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &assertion),
            ])
        };
        let issued = auth
            .grant(&jwt("limited@sfsim.example"), None, &ctx(now))
            .unwrap();
        assert_eq!(issued.user_id, "0055g00000000002AAA");
        assert_eq!(
            auth.grant(&jwt("nobody@sfsim.example"), None, &ctx(now))
                .err()
                .unwrap()
                .description,
            "user hasn't approved this consumer"
        );
    }

    #[test]
    fn codes_are_single_use_and_check_the_verifier() {
        let mut auth = Auth::new("0055g00000000001AAA");
        let now = Utc::now();
        // RFC 7636, appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            s256_challenge(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let code = auth.issue_code(
            Approval {
                user_id: "0055g00000000002AAA".into(),
                redirect_uri: "https://app.example.com/cb".into(),
                code_challenge: Some(s256_challenge(verifier)),
                scope: "api refresh_token".into(),
            },
            "00D5g000004SIMxEAG",
            now,
        );
        let exchange = |auth: &mut Auth, verifier: &str, at: DateTime<Utc>| {
            auth.grant(
                &form(&[
                    ("grant_type", "authorization_code"),
                    ("client_id", CLIENT_ID),
                    ("code", &code),
                    ("redirect_uri", "https://app.example.com/cb"),
                    ("code_verifier", verifier),
                ]),
                None,
                &ctx(at),
            )
        };
        assert_eq!(
            exchange(&mut auth, "wrong", now).err().unwrap().description,
            "invalid code verifier"
        );
        let late = now + Duration::seconds(AUTH_CODE_LIFETIME_SECS);
        assert_eq!(
            exchange(&mut auth, verifier, late)
                .err()
                .unwrap()
                .description,
            "expired authorization code"
        );
        let issued = exchange(&mut auth, verifier, now).unwrap();
        assert_eq!(issued.user_id, "0055g00000000002AAA");
        let refresh = issued.refresh_token.unwrap();
        assert!(refresh.starts_with("5Aep86100D5g000004SIMx"));
        assert_eq!(
            exchange(&mut auth, verifier, now)
                .err()
                .unwrap()
                .description,
            "expired authorization code"
        );
        // Rotation retires each refresh token as it is used.
        auth.rotate_refresh_tokens = true;
        let refresh_form = |t: &str| {
            form(&[
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("refresh_token", t),
            ])
        };
        let next = auth
            .grant(&refresh_form(&refresh), None, &ctx(now))
            .unwrap();
        let rotated = next.refresh_token.unwrap();
        assert!(auth
            .grant(&refresh_form(&refresh), None, &ctx(now))
            .is_err());
        // Revoking the grant's refresh token ends every access token of it.
        assert!(auth.user_of(&issued.access_token, now).is_some());
        assert!(auth.revoke(&rotated));
        assert!(auth.user_of(&issued.access_token, now).is_none());
        assert!(auth.user_of(&next.access_token, now).is_none());
        assert!(!auth.revoke(&rotated));
    }
}
