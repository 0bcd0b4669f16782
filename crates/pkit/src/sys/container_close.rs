//! Ending a group's container: closing it (waiting until the tree is
//! gone), the synchronous teardown of `Drop`, and handing an emptied cgroup
//! to the pool of spares.

use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;

#[cfg(target_os = "linux")]
use super::container::GuardLink;
use super::container::{Container, Kind};
#[cfg(target_os = "linux")]
use super::guard;
#[cfg(target_os = "linux")]
use super::linux::cgroup::Cgroup;
#[cfg(target_os = "linux")]
use super::linux::reaper::AfterRemoval;

impl Container {
    /// Hands an emptied cgroup to the pool of spares, with its guard
    /// registration, or removes it; false when it isn't empty.
    #[cfg(target_os = "linux")]
    fn retire(&self, cg: &Cgroup) -> bool {
        let mut link = self.guard_link();
        let ticket = take_ticket(&mut link);
        match cg.retire_if_empty(ticket) {
            Ok(left) => {
                // Pooled: the spare keeps the registration. Removed: done.
                if let Some(t) = left {
                    if let Ok(g) = guard::get() {
                        g.unregister(t);
                    }
                }
                true
            }
            Err(ticket) => {
                if let Some(t) = ticket {
                    *link = GuardLink::On(t);
                }
                false
            }
        }
    }

    /// Takes the cgroup's guard registration, to be dropped only once its
    /// directories are removed (see `Cgroup::remove_later`): an owner
    /// killed before that leaves them to its guard, never behind.
    #[cfg(target_os = "linux")]
    fn unregister_when_removed(&self) -> Option<AfterRemoval> {
        // The guard is looked up when called: a child forked without
        // `exec` that ends up running this must not write to its parent's
        // guard.
        let ticket = take_ticket(&mut self.guard_link())?;
        Some(Box::new(move || {
            if let Ok(g) = guard::get() {
                g.unregister(ticket);
            }
        }))
    }

    /// [`kill`](Self::kill) for an async caller (a close): a cgroup without
    /// `cgroup.kill` (Linux before 5.14), or whose `cgroup.kill` write is
    /// refused, is killed member by member with its freeze awaited (see
    /// [`signal_async`](Self::signal_async)), not waited for in a blocking
    /// `poll` of up to 5 s on the thread that polls the close.
    async fn kill_async(&self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Kind::Cgroup(cg) = &self.kind {
            let atomic = self.counting_kill(|| {
                let done = cg.kill_atomic();
                if done {
                    self.signal_started(cg, libc::SIGKILL);
                }
                done
            });
            return match atomic {
                true => Ok(()),
                false => self.signal_async(libc::SIGKILL).await,
            };
        }
        self.kill()
    }

    /// Kills the tree, waits (asynchronously) until it is gone, and removes
    /// the container. The container can't be used afterwards.
    ///
    /// A process group is waited for too: after `killpg`, until no member
    /// is left running (zombies awaiting their parent's or init's reaping
    /// count as gone; see [`wait_pgroup_gone`](Self::wait_pgroup_gone)), so
    /// a verb that returns after a timeout or a cancellation leaves no
    /// process of its tree running, in either mechanism.
    ///
    /// An emptied, uncapped cgroup is kept for the next group instead of
    /// removed (see `Cgroup::retire_if_empty`).
    ///
    /// Cancelling the returned future, or an error part-way, leaves the
    /// teardown to a later `close` or to `Drop` (see `finished`).
    pub(crate) async fn close(&self) -> io::Result<()> {
        if self.finished.load(Ordering::Acquire) {
            return self.closed_already().await;
        }
        // One close at a time; the next finds the teardown finished, or
        // takes over where a cancelled or failed one stopped. The usual
        // end of a run, its tree gone already, is done here without a
        // wait; only what can wait is boxed (a one-shot run's future holds
        // this one: 816 bytes before, issue 20).
        let Ok(one) = self.closing.try_lock() else {
            return Box::pin(self.close_waiting(None)).await;
        };
        if self.finished.load(Ordering::Acquire) {
            drop(one);
            return self.closed_already().await;
        }
        let placing = self.refuse_starts();
        let done = match &self.kind {
            _ if placing => Done::Nothing,
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => match self.retire_now(cg) {
                Some(false) => return Ok(()),
                Some(true) => Done::Retired,
                None => Done::RetireTried,
            },
            Kind::Pgroup { leader, .. } => {
                self.kill()?;
                let ended_with_leader = self.pgroup_ended_with_leader();
                if ended_with_leader && self.former_leaders().is_empty() {
                    self.finish_pgroup(leader);
                    return Ok(());
                }
                Done::Killed { ended_with_leader }
            }
        };
        let begun = Begun {
            _one: one,
            placing,
            done,
        };
        Box::pin(self.close_waiting(Some(begun))).await
    }

