//! The owner's side: registering and unregistering groups, never
//! blocking on the guard.

use std::collections::BTreeMap;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::wire::{
    hung_up, peer_closed, recv_reply, remove_msg, wait_writable, Msg, BELL_EVERY, FLAG_HAS_KILL,
    FLAG_MADE, OP_CGROUP, OP_DIR, OP_MADE, OP_PGROUP, OP_QUERY, PATH_LEN, REPLY_COUNT, SEND_BOUND,
    SEND_FLAGS,
};

/// The owner's handle on its guard.
pub(crate) struct Guard {
    /// The process that started it (a forked copy of the owner must not
    /// use the owner's guard: it would die with the owner, not with it).
    pub(super) owner: crate::sys::creator::Creator,
    pub(super) sock: OwnedFd,
    /// The Linux guard's bell (an eventfd): rung, the guard reads its
    /// messages at once rather than at the end of its quiet period (see
    /// `process.rs`). `None`: the portable guard.
    pub(super) bell: Option<OwnedFd>,
    pub(super) pid: i32,
    /// The guard's pidfd (Linux).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(super) pidfd: Option<OwnedFd>,
    pub(super) exact_pgroup: bool,
    /// The portable guard (`portable.rs`): a stream socket, process groups
    /// by number, no descriptors passed.
    pub(super) portable: bool,
    pub(super) cap: usize,
    pub(super) started: Started,
    /// What is registered; held only around non-blocking sends.
    pub(super) state: Mutex<State>,
    /// One query (a message and its reply) at a time.
    pub(super) query_lock: Mutex<()>,
}

/// How the guard was started.
pub(super) enum Started {
    /// This program's executable, run again as the guard (`exec.rs`,
    /// Linux).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Exec,
    /// A fork of the owner, and why the executable was not used.
    Fork(String),
    /// The portable guard: this program's executable run again, which
    /// forks the guard from its fresh image before `main` (so the guard is
    /// nobody's child here) and exits.
    PortableExec,
}

pub(super) struct State {
    /// Registration id -> (description, slots used).
    pub(super) live: BTreeMap<u64, Entry>,
    pub(super) used: usize,
    /// Messages sent since the bell last rang.
    pub(super) unrung: usize,
    /// Set once a send failed: the guard is gone.
    pub(super) failed: Option<String>,
}

/// One registration, as the owner keeps track of it.
pub(super) struct Entry {
    /// `cgroup <dir>`, `process group <pgid>` or `former leader <pid> of a
    /// process group`.
    pub(super) what: String,
    /// Table slots it uses in the guard.
    pub(super) slots: usize,
    /// An emptied cgroup kept for reuse (see `cgroup_pool`): it stays
    /// registered so that the guard removes it if the owner is killed.
    pub(super) spare: bool,
}

/// A group's registration with the guard.
#[derive(Debug)]
pub(crate) struct Ticket(pub(super) u64);

