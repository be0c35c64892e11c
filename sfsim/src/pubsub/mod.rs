//! Change Data Capture and platform events over Salesforce's Pub/Sub API:
//! the gRPC service of package `eventbus.v1` on its own address. Committed
//! writes of the objects selected for CDC become Avro-encoded change events
//! on `/data/ChangeEvents` and `/data/<Object>ChangeEvent`; platform events
//! published by clients, REST or the control API go on `/event/Name__e`.
//! All are kept 72 hours and replayable by replay id.

mod auth;
mod avro;
mod bitmap;
mod bus;
mod calls;
mod events;
mod faults;
mod header;
mod hourly;
mod platform;
mod publish;
mod replay;
mod service;
mod status;
mod subscription;
mod topics;

pub use bus::{Bus, State};
pub use faults::CdcFaults;
pub use platform::PlatformSchema;
pub use publish::{MAX_EVENT_BYTES, MAX_REQUEST_BYTES};
pub use replay::ReplayLog;
pub use topics::entity_name;

use crate::sim::Sim;
use crate::tls::SelfSigned;
use eventbus::pub_sub_server::PubSubServer;
use eventbus::tonic::transport::{Identity, Server, ServerTlsConfig};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// Salesforce sends a keepalive within 270 seconds of nothing to send.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(270);

/// The org a call is for, by the access token its metadata carries (an
/// unknown token gets an org all the same, which refuses it).
pub type Resolve = Arc<dyn Fn(&str) -> Arc<Sim> + Send + Sync>;

/// Serves the Pub/Sub API until `shutdown` completes, then ends every open
/// stream of `sims` so the server can stop.
pub async fn serve(
    resolve: Resolve,
    sims: Vec<Arc<Sim>>,
    listener: TcpListener,
    tls: Option<SelfSigned>,
    keepalive: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let mut builder = Server::builder();
    if let Some(cert) = tls {
        let identity = Identity::from_pem(&cert.cert_pem, &cert.key_pem);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(|e| format!("Pub/Sub TLS: {e}"))?;
    }
    // Requests past the publish limit reach the service, which refuses them
    // with its own error, rather than gRPC's 4 MB default.
    let service = PubSubServer::new(service::PubSubService::new(resolve, keepalive))
        .max_decoding_message_size(4 * MAX_REQUEST_BYTES);
    builder
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            shutdown.await;
            for sim in &sims {
                sim.pubsub.drop_streams();
            }
        })
        .await
        .map_err(|e| format!("Pub/Sub API: {e}"))
}

/// A random UUID (version 4), for event ids, transaction keys and RPC ids.
fn uuid() -> String {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
