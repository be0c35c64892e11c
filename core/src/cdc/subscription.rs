//! The synchronous face of a Subscribe stream: a thread running the
//! stream on a runtime of its own, and a channel of what it receives.

use super::stream::{Backlog, Items, Stream};
use super::{StreamConfig, StreamItem};
use crate::client::SalesforceError;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

pub struct Subscription {
    items: mpsc::Receiver<Result<StreamItem, SalesforceError>>,
    backlog: Arc<Backlog>,
    /// What ended the stream, given again to every later call.
    ended: Option<SalesforceError>,
    /// Masked in every error: servers' and libraries' messages are quoted.
    access_token: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Subscription {
    /// Connects and subscribes; fails within `config.timeout` when the
    /// Pub/Sub API cannot be reached or refuses the token. A refused topic
    /// or replay id is the first `next`'s error.
    pub fn open(config: StreamConfig) -> Result<Subscription, SalesforceError> {
        let (items_tx, items) = mpsc::channel();
        let (opened_tx, opened) = mpsc::channel();
        let (stop, stopped) = oneshot::channel();
        let backlog = Arc::new(Backlog::default());
        let shared = backlog.clone();
        let access_token = config.access_token.clone();
        let thread = std::thread::Builder::new()
            .name("salesforce-cdc".into())
            .spawn(move || serve(config, items_tx, opened_tx, shared, stopped))
            .map_err(|e| SalesforceError::Config(format!("cannot start a thread: {e}")))?;
        let mut subscription = Subscription {
            items,
            backlog,
            ended: None,
            access_token,
            stop: Some(stop),
            thread: Some(thread),
        };
        match opened.recv() {
            Ok(Ok(())) => Ok(subscription),
            Ok(Err(e)) => Err(subscription.end(e)),
            Err(_) => Err(subscription.end(ended())),
        }
    }

    /// The next item, waiting at most `wait` (zero: not at all); None when
    /// nothing came in time. Once the stream has failed, its error.
    pub fn next(&mut self, wait: Duration) -> Result<Option<StreamItem>, SalesforceError> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        let received = if wait.is_zero() {
            self.items.try_recv().map_err(|e| match e {
                mpsc::TryRecvError::Empty => None,
                mpsc::TryRecvError::Disconnected => Some(ended()),
            })
        } else {
            self.items.recv_timeout(wait).map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => None,
                mpsc::RecvTimeoutError::Disconnected => Some(ended()),
            })
        };
        match received {
            Ok(Ok(item)) => {
                if matches!(item, StreamItem::Events { .. }) {
                    self.backlog.take();
                }
                Ok(Some(item))
            }
            Ok(Err(e)) | Err(Some(e)) => Err(self.end(e)),
            Err(None) => Ok(None),
        }
    }

    fn end(&mut self, e: SalesforceError) -> SalesforceError {
        let e = e.redacted(&self.access_token);
        self.ended = Some(e.clone());
        e
    }
}

fn ended() -> SalesforceError {
    SalesforceError::Network("the Pub/Sub API subscription ended".into())
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's work: open the stream, say how that went, then serve it
/// until it fails or the subscription is dropped.
fn serve(
    config: StreamConfig,
    items: Items,
    opened: mpsc::Sender<Result<(), SalesforceError>>,
    backlog: Arc<Backlog>,
    stopped: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = opened.send(Err(SalesforceError::Config(format!(
                "cannot start a tokio runtime: {e}"
            ))));
            return;
        }
    };
    runtime.block_on(async {
        tokio::select! {
            _ = stopped => {}
            _ = async {
                match Stream::open(&config).await {
                    Err(e) => {
                        let _ = opened.send(Err(e));
                    }
                    Ok(stream) => {
                        let _ = opened.send(Ok(()));
                        stream.run(items, backlog).await;
                    }
                }
            } => {}
        }
    });
    // Not waiting for blocking work (a DNS lookup) keeps dropping prompt.
    runtime.shutdown_background();
}
