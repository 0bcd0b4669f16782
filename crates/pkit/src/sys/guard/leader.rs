//! A process group's registration sent by its leader itself, before it
//! runs any program (Linux): [`LeaderRegistration`].

use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::Ordering;

use super::owner::{attach_fd, Guard, Ticket, NEXT_ID};
use super::wire::{Msg, FLAG_SESSION, OP_PGROUP, SEND_FLAGS};

/// A process group's registration made before its leader exists: booked
/// here, then sent by the leader itself between its `setpgid` and its
/// `execve` (see [`LeaderRegistration::send_from_leader`]), so the guard
/// holds the group before any program of it runs. An owner SIGKILLed at
/// any point leaves nothing: the leader (a vfork-style child) holds a copy
/// of the owner's end of the socket until it execs, so the guard can't see
/// the owner's death before the leader has sent it, or has died.
pub(crate) struct LeaderRegistration {
    id: u64,
    sock: RawFd,
    msg: Msg,
    /// -1: not sent by the leader (a forked leader, which shares no memory
    /// with us, or a leader that failed before); 0: sent; else the errno.
    sent: std::sync::atomic::AtomicI32,
}

impl Guard {
    /// Books a registration for a process group whose leader is about to
    /// be spawned; `session`: the leader will lead a session of its own (a
    /// pty), which the guard then sweeps too ([`FLAG_SESSION`]).
    pub(crate) fn prepare_leader(&self, session: bool) -> Result<LeaderRegistration, String> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.book(id, "process group (starting)".into(), 1)?;
        let mut msg = Msg::EMPTY;
        msg.op = OP_PGROUP;
        msg.id = id;
        msg.flags = if session { FLAG_SESSION } else { 0 };
        Ok(LeaderRegistration {
            id,
            sock: self.sock.as_raw_fd(),
            msg,
            sent: std::sync::atomic::AtomicI32::new(-1),
        })
    }

    /// After the leader started: its ticket. If the leader could not send
    /// the registration itself, it is sent from here (a short window, as
    /// before the leader sent it: see `send_from_leader`).
    pub(crate) fn complete_leader(
        &self,
        reg: LeaderRegistration,
        leader: BorrowedFd<'_>,
        pgid: i32,
    ) -> Result<Ticket, String> {
        let by_leader = reg.sent.load(Ordering::Acquire) == 0;
        {
            let mut state = self.lock();
            if let Some(entry) = state.live.get_mut(&reg.id) {
                entry.what = format!("process group {pgid}");
            }
            if by_leader {
                // The leader's message counts towards the next ring.
                self.count_sent(&mut state);
            }
        }
        if by_leader {
            return Ok(Ticket(reg.id));
        }
        let mut m = reg.msg;
        m.pgid = pgid;
        if let Err(e) = self.deliver(&[m], Some(leader)) {
            self.unbook(reg.id);
            return Err(e);
        }
        Ok(Ticket(reg.id))
    }

    /// The leader's spawn failed: drops the registration, which the leader
    /// may have sent before it failed.
    pub(crate) fn abandon_leader(&self, reg: LeaderRegistration) {
        if reg.sent.load(Ordering::Acquire) == 0 {
            self.count_sent(&mut self.lock());
            self.unregister(Ticket(reg.id));
        } else {
            self.unbook(reg.id);
        }
    }
}

impl LeaderRegistration {
    /// Sends the registration from the leader: its own pidfd and its pid
    /// (its process group's id, as it leads the group by now), without
    /// blocking. The outcome goes to `sent`; a failure is left to
    /// [`Guard::complete_leader`].
    ///
    /// # Safety
    /// Only in a vfork-style child (sharing the parent's memory, which keeps
    /// `self` alive) after it became its process group's leader, before
    /// `execve`: raw system calls on memory prepared before the clone, no
    /// allocation, no lock.
    pub(crate) unsafe fn send_from_leader(&self) {
        // rustix's raw system calls: no allocation, no lock, no libc state
        // (the pid is asked of the kernel, never a copy the parent cached).
        let pid = rustix::process::getpid();
        let pidfd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                self.sent.store(e.raw_os_error(), Ordering::Release);
                return;
            }
        };
        let fd = pidfd.as_raw_fd();
        let mut msg = self.msg;
        msg.pgid = pid.as_raw_nonzero().get();
        // Raw: in the vfork child: the message and its fd's control block built by hand on the
        // stack, no allocation.
        let mut iov = libc::iovec {
            iov_base: (&mut msg as *mut Msg).cast(),
            iov_len: size_of::<Msg>(),
        };
        let mut control = [0u64; 4];
        let mut mh: libc::msghdr = MaybeUninit::zeroed().assume_init();
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        attach_fd(&mut mh, &mut control, fd);
        let result = loop {
            let n = libc::sendmsg(self.sock, &mh, SEND_FLAGS);
            if n == size_of::<Msg>() as isize {
                break 0;
            }
            let errno = *libc::__errno_location();
            if n < 0 && errno == libc::EINTR {
                continue;
            }
            break if n < 0 { errno.max(1) } else { libc::EIO };
        };
        drop(pidfd);
        self.sent.store(result, Ordering::Release);
    }
}