pub(super) static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Guard {
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether this is the portable guard (process groups by number).
    #[cfg(target_os = "linux")]
    pub(crate) fn is_portable(&self) -> bool {
        self.portable
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the guard is still running and not given up on (its
    /// socket not hung up either).
    pub(crate) fn alive(&self) -> bool {
        self.lock().failed.is_none() && !hung_up(self.sock.as_fd()) && self.running()
    }

    /// Whether the guard's process still runs, failed or not (a guard
    /// this process gave up on may still be running): its pidfd where it
    /// has one (Linux), else its end of the socket, closed when it exits.
    pub(crate) fn running(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.pidfd {
            return !crate::sys::linux::child::pidfd_exited_now(fd);
        }
        if self.portable {
            !peer_closed(self.sock.as_fd())
        } else {
            !hung_up(self.sock.as_fd())
        }
    }

    /// Tries to send one message (with an fd attached, for `OP_PGROUP`)
    /// without blocking: `WouldBlock` when the socket's buffer is full.
    fn try_send(&self, msg: &Msg, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
        // Raw: a C struct sent as its bytes with the fd attached by hand, the twin of
        // `send_from_leader`'s in the vfork child (where only raw calls on stack memory may run).
        let mut iov = libc::iovec {
            iov_base: (msg as *const Msg).cast_mut().cast(),
            iov_len: size_of::<Msg>(),
        };
        // Room for one fd's control message, 8-byte aligned.
        let mut control = [0u64; 4];
        // SAFETY: msghdr is a plain C struct; zeroed is a valid empty value.
        let mut mh: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        if let Some(fd) = fd {
            attach_fd(&mut mh, &mut control, fd.as_raw_fd());
        }
        loop {
            // SAFETY: `mh` points at `iov`, `msg` and `control`, all alive
            // for the call; SEND_FLAGS turn a dead peer into EPIPE and a
            // full buffer into EAGAIN.
            let n = unsafe { libc::sendmsg(self.sock.as_raw_fd(), &mh, SEND_FLAGS) };
            if n == size_of::<Msg>() as isize {
                return Ok(());
            }
            if n > 0 && self.portable {
                return self.send_rest(msg, n as usize);
            }
            let e = io::Error::last_os_error();
            if n < 0 && e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if n >= 0 {
                return Err(io::Error::other("a short send"));
            }
            return Err(e);
        }
    }

    /// The rest of a message a stream socket took only part of (the
    /// portable guard's): sent now, waiting up to [`SEND_BOUND`] for room,
    /// since the guard would misread everything after a torn message. A
    /// failure leaves the stream torn, and the guard is then given up.
    fn send_rest(&self, msg: &Msg, mut done: usize) -> io::Result<()> {
        let bytes = (msg as *const Msg).cast::<u8>();
        let deadline = std::time::Instant::now() + SEND_BOUND;
        while done < size_of::<Msg>() {
            // Raw: the rest of the same C struct's bytes, on the same flags as the sendmsg above.
            // SAFETY: sends bytes `done..` of `msg`, alive for the call.
            let n = unsafe {
                libc::send(
                    self.sock.as_raw_fd(),
                    bytes.add(done).cast(),
                    size_of::<Msg>() - done,
                    SEND_FLAGS,
                )
            };
            if n > 0 {
                done += n as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) if wait_writable(self.sock.as_fd(), deadline) => continue,
                _ if n == 0 => return Err(io::Error::other("a message torn in the middle")),
                Some(libc::EAGAIN) => {
                    return Err(io::Error::other(
                        "a message torn in the middle: no room for its rest",
                    ))
                }
                _ => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends `msgs` in order (the fd goes with each; only `OP_PGROUP`
    /// passes one). The owner never blocks on the guard: the state lock is
    /// held only around non-blocking sends, and a guard that does not make
    /// room in its socket within [`SEND_BOUND`] (stopped by a debugger or an
    /// administrator, or wedged) is given up on. It is then marked failed:
    /// groups from then on are created unguarded, which
    /// [`Group::guarded`](crate::Group::guarded), the group's description and
    /// [`GuardStatus::error`] report (and a warning is logged once).
    pub(super) fn deliver(&self, msgs: &[Msg], fd: Option<BorrowedFd<'_>>) -> Result<(), String> {
        let deadline = std::time::Instant::now() + SEND_BOUND;
        let mut sent = 0;
        loop {
            let mut crowded = false;
            {
                let mut state = self.lock();
                if let Some(why) = &state.failed {
                    return Err(why.clone());
                }
                while sent < msgs.len() {
                    match self.try_send(&msgs[sent], fd) {
                        Ok(()) => {
                            sent += 1;
                            self.count_sent(&mut state);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            // The guard makes room once it reads.
                            self.ring(&mut state);
                            break;
                        }
                        // The kernel counts the descriptors in flight on
                        // unix sockets per user, against the sender's
                        // RLIMIT_NOFILE: our pidfds the guard has not read
                        // yet among them (other owners' too, each read
                        // within its guard's quiet period). Rung, the
                        // guard reads ours; the send is tried again.
                        Err(e) if e.raw_os_error() == Some(libc::ETOOMANYREFS) => {
                            self.ring(&mut state);
                            crowded = true;
                            break;
                        }
                        Err(e) => {
                            let why =
                                format!("the owner-death guard (pid {}) is gone: {e}", self.pid);
                            return Err(Self::fail(&mut state, why));
                        }
                    }
                }
                if sent == msgs.len() {
                    return Ok(());
                }
            }
            if crowded {
                if std::time::Instant::now() >= deadline {
                    // The guard is not at fault (it is not marked failed):
                    // this registration alone fails.
                    return Err(format!(
                        "the system refused to pass the owner-death guard (pid {}) another descriptor for {} s: too many descriptors in flight for this user (ETOOMANYREFS; RLIMIT_NOFILE)",
                        self.pid,
                        SEND_BOUND.as_secs()
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            // The lock is released while waiting for room.
            if !wait_writable(self.sock.as_fd(), deadline) {
                let why = format!(
                    "the owner-death guard (pid {}) stopped reading its messages for {} s (stopped or wedged); groups are no longer guarded",
                    self.pid,
                    SEND_BOUND.as_secs()
                );
                let mut state = self.lock();
                if let Some(why) = &state.failed {
                    return Err(why.clone());
                }
                return Err(Self::fail(&mut state, why));
            }
        }
    }

    /// Counts a message sent to the guard: every [`BELL_EVERY`]th rings
    /// the bell, so that a burst never fills the socket. (The guard reads
    /// the others at the end of its quiet period.)
    pub(super) fn count_sent(&self, state: &mut State) {
        state.unrung += 1;
        if state.unrung >= BELL_EVERY {
            self.ring(state);
        }
    }

    /// Rings the guard's bell (if it has one): it reads every message
    /// queued. Never blocks; a failed ring (the guard's socket is then
    /// noticed full or closed by the next send) changes nothing.
    pub(super) fn ring(&self, state: &mut State) {
        state.unrung = 0;
        if let Some(bell) = &self.bell {
            let _ = rustix::io::write(bell, &1u64.to_ne_bytes());
        }
    }

    /// Marks the guard failed (once) and says why.
    fn fail(state: &mut State, why: String) -> String {
        if let Some(earlier) = &state.failed {
            return earlier.clone();
        }
        tracing::warn!(target: "pkit", reason = %why, "owner-death guard lost");
        state.failed = Some(why.clone());
        why
    }

    /// Registers a cgroup (and the v1 directories to remove after it).
    /// `made`: the directory exists, made by this process, with that inode
    /// number (0: unknown); `None`: registered before its `mkdir`, which
    /// [`made`](Self::made) confirms (the guard ends only a directory it
    /// knows its owner made; see `claim.rs`).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn register_cgroup(
        &self,
        dir: &Path,
        has_kill: bool,
        then_remove: &[PathBuf],
        made: Option<u64>,
    ) -> Result<Ticket, String> {
        let mut msgs = Vec::with_capacity(1 + then_remove.len());
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        for (i, path) in std::iter::once(dir)
            .chain(then_remove.iter().map(|p| p.as_path()))
            .enumerate()
        {
            let mut m = Msg::EMPTY;
            m.op = if i == 0 { OP_CGROUP } else { OP_DIR };
            m.flags = if has_kill { FLAG_HAS_KILL } else { 0 };
            if let (0, Some(ino)) = (i, made) {
                m.flags |= FLAG_MADE;
                m.start = ino;
            }
            m.id = id;
            let bytes = path.as_os_str().as_bytes();
            if bytes.len() >= PATH_LEN || bytes.contains(&0) {
                return Err(format!(
                    "the path {} is too long for the owner-death guard",
                    path.display()
                ));
            }
            m.path[..bytes.len()].copy_from_slice(bytes);
            msgs.push(m);
        }
        let what = format!("cgroup {}", dir.display());
        self.book(id, what, msgs.len())?;
        if let Err(e) = self.deliver(&msgs, None) {
            // Whatever part arrived is dropped with the failed guard, or
            // (a failure after the first message) removed by id.
            self.unbook(id);
            let _ = self.deliver(&[remove_msg(id)], None);
            return Err(e);
        }
        Ok(Ticket(id))
    }

    /// Tells the guard that the directory of a cgroup registered before its
    /// `mkdir` now exists, made by this process, with inode number `ino`
    /// (0: unknown, not compared):
    /// sent before any process is put in it. Never blocks for long.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn made(&self, ticket: &Ticket, ino: u64) {
        let mut m = Msg::EMPTY;
        m.op = OP_MADE;
        m.id = ticket.0;
        m.start = ino;
        let _ = self.deliver(&[m], None);
    }

    /// Registers a process group by its leader's pidfd; `session`: the
    /// leader was started leading a session of its own (a pty), which the
    /// guard then sweeps too (`FLAG_SESSION`).
    #[cfg(target_os = "linux")]
    pub(crate) fn register_pgroup(
        &self,
        leader: BorrowedFd<'_>,
        pgid: i32,
        session: bool,
    ) -> Result<Ticket, String> {
        let flags = if session {
            super::wire::FLAG_SESSION
        } else {
            0
        };
        self.register_pgroup_msg(pgid, flags, 0, Some(leader))
    }

    /// Registers a process group by number with the portable guard, which
    /// kills it only while the number is still the group's (see
    /// `portable.rs`): `session` is the session its leader is in (this
    /// process's; a pty session's leader leads its own, numbered by its
    /// pid; `None`: this process's). The leader, our unreaped child, has
    /// its start time read and sent along.
    pub(crate) fn register_pgroup_number(
        &self,
        pgid: i32,
        session: Option<i32>,
    ) -> Result<Ticket, String> {
        // Raw: rustix's getsid panics on the 0 a session led from outside this pid namespace gives
        // (clippy.toml).
        // SAFETY: getsid(2) of this process has no preconditions.
        let session = session.unwrap_or_else(|| unsafe { libc::getsid(0) });
        self.register_pgroup_started(pgid, session, leader_start(pgid))
    }

    /// As [`Guard::register_pgroup_number`], with the leader's start time
    /// given (0: unknown, not compared by the guard).
    pub(super) fn register_pgroup_started(
        &self,
        pgid: i32,
        session: i32,
        start: u64,
    ) -> Result<Ticket, String> {
        self.register_pgroup_msg(pgid, session as u32, start, None)
    }

    /// Books and sends one process group's registration: `flags` (the
    /// portable guard's session id; the Linux guard's `FLAG_SESSION` or 0), `start` (the
    /// portable guard's leader start time; 0 for none) and the leader's
    /// pidfd where the Linux guard holds one.
    fn register_pgroup_msg(
        &self,
        pgid: i32,
        flags: u32,
        start: u64,
        leader: Option<BorrowedFd<'_>>,
    ) -> Result<Ticket, String> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut m = Msg::EMPTY;
        m.op = OP_PGROUP;
        m.id = id;
        m.pgid = pgid;
        m.flags = flags;
        m.start = start;
        self.book(id, format!("process group {pgid}"), 1)?;
        if let Err(e) = self.deliver(&[m], leader) {
            self.unbook(id);
            return Err(e);
        }
        Ok(Ticket(id))
    }

    /// Notes a registration in the owner's bookkeeping, if the table has
    /// room for `slots` more entries.
    pub(super) fn book(&self, id: u64, what: String, slots: usize) -> Result<(), String> {
        let mut state = self.lock();
        if let Some(why) = &state.failed {
            return Err(why.clone());
        }
        if state.used + slots > self.cap {
            return Err(format!(
                "the owner-death guard's table is full ({} entries)",
                self.cap
            ));
        }
        state.used += slots;
        let entry = Entry {
            what,
            slots,
            spare: false,
        };
        state.live.insert(id, entry);
        Ok(())
    }

    pub(super) fn unbook(&self, id: u64) {
        let mut state = self.lock();
        if let Some(entry) = state.live.remove(&id) {
            state.used -= entry.slots;
        }
    }

    /// Unregisters a group (after it has been killed). Never blocks for
    /// long (see [`deliver`](Self::deliver)).
    pub(crate) fn unregister(&self, ticket: Ticket) {
        self.unbook(ticket.0);
        let _ = self.deliver(&[remove_msg(ticket.0)], None);
    }

    /// Changes what the owner's bookkeeping says a registration is (as
    /// [`GuardStatus::groups`](crate::GuardStatus::groups) lists it).
    pub(crate) fn describe(&self, ticket: &Ticket, what: String) {
        if let Some(entry) = self.lock().live.get_mut(&ticket.0) {
            entry.what = what;
        }
    }

    /// Marks a cgroup's registration as a spare directory (or a group's
    /// again). Only the owner's bookkeeping changes: the guard removes a
    /// spare at the owner's death just as it ends a group.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn set_spare(&self, ticket: &Ticket, spare: bool) {
        if let Some(entry) = self.lock().live.get_mut(&ticket.0) {
            entry.spare = spare;
        }
    }

    /// Asks the guard how many entries it holds and how many it lost. The
    /// state lock is not held while waiting for the answer.
    pub(super) fn query(&self) -> Option<(usize, u32)> {
        let _one_at_a_time = self.query_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Drop a reply that arrived after an earlier query gave up.
        while recv_reply(self.sock.as_fd(), 0).is_some() {}
        let mut m = Msg::EMPTY;
        m.op = OP_QUERY;
        self.deliver(&[m], None).ok()?;
        self.ring(&mut self.lock());
        let r = recv_reply(self.sock.as_fd(), 2000)?;
        (r.kind == REPLY_COUNT).then_some((r.count as usize, r.lost))
    }

    pub(super) fn method(&self) -> &'static str {
        if self.portable {
            super::wire::PORTABLE_METHOD
        } else if self.exact_pgroup {
            "signalled through the leader's pidfd (PIDFD_SIGNAL_PROCESS_GROUP): exact"
        } else {
            "killpg after checking through its pidfd that the leader is unreaped (kernel < 6.9)"
        }
    }
}

/// The start time of our unreaped child `pid`, a group's leader, for the
/// portable guard to tell it from a later process given its number (see
/// `start_time.rs`); 0 (not compared) if it can't be read, or if the
/// process of that number is not our child (a `/proc` of another pid
/// namespace, or a child the kernel reaped for us).
fn leader_start(pid: i32) -> u64 {
    match super::start_time::birth(pid) {
        Some(b) if b.parent as u32 == std::process::id() => b.time,
        _ => 0,
    }
}

/// Attaches `fd` to `mh` as an `SCM_RIGHTS` control message written into
/// `control` (room for one fd's, 8-byte aligned). Only pointer arithmetic
/// and writes into `control`: fit for the vfork child too.
pub(crate) fn attach_fd(mh: &mut libc::msghdr, control: &mut [u64; 4], fd: RawFd) {
    // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic; the control buffer is 32
    // bytes, more than CMSG_SPACE(4) (24), and CMSG_FIRSTHDR of a msghdr
    // with that buffer points at its start, so every write stays in it.
    unsafe {
        mh.msg_control = control.as_mut_ptr().cast();
        mh.msg_controllen = libc::CMSG_SPACE(size_of::<RawFd>() as u32) as _;
        let cm = libc::CMSG_FIRSTHDR(mh);
        (*cm).cmsg_level = libc::SOL_SOCKET;
        (*cm).cmsg_type = libc::SCM_RIGHTS;
        (*cm).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<RawFd>(), fd);
    }
}