    /// A close of a container whose teardown is finished: a started
    /// process the teardown killed outside the cgroup (see
    /// `finish_retired`) may still be dying, its close's wait still on or
    /// cancelled. It is waited for, as that close does: a close returns
    /// once the tree is gone, whichever close it is.
    async fn closed_already(&self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if !self.started_running().is_empty() {
            Box::pin(self.wait_started_gone()).await;
        }
        Ok(())
    }

    /// Waits until no process this container started still runs, up to
    /// `CLOSE_WAIT`: those moved out of the cgroup are not waited for by
    /// the cgroup's own wait, and are SIGKILLed through their pidfds.
    #[cfg(target_os = "linux")]
    async fn wait_started_gone(&self) {
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
        let ended = || self.started_running().is_empty();
        super::nap::poll_until(ended, Some(deadline)).await;
    }

    /// Refuses every start that checks from here on; whether one that
    /// checked before was placing a child still (see `close_waiting`).
    fn refuse_starts(&self) -> bool {
        self.torn_down.store(true, Ordering::Release);
        match self.lifecycle.try_write() {
            Ok(_) => false,
            Err(std::sync::TryLockError::Poisoned(_)) => false,
            Err(std::sync::TryLockError::WouldBlock) => true,
        }
    }

    /// The common end of a run: everything has exited already. The
    /// kernel refuses to remove a populated cgroup, so a successful rmdir
    /// proves there is nothing left to kill in it. `Some` when the cgroup
    /// was retired (pooled or removed) and the teardown finished: whether
    /// a started process ran outside it (see `finish_retired`).
    #[cfg(target_os = "linux")]
    fn retire_now(&self, cg: &Cgroup) -> Option<bool> {
        let retired = if self.limits.info.is_empty() {
            self.retire(cg)
        } else {
            cg.remove().is_ok()
        };
        retired.then(|| self.finish_retired(cg))
    }

    /// The end of a teardown whose cgroup is retired. A started process
    /// still running was moved out of the cgroup (by hand, or by another
    /// group's adopt): it is killed through its pidfd, as `Drop` does.
    /// Whether one was.
    #[cfg(target_os = "linux")]
    fn finish_retired(&self, cg: &Cgroup) -> bool {
        let outside = self.started_running();
        for child in &outside {
            let _ = child.signal(libc::SIGKILL);
        }
        for (_, g) in &self.limits.v1 {
            g.remove();
        }
        self.release_guard();
        cg.release_fds();
        self.finished.store(true, Ordering::Release);
        !outside.is_empty()
    }

    /// The end of a process group's teardown, its members gone.
    fn finish_pgroup(&self, leader: &std::sync::Mutex<Option<std::sync::Arc<super::ChildHandle>>>) {
        self.release_guard();
        leader.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.drop_former_leaders();
        self.finished.store(true, Ordering::Release);
    }

    /// The rest of [`close`](Self::close), from where it got without a
    /// wait (`begun`), or from the start when another close held the lock.
    async fn close_waiting(&self, begun: Option<Begun<'_>>) -> io::Result<()> {
        let Begun {
            _one,
            placing,
            done,
        } = match begun {
            Some(begun) => begun,
            None => {
                let one = self.closing.lock().await;
                if self.finished.load(Ordering::Acquire) {
                    drop(one);
                    return self.closed_already().await;
                }
                Begun {
                    _one: one,
                    placing: self.refuse_starts(),
                    done: Done::Nothing,
                }
            }
        };
        // Every start that checks from here on is refused. One that checked
        // before may be placing a child still: the exclusive side of the
        // lifecycle lock waits for it (it is then ended below with the
        // rest). Such a child may be stopped before its `exec`, its start
        // waiting for a SIGCONT that may never come: the tree is killed
        // then, which ends that child (once it is in the container) and so
        // its start, and killed again until the starts have returned: a
        // kill that came before a child was born, or had joined its
        // container, missed it (a close that then only waited for the start
        // waited for ever). A kill of a start that is no start is harmless.
        if placing {
            super::nap::poll_until_async(
                || async {
                    let _ = self.kill_async().await;
                    !matches!(
                        self.lifecycle.try_write(),
                        Err(std::sync::TryLockError::WouldBlock)
                    )
                },
                None,
            )
            .await;
        }
        #[cfg(target_os = "linux")]
        if let Kind::Cgroup(cg) = &self.kind {
            let outside = match done {
                Done::Retired => Some(true),
                Done::RetireTried => None,
                _ => self.retire_now(cg),
            };
            if let Some(outside) = outside {
                // A started process moved out of it, killed there
                // (`finish_retired`), is waited for, as when the
                // directory was removed from outside (below).
                if outside {
                    self.wait_started_gone().await;
                }
                return Ok(());
            }
            if cg.removed_from_outside() {
                // Someone else removed the directory, which the kernel
                // allows only once it is empty: processes moved out of it
                // are no longer the group's. The programs the group
                // started are still pkit's children: they are ended
                // through their pidfds, and waited for.
                self.signal_started(cg, libc::SIGKILL);
                self.wait_started_gone().await;
                self.finish_retired(cg);
                return Ok(());
            }
        }
        if !matches!(done, Done::Killed { .. }) {
            self.kill_async().await?;
        }
        match &self.kind {
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => {
                // A member `cgroup.kill` did not end is killed again,
                // the freeze around that pass awaited (see `wait_killed`).
                cg.wait_killed(|| self.signal_async(libc::SIGKILL)).await?;
                // A started process moved out of the cgroup, killed with
                // it through its pidfd, is not the cgroup's wait's: it may
                // still be dying (freeing a large heap, say).
                self.wait_started_gone().await;
                // Every member was in the v2 cgroup too: the v1 ones are
                // empty now. The tree is gone: a directory that still can't
                // be removed (sub-cgroups made meanwhile by someone outside
                // the group) is the reaper's, never the caller's error.
                let v1 = self.limits.v1.iter().map(|(_, g)| g.path().to_path_buf());
                cg.remove_later(v1.collect(), self.unregister_when_removed());
                cg.release_fds();
                self.finished.store(true, Ordering::Release);
                Ok(())
            }
            Kind::Pgroup { leader, .. } => {
                // SIGKILLed processes exit promptly; the bound only guards
                // against one stuck in uninterruptible sleep.
                let deadline = Instant::now() + CLOSE_WAIT;
                let ended_with_leader = match done {
                    Done::Killed { ended_with_leader } => ended_with_leader,
                    _ => self.pgroup_ended_with_leader(),
                };
                if !ended_with_leader {
                    self.wait_pgroup_gone(deadline).await?;
                }
                self.wait_former_leaders(deadline).await;
                self.finish_pgroup(leader);
                Ok(())
            }
        }
    }

