//! Logging in: the grant a user mapping describes, and the token it yields.

use super::error::SalesforceError;
use super::http::{self, Interrupted};
use serde::Deserialize;
use std::collections::HashMap;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// A JWT assertion lives this long; Salesforce accepts at most three minutes.
const JWT_LIFETIME_SECS: i64 = 150;

#[derive(Clone, Debug, PartialEq)]
pub enum Grant {
    /// `password` is the user's password with the security token appended.
    Password {
        client_id: String,
        client_secret: String,
        username: String,
        password: String,
    },
    RefreshToken {
        client_id: String,
        client_secret: Option<String>,
        refresh_token: String,
    },
    ClientCredentials {
        client_id: String,
        client_secret: String,
    },
    JwtBearer {
        client_id: String,
        username: String,
        private_key: String,
    },
    AccessToken {
        access_token: String,
    },
}

fn take(options: &HashMap<String, String>, key: &str) -> Result<String, SalesforceError> {
    options
        .get(key)
        .filter(|v| !v.is_empty())
        .cloned()
        .ok_or_else(|| SalesforceError::Config(format!("the user mapping has no \"{key}\" option")))
}

impl Grant {
    /// The grant a user mapping's options describe.
    pub fn from_options(options: &HashMap<String, String>) -> Result<Grant, SalesforceError> {
        let grant_type = take(options, "grant_type")?;
        Ok(match grant_type.as_str() {
            "password" => Grant::Password {
                client_id: take(options, "client_id")?,
                client_secret: take(options, "client_secret")?,
                username: take(options, "username")?,
                password: format!(
                    "{}{}",
                    take(options, "password")?,
                    options
                        .get("security_token")
                        .map(String::as_str)
                        .unwrap_or("")
                ),
            },
            "refresh_token" => Grant::RefreshToken {
                client_id: take(options, "client_id")?,
                client_secret: options.get("client_secret").cloned(),
                refresh_token: take(options, "refresh_token")?,
            },
            "client_credentials" => Grant::ClientCredentials {
                client_id: take(options, "client_id")?,
                client_secret: take(options, "client_secret")?,
            },
            "jwt_bearer" => Grant::JwtBearer {
                client_id: take(options, "client_id")?,
                username: take(options, "username")?,
                private_key: take(options, "private_key")?,
            },
            "access_token" => Grant::AccessToken {
                access_token: take(options, "access_token")?,
            },
            other => {
                return Err(SalesforceError::Config(format!(
                    "unknown grant_type \"{other}\""
                )))
            }
        })
    }

    /// Values that must never appear in a message.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Grant::Password {
                client_secret,
                password,
                ..
            } => vec![client_secret.clone(), password.clone()],
            Grant::RefreshToken {
                client_secret,
                refresh_token,
                ..
            } => client_secret
                .iter()
                .cloned()
                .chain([refresh_token.clone()])
                .collect(),
            Grant::ClientCredentials { client_secret, .. } => vec![client_secret.clone()],
            Grant::JwtBearer { private_key, .. } => vec![private_key.clone()],
            Grant::AccessToken { access_token } => vec![access_token.clone()],
        }
    }

    fn form(&self, login_url: &str) -> Result<Vec<(&'static str, String)>, SalesforceError> {
        Ok(match self {
            Grant::Password {
                client_id,
                client_secret,
                username,
                password,
            } => vec![
                ("grant_type", "password".into()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
                ("username", username.clone()),
                ("password", password.clone()),
            ],
            Grant::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            } => {
                let mut form = vec![
                    ("grant_type", "refresh_token".into()),
                    ("client_id", client_id.clone()),
                    ("refresh_token", refresh_token.clone()),
                ];
                if let Some(secret) = client_secret {
                    form.push(("client_secret", secret.clone()));
                }
                form
            }
            Grant::ClientCredentials {
                client_id,
                client_secret,
            } => vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
            ],
            Grant::JwtBearer {
                client_id,
                username,
                private_key,
            } => {
                vec![
                    ("grant_type", JWT_BEARER.into()),
                    (
                        "assertion",
                        jwt_assertion(client_id, username, private_key, login_url)?,
                    ),
                ]
            }
            Grant::AccessToken { .. } => vec![],
        })
    }
}

fn jwt_assertion(
    client_id: &str,
    username: &str,
    private_key: &str,
    login_url: &str,
) -> Result<String, SalesforceError> {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let key = EncodingKey::from_rsa_pem(private_key.as_bytes()).map_err(|_| {
        SalesforceError::Config(
            "the user mapping's private_key is not an RSA private key in PEM form".into(),
        )
    })?;
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": username,
        "aud": jwt_audience(login_url),
        "exp": chrono::Utc::now().timestamp() + JWT_LIFETIME_SECS,
    });
    encode(&Header::new(Algorithm::RS256), &claims, &key)
        .map_err(|e| SalesforceError::Config(format!("cannot sign the JWT assertion: {e}")))
}

