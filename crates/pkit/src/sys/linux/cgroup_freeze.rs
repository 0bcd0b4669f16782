//! Killing a cgroup (`cgroup.kill`), killing and signalling its members
//! one by one while it is frozen, freezing a cgroup around such a pass (see
//! [`Cgroup::while_frozen`]), and a user's freeze (`Group::suspend`),
//! waited for asynchronously.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{read_events, subtree, wait_event_change, Cgroup, RECHECK};

/// How long a signal pass waits for the kernel to confirm its freeze
/// (`frozen 1`) before it signals the members anyway.
pub(crate) const FREEZE_WAIT: Duration = Duration::from_secs(5);

impl Cgroup {
    /// Kills every process in the cgroup, now: through `cgroup.kill`
    /// ([`kill_atomic`](Self::kill_atomic)), else member by member over
    /// the frozen cgroup, its freeze waited for here (up to 5 s).
    pub(crate) fn kill(&self) -> io::Result<()> {
        if self.kill_atomic() {
            return Ok(());
        }
        let by = Instant::now() + FREEZE_WAIT;
        self.signal_each_after_by(libc::SIGKILL, false, by, || {})
    }

    /// [`kill`](Self::kill) through `cgroup.kill` alone: false where this
    /// kernel has none (before 5.14) or the write was refused, and the
    /// members are still to be killed one by one (a pass over the frozen
    /// cgroup, which an async caller makes with its freeze awaited: see
    /// `Container::kill_async`). True when there is nothing to kill (the
    /// directory removed, the group's tenure over).
    pub(crate) fn kill_atomic(&self) -> bool {
        if self.removed.load(Ordering::Acquire) {
            return true;
        }
        self.tenure.during(|| self.write_kill()).unwrap_or(true)
    }

    /// Writes `cgroup.kill`, where the kernel has it; whether it was
    /// written.
    fn write_kill(&self) -> bool {
        if !self.has_kill {
            return false;
        }
        self.killed.store(true, Ordering::Release);
        // The one way to end the tree that needs a single descriptor:
        // at the descriptor limit it gets the reserve's. The lock that
        // `dir()` takes on the way blocks, where the reserve's is only
        // tried: it is held just to clone an `Arc`, and the copy in a
        // child forked without exec is disowned when dropped, so its
        // teardown never gets here (see `disown`).
        let written =
            crate::sys::fault::io_check(crate::sys::fault::Point::CgroupKill).and_then(|()| {
                super::super::reserve::with_reserve(|| self.write_file("cgroup.kill", b"1"))
            });
        match written {
            Ok(()) => true,
            // `cgroup.kill` refused (EBUSY, ENOMEM, ...): kill each
            // member instead, so a failed write never leaves them
            // running in a cgroup the reaper then waits on forever.
            Err(e) => {
                tracing::debug!(target: "pkit", error = %e, "cgroup.kill failed; killing each member instead");
                false
            }
        }
    }

    /// Sends `sig` to every process in the cgroup and below it, each
    /// through a pidfd checked to name a member (see
    /// [`subtree::member_pidfds_but`]), but those in a nested pkit's group for
    /// a signal `pkit run` relays (see [`subtree::Reach::of`]). The cgroup is frozen meanwhile so no
    /// member forks an unsignalled child (signals queue while frozen and
    /// act on thaw), unless `user_frozen` (it is frozen already and stays
    /// so; or a SIGCONT's pass, which needs no freeze and so makes none
    /// and undoes none: see `Container::signal_by`); the kernel's confirmation of the freeze is waited for, in a
    /// blocking `poll`, until `by` (an async caller froze it ahead and
    /// awaited the confirmation until `by`: see `Container::signal_async`;
    /// it finds it at once, or is past `by` and waits no more). A freeze
    /// that fails (a task stuck in uninterruptible sleep keeps the kernel
    /// from reporting `frozen 1`) never leaves the cgroup frozen: it is
    /// thawed, and the signal still goes to every member listed. Every
    /// member is tried; the first error is reported after.
    ///
    /// SIGKILL kills without `cgroup.kill`: in repeated passes while new
    /// members appear, by number where no descriptor is free, and the
    /// cgroup is marked killed. `user_frozen`: the user suspended the
    /// group, so it is already frozen and stays frozen (a frozen task still
    /// dies of SIGKILL). Used on kernels before 5.14, and for a cgroup that
    /// stays in use: some kernels (seen on 6.18) SIGKILL every child later
    /// placed with `clone3(CLONE_INTO_CGROUP)` into a cgroup that was ever
    /// written `cgroup.kill`, because the fork path compares the target
    /// cgroup's kill sequence with the parent's.
    ///
    /// `first` runs once the cgroup is frozen, before any member is
    /// signalled (at once when there is nothing to freeze: the directory
    /// is gone or the group's tenure is over). The group's own signals to
    /// the processes it started go there: sent one by one before the
    /// freeze, the head of a pipeline died first and the next stage read
    /// end of file and exited 0 before its own SIGKILL came.
    pub(crate) fn signal_each_after_by(
        &self,
        sig: i32,
        user_frozen: bool,
        by: Instant,
        first: impl FnOnce(),
    ) -> io::Result<()> {
        let mut first = Some(first);
        let done = match self.removed.load(Ordering::Acquire) {
            true => None,
            false => self
                .tenure
                .during(|| self.signal_each_now(sig, user_frozen, by, &mut first)),
        };
        if let Some(f) = first.take() {
            f();
        }
        done.unwrap_or(Ok(()))
    }

