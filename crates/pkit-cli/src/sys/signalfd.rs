//! Caught signals with their sender on Linux: a signalfd for the set the
//! CLI blocked in every thread (`unix.rs`'s `block_caught`).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use super::Received;

/// A signalfd for a blocked set: its signals are read here instead.
pub struct SignalFd {
    fd: AsyncFd<OwnedFd>,
}

impl SignalFd {
    /// A signalfd for `set`. Needs a Tokio runtime.
    pub fn new(set: libc::sigset_t) -> io::Result<SignalFd> {
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
        Ok(SignalFd { fd })
    }

    /// The next signal.
    pub async fn recv(&mut self) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut info = MaybeUninit::<libc::signalfd_siginfo>::zeroed();
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reading at most `size` bytes into a buffer of that size.
            let n = unsafe {
                libc::read(
                    self.fd.get_ref().as_raw_fd(),
                    info.as_mut_ptr().cast(),
                    size,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    continue;
                }
                return Err(e);
            }
            if n as usize != size {
                continue;
            }
            // SAFETY: the kernel filled the whole struct.
            let info = unsafe { info.assume_init() };
            return Ok(Received {
                signo: info.ssi_signo as i32,
                from_kernel: info.ssi_code == libc::SI_KERNEL,
            });
        }
    }
}
