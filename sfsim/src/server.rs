//! Starting a simulator: bound, seeded and serving, in this process.

use crate::orgs::Orgs;
use crate::sim::{Config, Sim};
use crate::tls::SelfSigned;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

pub struct Options {
    pub listen: SocketAddr,
    pub seed: String,
    pub records: Vec<(String, usize)>,
    pub daily_limit: u64,
    pub token_lifetime_secs: i64,
    /// Serve HTTPS with a self-signed certificate written into this folder.
    pub tls_dir: Option<PathBuf>,
    /// Also serve the Pub/Sub API (gRPC) here; over TLS with `tls_dir`,
    /// else only on a loopback address.
    pub pubsub_listen: Option<SocketAddr>,
    /// How long an idle Subscribe stream waits before a keepalive response.
    pub pubsub_keepalive: Duration,
    /// How many orgs to serve (at least 1): the first is the org sfsim has
    /// always served, the others alike with their own ids and usernames.
    pub orgs: usize,
    /// Every org's delay before each answer, in milliseconds, at start.
    pub delay_ms: u64,
}

impl Options {
    /// The demo org on a free loopback port, plain HTTP.
    pub fn demo() -> Options {
        Options {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            seed: "demo".into(),
            records: vec![],
            daily_limit: crate::sim::DEFAULT_DAILY_LIMIT,
            token_lifetime_secs: crate::sim::DEFAULT_TOKEN_LIFETIME_SECS,
            tls_dir: None,
            pubsub_listen: None,
            pubsub_keepalive: crate::pubsub::DEFAULT_KEEPALIVE,
            orgs: 1,
            delay_ms: 0,
        }
    }

    /// The demo org with the Pub/Sub API on a free loopback port too.
    pub fn demo_with_pubsub() -> Options {
        Options {
            pubsub_listen: Some("127.0.0.1:0".parse().expect("valid address")),
            ..Options::demo()
        }
    }
}

/// What a started simulator serves, as `ready` is told.
pub struct Started<'a> {
    pub base_url: &'a str,
    pub cert_path: Option<&'a PathBuf>,
    /// The Pub/Sub API's URL, when it is served.
    pub pubsub_url: Option<&'a str>,
    /// The first org.
    pub sim: &'a Arc<Sim>,
    /// Every org, the first included.
    pub orgs: &'a Arc<Orgs>,
}

/// A simulator serving on a background thread until dropped.
pub struct Running {
    pub base_url: String,
    pub cert_path: Option<PathBuf>,
    pub pubsub_url: Option<String>,
    /// The first org.
    pub sim: Arc<Sim>,
    /// Every org, the first included.
    pub orgs: Arc<Orgs>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds, seeds and serves until `shutdown` completes. `ready` is called once
/// the addresses are bound and the org seeded.
pub async fn run(
    options: Options,
    ready: impl FnOnce(&Started),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let certificate = options
        .tls_dir
        .as_deref()
        .map(SelfSigned::create)
        .transpose()?;
    let tls = certificate
        .as_ref()
        .map(SelfSigned::http_acceptor)
        .transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base_url = format!("{scheme}://{addr}");
    let pubsub_listener = match options.pubsub_listen {
        Some(at) if certificate.is_none() && !at.ip().is_loopback() => {
            return Err(format!(
            "the Pub/Sub API is served without TLS only on a loopback address, not {at}: add --tls"
        ))
        }
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| format!("cannot listen on {at}: {e}"))?,
        ),
        None => None,
    };
    let pubsub_url = pubsub_listener
        .as_ref()
        .map(|l| l.local_addr().map(|a| format!("{scheme}://{a}")))
        .transpose()
        .map_err(|e| e.to_string())?;
    let orgs = Arc::new(Orgs::new(
        &Config {
            seed: options.seed,
            records: options.records.into_iter().collect(),
            daily_limit: options.daily_limit,
            token_lifetime_secs: options.token_lifetime_secs,
            base_url: base_url.clone(),
            number: 1,
            delay_ms: options.delay_ms,
        },
        options.orgs,
    )?);
    let sim = orgs.first().clone();
    ready(&Started {
        base_url: &base_url,
        cert_path: certificate.as_ref().map(|c| &c.pem_path),
        pubsub_url: pubsub_url.as_deref(),
        sim: &sim,
        orgs: &orgs,
    });
    let (stop, stopped) = watch::channel(false);
    let pubsub = pubsub_listener.map(|listener| {
        let mut stopped = stopped.clone();
        let by_token = orgs.clone();
        tokio::spawn(crate::pubsub::serve(
            Arc::new(move |token: &str| by_token.or_first(by_token.by_access_token(token)).clone()),
            orgs.all().to_vec(),
            listener,
            certificate,
            options.pubsub_keepalive,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ))
    });
    crate::http::serve(orgs, listener, tls, shutdown).await;
    let _ = stop.send(true);
    if let Some(pubsub) = pubsub {
        pubsub.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Starts a simulator on its own thread and runtime, for tests and benchmarks.
pub fn spawn(options: Options) -> Result<Running, String> {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let failed = ready_tx.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let result = runtime.block_on(run(
            options,
            |started| {
                let _ = ready_tx.send(Ok((
                    started.base_url.to_string(),
                    started.cert_path.cloned(),
                    started.pubsub_url.map(str::to_string),
                    started.orgs.clone(),
                )));
            },
            async {
                let _ = stop_rx.await;
            },
        ));
        if let Err(e) = result {
            let _ = failed.send(Err(e));
        }
    });
    let (base_url, cert_path, pubsub_url, orgs) = ready_rx.recv().map_err(|e| e.to_string())??;
    Ok(Running {
        base_url,
        cert_path,
        pubsub_url,
        sim: orgs.first().clone(),
        orgs,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}