/// The JWT's audience: Salesforce accepts only its login hosts there, not
/// a My Domain, so a My Domain login_url names login or, for a sandbox, test.
/// Other hosts (an Experience Cloud site, a local simulator) name themselves.
fn jwt_audience(login_url: &str) -> String {
    let host = url::Url::parse(login_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    if host == "test.salesforce.com" || host.ends_with(".sandbox.my.salesforce.com") {
        "https://test.salesforce.com".into()
    } else if host == "salesforce.com" || host.ends_with(".salesforce.com") {
        "https://login.salesforce.com".into()
    } else {
        login_url.trim_end_matches('/').into()
    }
}

#[derive(Clone, Debug)]
pub struct Token {
    pub access_token: String,
    pub instance_url: String,
    /// A new refresh token, when the org rotates them.
    pub refresh_token: Option<String>,
    /// The org's id, from the identity URL of the login's answer: the
    /// Pub/Sub API's `tenantid`. None for an `access_token` grant.
    pub org_id: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    instance_url: String,
    refresh_token: Option<String>,
    /// `https://login.salesforce.com/id/<org id>/<user id>`
    id: Option<String>,
}

fn org_of_identity(id_url: &str) -> Option<String> {
    let mut parts = id_url.rsplit('/');
    let _user = parts.next()?;
    let org = parts.next()?;
    (org.starts_with("00D") && parts.next() == Some("id")).then(|| org.to_string())
}

/// Logs in at `login_url` with the grant. An `access_token` grant needs no
/// login: its instance is `instance_url`, or else `login_url`.
pub fn login(
    client: &reqwest::Client,
    login_url: &str,
    instance_url: Option<&str>,
    grant: &Grant,
    interrupted: Interrupted,
) -> Result<Token, SalesforceError> {
    if let Grant::AccessToken { access_token } = grant {
        let instance = instance_url
            .unwrap_or(login_url)
            .trim_end_matches('/')
            .to_string();
        return Ok(Token {
            access_token: access_token.clone(),
            instance_url: instance,
            refresh_token: None,
            org_id: None,
        });
    }
    let form = grant.form(login_url)?;
    let url = format!("{}/services/oauth2/token", login_url.trim_end_matches('/'));
    let answer = http::send(|| client.post(&url).form(&form), interrupted)?;
    let token: TokenAnswer = serde_json::from_slice(&answer.body)
        .map_err(|e| SalesforceError::BadResponse(format!("token response: {e}")))?;
    Ok(Token {
        org_id: token.id.as_deref().and_then(org_of_identity),
        access_token: token.access_token,
        refresh_token: token.refresh_token,
        instance_url: instance_url
            .unwrap_or(&token.instance_url)
            .trim_end_matches('/')
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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

    #[test]
    fn jwt_audience_is_a_login_host_for_salesforce_domains() {
        for (login_url, audience) in [
            (
                "https://login.salesforce.com",
                "https://login.salesforce.com",
            ),
            (
                "https://acme.my.salesforce.com/",
                "https://login.salesforce.com",
            ),
            ("https://test.salesforce.com", "https://test.salesforce.com"),
            (
                "https://acme--uat.sandbox.my.salesforce.com",
                "https://test.salesforce.com",
            ),
            (
                "https://acme.my.site.com/partners",
                "https://acme.my.site.com/partners",
            ),
            ("http://127.0.0.1:7777/", "http://127.0.0.1:7777"),
        ] {
            assert_eq!(jwt_audience(login_url), audience, "{login_url}");
        }
    }

    #[test]
    fn password_grant_appends_the_security_token() {
        let g = Grant::from_options(&options(&[
            ("grant_type", "password"),
            ("client_id", "c"),
            ("client_secret", "s"),
            ("username", "u"),
            ("password", "p"),
            ("security_token", "T"),
        ]))
        .unwrap();
        assert!(matches!(&g, Grant::Password { password, .. } if password == "pT"));
        assert_eq!(g.secrets(), vec!["s".to_string(), "pT".to_string()]);
    }

    #[test]
    fn missing_fields_are_named() {
        let e = Grant::from_options(&options(&[
            ("grant_type", "refresh_token"),
            ("client_id", "c"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the user mapping has no \"refresh_token\" option"
        );
    }
}
