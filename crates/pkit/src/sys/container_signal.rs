//! Signalling every process of a group's container: a cgroup is frozen
//! around the pass (see `Cgroup::signal_each_after_by`), a process group gets
//! `killpg`. From a synchronous caller, or from an async one
//! ([`Container::signal_async`]), whose thread never waits in a blocking
//! `poll` for the kernel to confirm the freeze.

use std::io;
#[cfg(target_os = "linux")]
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::container::{Container, Kind};
#[cfg(target_os = "linux")]
use super::linux::cgroup::{Cgroup, FREEZE_WAIT};

impl Container {
    /// SIGKILL to the whole tree, now, leaving the container usable for
    /// new children (so a cgroup is not killed through `cgroup.kill`; see
    /// [`Cgroup::signal_each_after_by`]).
    pub(crate) fn kill_keep_usable(&self) -> io::Result<()> {
        self.signal_by(libc::SIGKILL, freeze_deadline())
    }

    /// Sends `sig` to every process in the container. SIGKILL is
    /// [`kill_keep_usable`](Self::kill_keep_usable): the container stays
    /// usable, as after `Group::kill`.
    ///
    /// A cgroup's pass waits for the kernel to confirm its freeze, up to
    /// 5 s (a member in uninterruptible sleep can't be frozen): an async
    /// caller takes [`signal_async`](Self::signal_async).
    pub(crate) fn signal(&self, sig: i32) -> io::Result<()> {
        self.signal_by(sig, freeze_deadline())
    }

    /// [`signal`](Self::signal) for an async caller (a shutdown): a
    /// cgroup is frozen ahead of the pass, and the kernel's confirmation
    /// (`frozen 1` in `cgroup.events`) is awaited, not waited for in a
    /// blocking `poll` on the caller's thread (a current-thread runtime ran
    /// nothing else meanwhile: up to 5 s for a member that can't be
    /// frozen). The pass then finds the cgroup frozen, or is past the same
    /// deadline and signals the members anyway, as `signal` does. A freeze
    /// undone meanwhile (another pass's thaw, a resume) is made and waited
    /// for again by the pass itself, within what is left of the deadline.
    /// Cancelled before the pass, the freeze made ahead is undone.
    /// SIGCONT's pass freezes nothing, and waits for nothing.
    pub(crate) async fn signal_async(&self, sig: i32) -> io::Result<()> {
        self.signal_async_then(sig, || ()).await
    }

    /// [`signal_async`](Self::signal_async), `before` run just ahead of
    /// the pass (after the freeze's wait, in the same poll): not at all
    /// when the call is dropped in its wait. (A pipeline's kill marks the
    /// chain stopped there, so that a kill dropped in its wait left no
    /// mark to undo, nor hid a stage's failure meanwhile.)
    pub(crate) async fn signal_async_then(
        &self,
        sig: i32,
        before: impl FnOnce(),
    ) -> io::Result<()> {
        let by = freeze_deadline();
        // SIGCONT's pass freezes nothing (see `signal_by`).
        #[cfg(target_os = "linux")]
        if let (Kind::Cgroup(cg), false) = (&self.kind, sig == libc::SIGCONT) {
            if let Some(ahead) = self.freeze_ahead(cg) {
                let until = tokio::time::Instant::from_std(by);
                let _ = tokio::time::timeout_at(until, cg.wait_frozen()).await;
                before();
                let sent = self.signal_by(sig, by);
                ahead.taken_over();
                return sent;
            }
        }
        before();
        self.signal_by(sig, by)
    }

    /// The pass of [`signal`](Self::signal), a cgroup's freeze confirmed
    /// by `by` at the latest.
    fn signal_by(&self, sig: i32, by: Instant) -> io::Result<()> {
        #[cfg(not(target_os = "linux"))]
        let _ = by;
        if sig == libc::SIGKILL {
            return self.counting_kill(|| match &self.kind {
                #[cfg(target_os = "linux")]
                Kind::Cgroup(cg) => {
                    // See below: the pass's thaw must not undo a suspend.
                    let _state = self.freezing.lock().unwrap_or_else(|e| e.into_inner());
                    let suspended = self.suspended.load(Ordering::Acquire);
                    cg.signal_each_after_by(libc::SIGKILL, suspended, by, || {
                        self.signal_started(cg, libc::SIGKILL)
                    })
                }
                Kind::Pgroup { .. } => self.kill(),
            });
        }
        match &self.kind {
            // SIGCONT needs no freeze (nor the thaw after it, so it leaves
            // a suspend alone): a member that forks during the pass was
            // running, so its child is not stopped and needs no SIGCONT;
            // a member stopped when the pass lists the cgroup can't fork,
            // exit on its own or leave, so it is listed and continued. A
            // member that can't be frozen (in uninterruptible sleep) kept
            // a shutdown's SIGCONT, which follows its signal, waiting 5 s
            // more, the rest of the tree frozen meanwhile.
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) if sig == libc::SIGCONT => {
                cg.signal_each_after_by(sig, true, by, || self.signal_started(cg, sig))
            }
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => {
                // A suspend comes wholly before the pass, which then leaves
                // the user's freeze alone, or after it: a pass that had
                // read `suspended` unset thawed the freeze a suspend had
                // just made (and its wait for `frozen 1` then hung until
                // the group emptied). Not the lifecycle lock: see there.
                let _state = self.freezing.lock().unwrap_or_else(|e| e.into_inner());
                let suspended = self.suspended.load(Ordering::Acquire);
                cg.signal_each_after_by(sig, suspended, by, || self.signal_started(cg, sig))
            }
            Kind::Pgroup { .. } => self.signal_pgroup(sig),
        }
    }

    /// Freezes the cgroup ahead of a pass of
    /// [`signal_async`](Self::signal_async), under `freezing`: not a
    /// suspended group (frozen already; the pass leaves it so), nor one
    /// whose `cgroup.freeze` can't be written (the pass freezes it itself,
    /// or finds it gone).
    #[cfg(target_os = "linux")]
    fn freeze_ahead<'a>(&'a self, cg: &'a Cgroup) -> Option<Ahead<'a>> {
        let _state = self.freezing.lock().unwrap_or_else(|e| e.into_inner());
        if self.suspended.load(Ordering::Acquire) {
            return None;
        }
        cg.write_freeze(true).ok()?;
        Some(Ahead {
            container: self,
            cg,
            armed: true,
        })
    }
}

/// When a signal pass starting now stops waiting for its freeze.
fn freeze_deadline() -> Instant {
    #[cfg(target_os = "linux")]
    let wait = FREEZE_WAIT;
    #[cfg(not(target_os = "linux"))]
    let wait = std::time::Duration::ZERO;
    Instant::now() + wait
}

/// A freeze made ahead of a signal pass ([`Container::freeze_ahead`]):
/// thawed when dropped (the caller was cancelled while it waited for the
/// confirmation), unless the pass took it over (its own thaw follows it)
/// or the group was suspended since (the user's freeze stays).
#[cfg(target_os = "linux")]
struct Ahead<'a> {
    container: &'a Container,
    cg: &'a Cgroup,
    armed: bool,
}

#[cfg(target_os = "linux")]
impl Ahead<'_> {
    /// The pass ran: its thaw has undone this freeze.
    fn taken_over(mut self) {
        self.armed = false;
    }
}

#[cfg(target_os = "linux")]
impl Drop for Ahead<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let c = self.container;
        let _state = c.freezing.lock().unwrap_or_else(|e| e.into_inner());
        if !c.suspended.load(Ordering::Acquire) {
            let _ = self.cg.write_freeze(false);
        }
    }
}
