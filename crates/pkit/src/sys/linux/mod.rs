//! Linux: the cgroup v2 backend, clone3 spawning, pidfds, `/proc`.

pub(crate) mod birth;
pub(crate) mod cgroup;
pub(crate) mod cgroup_pool;
pub(crate) mod child;
mod clone3;
mod dumpable;
mod events;
pub(crate) mod exits;
pub(crate) mod forked;
pub(crate) mod host;
pub(crate) mod ids_thread;
pub(crate) mod leaf;
pub(crate) mod leaves;
pub(crate) mod names;
pub(crate) mod orphan;
mod pidfd_info;
mod prexec;
pub(crate) mod procfs;
pub(crate) mod reaper;
mod reserve;
pub(crate) mod signal;
pub(crate) mod spawn;
pub(crate) mod spawn_steps;
pub(crate) mod subtree;
pub(crate) mod tenure;
pub(crate) mod v1;

pub(crate) use super::unix::register;

/// A descriptor borrowed by number, for [`register_borrowed`].
#[derive(Debug)]
pub(crate) struct FdNumber(pub(in crate::sys) std::os::fd::RawFd);

impl std::os::fd::AsRawFd for FdNumber {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

/// A registration with the tokio reactor of a descriptor owned elsewhere,
/// which cannot outlive the borrow: dropping it deregisters the descriptor
/// while it is still open.
#[derive(Debug)]
pub(crate) struct Borrowed<'a> {
    afd: tokio::io::unix::AsyncFd<FdNumber>,
    _fd: std::marker::PhantomData<std::os::fd::BorrowedFd<'a>>,
}

impl Borrowed<'_> {
    pub(crate) fn get(&self) -> &tokio::io::unix::AsyncFd<FdNumber> {
        &self.afd
    }
}

/// Registers a descriptor we borrow with the tokio reactor, without the
/// `dup` that [`register`] needs: one system call fewer each way. A
/// descriptor can be registered once at a time: a second registration of
/// the same one fails with `ErrorKind::AlreadyExists` (register a `dup`
/// then).
pub(crate) fn register_borrowed(
    fd: std::os::fd::BorrowedFd<'_>,
    interest: tokio::io::Interest,
) -> std::io::Result<Borrowed<'_>> {
    use std::os::fd::AsRawFd;
    // SAFETY: the returned value holds the borrow of `fd`, so the
    // descriptor stays open, and refers to the same file, for as long as
    // the AsyncFd (dropped with it) lives; `FdNumber::as_raw_fd` always
    // returns that same number.
    let afd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(FdNumber(fd.as_raw_fd()), interest)
    }?;
    Ok(Borrowed {
        afd,
        _fd: std::marker::PhantomData,
    })
}
