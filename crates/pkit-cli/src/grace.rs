//! `pkit run`'s leftovers' grace: once the program has ended, what it left
//! running is waited for until the grace runs out, or until TERM, INT,
//! HUP or QUIT to pkit ends it at once.

use std::time::Duration;

use crate::orphans::Orphans;
use crate::signame;
use crate::sys::{sig, Received, Signals};

/// What ends the leftovers' grace early: TERM, INT, HUP or QUIT to pkit
/// (a user's Ctrl-C, a second `kill`), read while the grace runs.
pub struct Ending<'a> {
    pub signals: &'a mut Signals,
    /// A signal the run loop read once the program had ended, before it
    /// saw that end: taken first, as if read here.
    pub first: Option<Received>,
    pub received: &'a mut Vec<String>,
    /// Set to the signal that cut the grace short.
    pub cut_short: &'a mut Option<i32>,
    pub quiet: bool,
}

/// Waits until the group is empty or `until` passes (reaping adopted
/// orphans meanwhile); returns how many processes were still there (then
/// killed, by the group's teardown); no `until` is no deadline. When the
/// group can't be listed, nobody can be seen leaving: the tree is killed
/// now rather than waited on for nothing, and the count is unknown
/// (`None`). The program has ended and its leftovers had `--signal`: TERM,
/// INT, HUP or QUIT to pkit now kills them at once, as the third of a
/// teardown does (they were not read before, and pkit sat out the whole
/// grace).
pub async fn drain(
    group: &pkit::Group,
    orphans: &Orphans,
    until: Option<tokio::time::Instant>,
    mut ending: Ending<'_>,
) -> Option<u64> {
    let mut reading = true;
    loop {
        orphans.reap_exited();
        let Ok(pids) = group.pids() else {
            let _ = group.kill_async().await;
            return None;
        };
        let left = pids.len() as u64;
        if left == 0 || until.is_some_and(|u| tokio::time::Instant::now() >= u) {
            return Some(left);
        }
        let r = match ending.first.take() {
            Some(r) => Ok(r),
            None => tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(20)) => continue,
                r = ending.signals.recv(), if reading => r,
            },
        };
        match r {
            Ok(r) if r.signo == sig::SIGCHLD => {}
            Ok(r) => {
                let s = r.signo;
                // Only the ending signals are acted on here (the program
                // has ended: there is nothing to stop or forward to), and
                // only what was acted on is reported.
                if [sig::SIGTERM, sig::SIGINT, sig::SIGHUP, sig::SIGQUIT].contains(&s) {
                    ending.received.push(signame::display(s));
                    *ending.cut_short = Some(s);
                    if !ending.quiet {
                        eprintln!(
                            "pkit: {}: the program has ended; killing what it left now",
                            signame::display(s)
                        );
                    }
                    let _ = group.kill_async().await;
                    return Some(left);
                }
            }
            Err(_) => reading = false,
        }
    }
}
