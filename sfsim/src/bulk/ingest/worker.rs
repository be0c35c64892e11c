//! The one long-lived thread every ingest job is processed on, whichever
//! request finds it due: the records a job writes (and the ones an update
//! replaces) are then allocated and freed by the same thread, so the
//! allocator keeps reusing one arena instead of growing one per request
//! thread.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, sync_channel, Sender};
use std::sync::{Mutex, OnceLock};

type Task = Box<dyn FnOnce() + Send>;

fn queue() -> &'static Mutex<Sender<Task>> {
    static QUEUE: OnceLock<Mutex<Sender<Task>>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (send, receive) = channel::<Task>();
        std::thread::Builder::new()
            .name("sfsim-ingest".into())
            .spawn(move || {
                for task in receive {
                    task();
                }
            })
            .expect("the ingest worker starts");
        Mutex::new(send)
    })
}

/// Runs `work` on the ingest worker and waits for it; a panic in `work`
/// is raised again here, and the worker carries on.
pub fn run(work: impl FnOnce() + Send + 'static) {
    let (done, finished) = sync_channel(1);
    let task: Task = Box::new(move || {
        let outcome = catch_unwind(AssertUnwindSafe(work));
        let _ = done.send(outcome);
    });
    queue()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(task)
        .expect("the ingest worker runs");
    match finished.recv().expect("the ingest worker answers") {
        Ok(()) => {}
        Err(panic) => resume_unwind(panic),
    }
}
