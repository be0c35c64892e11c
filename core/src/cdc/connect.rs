//! Reaching the Pub/Sub API: a channel to its URL (TLS for `https://`,
//! plaintext only to loopback) and the metadata every call carries.

use super::StreamConfig;
use crate::client::SalesforceError;
use crate::options::check_url;
use eventbus::tonic::metadata::AsciiMetadataValue;
use eventbus::tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use eventbus::tonic::Request;

pub async fn channel(config: &StreamConfig) -> Result<Channel, SalesforceError> {
    let url = config.pubsub_url.trim_end_matches('/');
    check_url("pubsub_url", url).map_err(|e| SalesforceError::Config(e.message))?;
    let bad = |e: eventbus::tonic::transport::Error| {
        SalesforceError::Config(format!("invalid Pub/Sub API URL {url}: {e}"))
    };
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(bad)?
        .connect_timeout(config.timeout);
    if url.to_ascii_lowercase().starts_with("https://") {
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().with_webpki_roots())
            .map_err(bad)?;
    }
    match tokio::time::timeout(config.timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(SalesforceError::ConnectFailed(format!(
            "cannot connect to the Pub/Sub API at {url}: {}",
            transport_detail(&e)
        ))),
        Err(_) => Err(SalesforceError::ConnectFailed(format!(
            "connecting to the Pub/Sub API at {url} timed out after {:?}",
            config.timeout
        ))),
    }
}

/// A transport error with its causes: tonic's own text is only "transport error".
fn transport_detail(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Who is calling: the `accesstoken`, `instanceurl` and `tenantid` metadata.
#[derive(Clone)]
pub struct Credentials {
    access_token: AsciiMetadataValue,
    instance_url: AsciiMetadataValue,
    tenant_id: AsciiMetadataValue,
}

impl Credentials {
    pub fn of(config: &StreamConfig) -> Result<Credentials, SalesforceError> {
        // The messages never quote the value: one of them is the token.
        let value = |v: &str, what: &str| {
            let mut value = AsciiMetadataValue::try_from(v).map_err(|_| {
                SalesforceError::Config(format!("the {what} holds characters a gRPC header cannot"))
            })?;
            value.set_sensitive(true);
            Ok::<_, SalesforceError>(value)
        };
        Ok(Credentials {
            access_token: value(&config.access_token, "access token")?,
            instance_url: value(config.instance_url.trim_end_matches('/'), "instance URL")?,
            tenant_id: value(&config.tenant_id, "tenant id")?,
        })
    }

    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert(eventbus::ACCESS_TOKEN, self.access_token.clone());
        metadata.insert(eventbus::INSTANCE_URL, self.instance_url.clone());
        metadata.insert(eventbus::TENANT_ID, self.tenant_id.clone());
        request
    }
}
