//! Starting a simulator: bound, seeded and serving, in this process.

use crate::sim::{Config, Sim};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

pub struct Options {
    pub listen: SocketAddr,
    pub seed: String,
    pub records: Vec<(String, usize)>,
    pub daily_limit: u64,
    pub token_lifetime_secs: i64,
    /// Serve HTTPS with a self-signed certificate written into this folder.
    pub tls_dir: Option<PathBuf>,
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
        }
    }
}

/// A simulator serving on a background thread until dropped.
pub struct Running {
    pub base_url: String,
    pub cert_path: Option<PathBuf>,
    pub sim: Arc<Sim>,
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
/// the address is bound and the org seeded.
pub async fn run(
    options: Options,
    ready: impl FnOnce(&str, Option<&PathBuf>, &Arc<Sim>),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (tls, cert_path) = match &options.tls_dir {
        Some(dir) => {
            let (acceptor, path) = crate::tls::self_signed(dir)?;
            (Some(acceptor), Some(path))
        }
        None => (None, None),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base_url = format!("{scheme}://{addr}");
    let sim = Arc::new(Sim::new(Config {
        seed: options.seed,
        records: options.records.into_iter().collect(),
        daily_limit: options.daily_limit,
        token_lifetime_secs: options.token_lifetime_secs,
        base_url: base_url.clone(),
    })?);
    ready(&base_url, cert_path.as_ref(), &sim);
    crate::http::serve(sim, listener, tls, shutdown).await;
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
            |url, cert, sim| {
                let _ = ready_tx.send(Ok((url.to_string(), cert.cloned(), sim.clone())));
            },
            async {
                let _ = stop_rx.await;
            },
        ));
        if let Err(e) = result {
            let _ = failed.send(Err(e));
        }
    });
    let (base_url, cert_path, sim) = ready_rx.recv().map_err(|e| e.to_string())??;
    Ok(Running {
        base_url,
        cert_path,
        sim,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}
