//! Freezing a cgroup around a signal or kill pass (see
//! [`Cgroup::while_frozen`]), and a user's freeze (`Group::suspend`),
//! waited for asynchronously.

use std::io;
use std::time::{Duration, Instant};

use super::{read_events, subtree, wait_event_change, Cgroup, RECHECK};

impl Cgroup {
    /// Runs `pass` (a signal pass over the members) with the cgroup frozen,
    /// then thaws it, unless `user_frozen` (frozen already, and it stays
    /// so). A failed freeze is no reason to skip the pass; the thaw undoes
    /// a half-done one. A thaw that finds the directory gone (`ENOENT`, or
    /// `ENODEV` on the file opened just before the removal) is no error:
    /// the kernel removes only an empty cgroup (the group's own teardown
    /// may, once the members just killed are reaped), so nothing is left
    /// frozen. The pass's error comes first.
    pub(super) fn while_frozen(
        &self,
        user_frozen: bool,
        pass: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        if user_frozen {
            return pass();
        }
        let _ = self.freeze(true);
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
    pub(super) fn freeze(&self, on: bool) -> io::Result<()> {
        if !on {
            crate::sys::fault::io_check(crate::sys::fault::Point::Thaw)?;
        }
        self.write_file("cgroup.freeze", if on { b"1" } else { b"0" })?;
        if on {
            let events = self.open_events()?;
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let ev = read_events(&events)?;
                if ev.frozen || !ev.populated {
                    return Ok(());
                }
                if !wait_event_change(&events, deadline)? {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "cgroup did not report frozen within 5 s",
                    ));
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
