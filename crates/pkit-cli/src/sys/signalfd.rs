//! Caught signals with their sender on Linux: a signalfd for the set the
//! CLI blocked in every thread (`unix.rs`'s `block_caught`).

use std::io;
use std::mem::offset_of;
use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use super::Received;

/// A signalfd for a blocked set: its signals are read here instead.
pub struct SignalFd {
    fd: AsyncFd<OwnedFd>,
    parent: super::parent::Parent,
}

impl SignalFd {
    /// A signalfd for `set`. Needs a Tokio runtime.
    pub fn new(set: libc::sigset_t) -> io::Result<SignalFd> {
        // Raw: rustix has no signalfd.
        // SAFETY: a new signalfd (-1) for an initialised set.
        let raw = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an OwnedFd stays open and keeps its fd until dropped,
        // which happens with the AsyncFd.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(SignalFd {
            fd,
            parent: super::parent::Parent::default(),
        })
    }

    /// The next signal.
    pub async fn recv(&mut self) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            const SIZE: usize = std::mem::size_of::<libc::signalfd_siginfo>();
            let mut buf = [0u8; SIZE];
            let n = match rustix::io::read(self.fd.get_ref(), &mut buf) {
                Ok(n) => n,
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    guard.clear_ready();
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if n != SIZE {
                continue;
            }
            // A whole signalfd_siginfo: the two 32-bit fields read at
            // their offsets in it.
            let field =
                |at: usize| i32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
            let from_kernel =
                field(offset_of!(libc::signalfd_siginfo, ssi_code)) == libc::SI_KERNEL;
            let sender = field(offset_of!(libc::signalfd_siginfo, ssi_pid));
            let ppid = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
            return Ok(Received {
                signo: field(offset_of!(libc::signalfd_siginfo, ssi_signo)),
                from_kernel,
                from_parent: !from_kernel
                    && sender != 0
                    && sender == ppid
                    && self.parent.may_relay(ppid),
            });
        }
    }
}
