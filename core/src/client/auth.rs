//! Logging in: the grant a user mapping describes, and the token it yields.

use super::error::SalesforceError;
use super::http::{self, Interrupted};
use super::oauth;
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
                // None yet while the org is being connected (the web-server flow).
                refresh_token: options.get("refresh_token").cloned().unwrap_or_default(),
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
    /// The refresh token the answer carried: the web-server flow's, or a
    /// new one when the org rotates them.
    pub refresh_token: Option<String>,
    /// The org's id, from the identity URL of the login's answer: the
    /// Pub/Sub API's `tenantid`. None for an `access_token` grant.
    pub org_id: Option<String>,
}

/// Logs in at `login_url` with the grant. An `access_token` grant needs no
/// login: its instance is `instance_url`, or else `login_url`.
///
/// The password, refresh_token and client_credentials grants go through the
/// `oauth2` crate's token requests (see `oauth`). The JWT bearer grant is
/// not one the crate knows (it has no RFC 7523 assertion grant, and its
/// requests' grant_type cannot be changed), so its form is built here; its
/// answer is read as the same `oauth::TokenAnswer`.
/// A refresh_token mapping whose org has not been connected yet.
pub const NOT_CONNECTED: &str = "the user mapping has no refresh_token yet: connect the org with salesforce.authorize_url() and salesforce.complete_authorization()";

pub fn login(
    client: &reqwest::Client,
    login_url: &str,
    instance_url: Option<&str>,
    grant: &Grant,
    interrupted: Interrupted,
) -> Result<Token, SalesforceError> {
    use oauth2::{RefreshToken, ResourceOwnerPassword, ResourceOwnerUsername};
    let transport = oauth::transport(client, interrupted);
    let answer = match grant {
        Grant::AccessToken { access_token } => {
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
        Grant::Password {
            client_id,
            client_secret,
            username,
            password,
        } => {
            let (username, password) = (
                ResourceOwnerUsername::new(username.clone()),
                ResourceOwnerPassword::new(password.clone()),
            );
            oauth::client(login_url, client_id, Some(client_secret))?
                .exchange_password(&username, &password)
                .request(&transport)
                .map_err(oauth::token_error)?
        }
        Grant::RefreshToken {
            client_id,
            client_secret,
            refresh_token,
        } => {
            if refresh_token.is_empty() {
                return Err(SalesforceError::Config(NOT_CONNECTED.into()));
            }
            let refresh_token = RefreshToken::new(refresh_token.clone());
            oauth::client(login_url, client_id, client_secret.as_deref())?
                .exchange_refresh_token(&refresh_token)
                .request(&transport)
                .map_err(oauth::token_error)?
        }
        Grant::ClientCredentials {
            client_id,
            client_secret,
        } => oauth::client(login_url, client_id, Some(client_secret))?
            .exchange_client_credentials()
            .request(&transport)
            .map_err(oauth::token_error)?,
        Grant::JwtBearer {
            client_id,
            username,
            private_key,
        } => {
            let form = [
                ("grant_type", JWT_BEARER.to_string()),
                (
                    "assertion",
                    jwt_assertion(client_id, username, private_key, login_url)?,
                ),
            ];
            let url = format!("{}/services/oauth2/token", login_url.trim_end_matches('/'));
            let answer = http::send(|| client.post(&url).form(&form), interrupted)?;
            serde_json::from_slice::<oauth::TokenAnswer>(&answer.body)
                .map_err(|e| SalesforceError::BadResponse(format!("token response: {e}")))?
        }
    };
    Ok(oauth::token_of(&answer, instance_url))
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
            ("grant_type", "password"),
            ("client_id", "c"),
            ("client_secret", "s"),
            ("password", "p"),
        ]))
        .unwrap_err();
        assert_eq!(e.to_string(), "the user mapping has no \"username\" option");
    }

    #[test]
    fn a_refresh_token_mapping_waits_for_its_token() {
        let g = Grant::from_options(&options(&[
            ("grant_type", "refresh_token"),
            ("client_id", "c"),
        ]))
        .unwrap();
        let client = crate::client::http::client(std::time::Duration::from_secs(1)).unwrap();
        let e = login(&client, "https://login.salesforce.com", None, &g, || false).unwrap_err();
        assert_eq!(
            e,
            SalesforceError::Config(NOT_CONNECTED.into()),
            "no request is made"
        );
    }
}
