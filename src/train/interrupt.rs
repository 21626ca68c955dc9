//! Stopping a training run cleanly: Ctrl-C (SIGINT) or SIGTERM asks the
//! trainer to save a checkpoint at the step it is on and return
//! [`Error::Interrupted`](crate::Error::Interrupted); a second signal quits
//! at once (exit status 130), for when saving takes too long.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicUsize = AtomicUsize::new(0);
/// Whether the handler says what it does (every rank gets the signal; rank 0 tells).
static ANNOUNCE: AtomicBool = AtomicBool::new(true);

/// Keeps the handler quiet (ranks other than 0 of a distributed run).
pub(crate) fn announce(on: bool) {
    ANNOUNCE.store(on, Ordering::SeqCst);
}

/// Installs the signal handler (once per process; later calls do nothing).
/// The command line calls it before training.
pub fn install() {
    // Only one handler per process: a second `install` finds it in place.
    let _ = ctrlc::set_handler(|| {
        if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
            REQUESTED.store(true, Ordering::SeqCst);
            if !ANNOUNCE.load(Ordering::SeqCst) {
                return;
            }
            eprintln!(
                "\nstopping: saving a checkpoint at the current step \
                 (interrupt again to quit at once, without it)"
            );
        } else {
            std::process::exit(130);
        }
    });
}

/// Asks a running training loop to stop after its current step, as the
/// first Ctrl-C does (for programs that embed the trainer, and tests).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was asked for and not yet honoured.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Marks the request as honoured (the trainer calls this once it has saved).
pub(crate) fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
    SIGNALS.store(0, Ordering::SeqCst);
}
