//! A Bulk job's CSV parts uploaded on a thread of their own while the
//! backend writes the next one, so that Salesforce reads a part as the
//! next is made. One part is on its way at most, and one being written:
//! memory stays at two parts. As with `read_ahead`, the thread never calls
//! into PostgreSQL, and signals stay with the backend's thread.

use crate::connection::interrupted;
use crate::error::{remember_secrets, Error, Result};
use crate::read_ahead::{block_signals, INTERRUPT_POLL};
use bytes::Bytes;
use salesforce_core::client::session::Session;
use salesforce_core::SalesforceError;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

/// How long a part waits between tries to hand it over.
const HAND_OVER_POLL: Duration = Duration::from_millis(1);

type Ended = (std::result::Result<(), SalesforceError>, Vec<String>);

pub struct UploadBehind {
    parts: Option<SyncSender<Bytes>>,
    ended: Receiver<Ended>,
}

impl UploadBehind {
    /// Uploads the parts it is given to `job` with `session` (a fork of the
    /// backend's), in order.
    pub fn start(mut session: Session, job: String) -> UploadBehind {
        let (parts, given) = sync_channel::<Bytes>(0);
        let (report, ended) = sync_channel(1);
        std::thread::spawn(move || {
            block_signals();
            let upload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                given
                    .iter()
                    .try_for_each(|part| session.upload_ingest_part(&job, part))
            }))
            .unwrap_or_else(|_| {
                Err(SalesforceError::Config(
                    "the thread uploading a Bulk job's CSV panicked".into(),
                ))
            });
            let _ = report.send((upload, session.secrets()));
        });
        UploadBehind {
            parts: Some(parts),
            ended,
        }
    }

    /// Hands `part` over once the part before it is uploaded.
    pub fn send(&mut self, mut part: Bytes) -> Result<()> {
        let Some(parts) = &self.parts else {
            return self.wait();
        };
        loop {
            match parts.try_send(part) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(p)) => {
                    if interrupted() {
                        return Err(Error::Salesforce(SalesforceError::Cancelled));
                    }
                    part = p;
                    std::thread::sleep(HAND_OVER_POLL);
                }
                // The thread stopped at an upload that failed.
                Err(TrySendError::Disconnected(_)) => return self.wait(),
            }
        }
    }

    /// Waits until every part handed over is uploaded.
    pub fn finish(mut self) -> Result<()> {
        self.wait()
    }

    fn wait(&mut self) -> Result<()> {
        self.parts = None;
        loop {
            match self.ended.recv_timeout(INTERRUPT_POLL) {
                Ok((upload, secrets)) => {
                    remember_secrets(secrets);
                    return upload.map_err(Error::Salesforce);
                }
                Err(RecvTimeoutError::Timeout) if interrupted() => {
                    return Err(Error::Salesforce(SalesforceError::Cancelled))
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Salesforce(SalesforceError::Config(
                        "the thread uploading a Bulk job's CSV ended without a word".into(),
                    )))
                }
            }
        }
    }
}