    /// [`signal_each_after_by`](Self::signal_each_after_by)'s pass, inside the
    /// group's tenure; the freeze's confirmation is waited for until `by`.
    pub(super) fn signal_each_now(
        &self,
        sig: i32,
        user_frozen: bool,
        by: Instant,
        first: &mut Option<impl FnOnce()>,
    ) -> io::Result<()> {
        let kill = sig == libc::SIGKILL;
        if kill {
            self.killed.store(true, Ordering::Release);
        }
        let pass = self.while_frozen(user_frozen, by, || {
            if let Some(f) = first.take() {
                f();
            }
            match kill {
                true => subtree::kill_members(&self.path),
                false => subtree::signal_members(&self.path, sig).map(drop),
            }
        });
        let pass = match kill {
            true => subtree::at_the_limit(pass, &self.path, user_frozen, |on| self.freeze(on)),
            false => pass,
        };
        subtree::unless_removed(&self.path, pass)
    }

    /// Runs `pass` (a signal pass over the members) with the cgroup frozen
    /// (the kernel's confirmation waited for until `by`), then thaws it,
    /// unless `user_frozen` (frozen already, and it stays so). A failed
    /// freeze is no reason to skip the pass; the thaw undoes a half-done
    /// one. A thaw that finds the directory gone (`ENOENT`, or
    /// `ENODEV` on the file opened just before the removal) is no error:
    /// the kernel removes only an empty cgroup (the group's own teardown
    /// may, once the members just killed are reaped), so nothing is left
    /// frozen. The pass's error comes first.
    pub(super) fn while_frozen(
        &self,
        user_frozen: bool,
        by: Instant,
        pass: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        if user_frozen {
            return pass();
        }
        let _ = self.freeze_until(true, by);
        let result = pass();
        // The thaw's one descriptor, at the limit (the pass may have taken
        // the last), is the reserve's: a failed thaw left the group frozen.
        let thawed = match super::super::reserve::with_reserve(|| self.freeze(false)) {
            Err(e) if subtree::removed_under(&self.path, &e) => Ok(()),
            other => other,
        };
        result.and(thawed)
    }

    /// Freezes (`true`) or thaws the cgroup and waits for the kernel to
    /// confirm a freeze (`frozen 1` in `cgroup.events`). Only inside the
    /// group's tenure (see [`while_frozen`](Self::while_frozen)'s callers).
    ///
    /// The wait re-reads `cgroup.events` after naps of 10 ms doubling up
    /// to [`RECHECK`], not only on its change notification: a cgroup
    /// emptied and removed by a close on another thread (its notification
    /// held back by the kernel's 10 ms spacing, then dropped with the
    /// removed file) sends none, and the signal pass waited out the whole
    /// 5 s before (a `signal` racing a `close`).
    pub(super) fn freeze(&self, on: bool) -> io::Result<()> {
        self.freeze_until(on, Instant::now() + FREEZE_WAIT)
    }

    /// [`freeze`](Self::freeze), the confirmation waited for until
    /// `deadline` (none is, past it: a failed freeze at once).
    fn freeze_until(&self, on: bool, deadline: Instant) -> io::Result<()> {
        if !on {
            crate::sys::fault::io_check(crate::sys::fault::Point::Thaw)?;
        }
        self.write_file("cgroup.freeze", if on { b"1" } else { b"0" })?;
        if on {
            crate::sys::fault::io_check(crate::sys::fault::Point::Freeze)?;
            let events = self.open_events()?;
            let mut nap = Duration::from_millis(10);
            loop {
                let ev = read_events(&events)?;
                if ev.frozen || !ev.populated {
                    return Ok(());
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "cgroup did not report frozen in time",
                    ));
                }
                if wait_event_change(&events, deadline.min(now + nap))? {
                    nap = Duration::from_millis(10);
                } else {
                    nap = (nap * 2).min(RECHECK);
                }
            }
        }
        Ok(())
    }

    /// Waits (asynchronously), after [`write_freeze`](Self::write_freeze)
    /// froze the cgroup, until the kernel reports `frozen 1`, or the cgroup
    /// is empty, or gone, or thawed again (`cgroup.freeze` reads 0: a resume came since, and the
    /// freeze is no longer this call's to wait for).
    ///
    /// A cgroup removed under the wait (a close on another task ended the
    /// tree and removed the directory: `ENOENT`, or `ENODEV` from the
    /// `cgroup.events` opened before) had nothing left to freeze: `Ok`.
    /// The kernel sends no change notification for a removal, so the
    /// notification is the wake-up and a re-read every [`RECHECK`] the
    /// safety net, as for [`wait_empty`](Self::wait_empty): the wait hung
    /// for good on a removed cgroup before.
    pub(crate) async fn wait_frozen(&self) -> io::Result<()> {
        let gone = |e: &io::Error| subtree::removed_under(self.path(), e);
        let events = match self.open_events() {
            Err(e) if gone(&e) => return Ok(()),
            other => other?,
        };
        let afd = super::super::register(events, tokio::io::Interest::PRIORITY)?;
        loop {
            match read_events(afd.get_ref()) {
                Ok(ev) if ev.frozen || !ev.populated => return Ok(()),
                Ok(_) => {}
                Err(e) if gone(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
            if self
                .read_attr("cgroup.freeze")
                .is_none_or(|v| v.trim() != "1")
            {
                return Ok(());
            }
            let ready = afd.ready(tokio::io::Interest::PRIORITY);
            if let Ok(guard) = tokio::time::timeout(RECHECK, ready).await {
                guard?.clear_ready();
            }
        }
    }
}
