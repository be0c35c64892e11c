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
    pub scope: Option<&'static str>,
}

struct AccessToken {
    user_id: String,
    expires_at: DateTime<Utc>,
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
    refresh: HashMap<String, String>,
}

impl Auth {
    pub fn new(admin_user_id: &str) -> Auth {
        let mut auth = Auth::default();
        auth.refresh
            .insert(DEMO_REFRESH_TOKEN.into(), admin_user_id.into());
        auth
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
        let (user_id, refresh_token, scope) = match grant_type {
            "password" => {
                check_client(true)?;
                let expected = format!("{PASSWORD}{SECURITY_TOKEN}");
                let user = field("username")
                    .and_then(|u| ctx.logins.get(u))
                    .filter(|_| field("password") == Some(expected.as_str()))
                    .ok_or_else(|| oauth_error("invalid_grant", "authentication failure"))?;
                (user.clone(), None, None)
            }
            "refresh_token" => {
                check_client(false)?;
                let user = field("refresh_token")
                    .and_then(|t| self.refresh.get(t))
                    .ok_or_else(|| oauth_error("invalid_grant", "expired access/refresh token"))?;
                (user.clone(), None, Some("api refresh_token"))
            }
            "client_credentials" => {
                check_client(true)?;
                (ctx.admin_user_id.to_string(), None, Some("api"))
            }
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
                let assertion = field("assertion")
                    .ok_or_else(|| oauth_error("invalid_request", "assertion required"))?;
                (verify_jwt(assertion, ctx)?, None, Some("api"))
            }
            _ => {
                return Err(oauth_error(
                    "unsupported_grant_type",
                    "grant type not supported",
                ))
            }
        };
        let access_token = format!(
            "{}!{}",
            &ctx.org_id[..15],
            Alphanumeric.sample_string(&mut rand::rng(), 96)
        );
        self.access.insert(
            access_token.clone(),
            AccessToken {
                user_id: user_id.clone(),
                expires_at: ctx.now + ctx.lifetime,
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

    pub fn revoke(&mut self, token: &str) -> bool {
        self.access.remove(token).is_some() | self.refresh.remove(token).is_some()
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
}