    /// Kills the tree now and cleans up without blocking for long (the
    /// synchronous path, for `Drop`).
    pub(crate) fn teardown_now(&self) {
        self.torn_down.store(true, Ordering::Release);
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        match &self.kind {
            // Emptied already: to the pool of spares, as `close` does (a
            // started process still running is outside it).
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) if self.limits.info.is_empty() && self.retire(cg) => {
                self.signal_started(cg, libc::SIGKILL);
                self.release_guard();
                cg.release_fds();
            }
            #[cfg(target_os = "linux")]
            Kind::Cgroup(cg) => {
                // The cgroup's kill first, as `kill` does: reaching every
                // member at once, where the started processes' SIGKILLs go
                // one by one (before, a `cat` whose upstream they had killed
                // read end of file and exited 0 first).
                let _ = cg.kill();
                self.signal_started(cg, libc::SIGKILL);
                let v1 = self.limits.v1.iter().map(|(_, g)| g.path().to_path_buf());
                // Killed; the guard's registration is dropped once the
                // directories are removed (by the reaper, if they can't be
                // yet): an owner killed meanwhile leaves them to its guard.
                cg.teardown(v1.collect(), self.unregister_when_removed());
                cg.release_fds();
            }
            Kind::Pgroup { leader, .. } => {
                let _ = self.kill();
                // A pty-led group's session, until no job is left that
                // its kill's pass missed (nothing waits here).
                self.sweep_session();
                self.release_guard();
                leader.lock().unwrap_or_else(|e| e.into_inner()).take();
                self.drop_former_leaders();
            }
        }
    }
}

/// How far a [`close`](Container::close) got before its first wait: the
/// rest is `close_waiting`'s.
struct Begun<'a> {
    /// The close's turn (`Container::closing`).
    _one: tokio::sync::MutexGuard<'a, ()>,
    /// A start was placing a child when starts were refused.
    placing: bool,
    done: Done,
}

/// What a close did before its first wait, when no start was placing.
enum Done {
    /// Nothing yet.
    Nothing,
    /// The cgroup's retire was tried: it was not empty.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    RetireTried,
    /// The cgroup was retired, a started process still running outside
    /// it (killed: `finish_retired`), to be waited for.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Retired,
    /// The process group was killed; whether it ended with its leader
    /// (`pgroup_ended_with_leader`).
    Killed { ended_with_leader: bool },
}

/// How long `close` waits for a killed process group to be gone.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Drop for Container {
    fn drop(&mut self) {
        if !self.owner.is_here_confirmed() {
            // A copy in a child the application forked without `exec`:
            // the group is the parent's, which still runs it. Nothing is
            // killed, removed or unregistered; only this copy's
            // descriptors are closed.
            #[cfg(target_os = "linux")]
            if let Kind::Cgroup(cg) = &self.kind {
                cg.disown();
            }
            return;
        }
        // Also after a cancelled or failed close(): only a completed
        // teardown is skipped. The guard is left before the leader (a
        // field) is released.
        self.teardown_now();
        self.release_guard();
    }
}

/// Takes a guard registration out of `link` (which then says released);
/// `None`, `link` untouched, when it has none.
#[cfg(target_os = "linux")]
fn take_ticket(link: &mut GuardLink) -> Option<guard::Ticket> {
    match std::mem::replace(link, GuardLink::Released) {
        GuardLink::On(ticket) => Some(ticket),
        other => {
            *link = other;
            None
        }
    }
}
