//! The spawn options of the portable backend, applied by the trampoline
//! (see `trampoline.rs`) between its go byte and the `execve` of the real
//! program: the only place there that runs pkit's code in the child.
//!
//! The owner sends them right after the go byte, on the gate socket: the
//! length of a block of bytes (a native `u64`, 0 when there are none),
//! the block, then each descriptor to pass through as an `SCM_RIGHTS`
//! message of one byte. The block is a header of [`HEADER`] native `u64`
//! words (which options are set, their values, and the lengths of the
//! lists), then the lists, each starting at a multiple of 8 bytes: the
//! resource limits ([`Rlimit`](crate::sys::Rlimit)s, three words each), the supplementary
//! groups (`gid_t`s), the CPU mask (`c_ulong`s), the passed descriptors'
//! target numbers (two `c_int`s each: the target, and room for the
//! trampoline to note the descriptor it received) and the working
//! directory (its bytes and a NUL), when the trampoline enters it (see
//! `spawn.rs`: after a privilege drop, as Linux's spawner does).
//!
//! The trampoline (`gate_apply.rs`, this file's other half) reads the
//! block into memory it maps itself (it runs
//! before `main` and allocates nothing), moves the gate socket and every
//! received descriptor off the target numbers (close-on-exec), and then
//! applies the options in the order Linux's spawner does
//! (`setup_steps.rs`: the session and its controlling terminal, limits,
//! priority, umask, groups, group id, user id),
//! enters the working directory if it was sent, then places the passed
//! descriptors. A step that fails is sent back as
//! the code [`FailedStep::pack`](crate::sys::step::FailedStep::pack) makes, as Linux's spawner reports it.

// Unused where there is no trampoline (musl).
#![cfg_attr(
    not(any(
        all(target_os = "linux", target_env = "gnu"),
        target_os = "macos",
        target_os = "freebsd"
    )),
    allow(dead_code)
)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use libc::{c_int, gid_t};

use crate::sys::ChildSetup;

/// The go byte's send: a dead trampoline is an EPIPE, not a SIGPIPE.
#[cfg(not(target_os = "macos"))]
const GO_FLAGS: rustix::net::SendFlags = rustix::net::SendFlags::NOSIGNAL;
#[cfg(target_os = "macos")]
const GO_FLAGS: rustix::net::SendFlags = rustix::net::SendFlags::empty();

/// Words in the block's header.
pub(super) const HEADER: usize = 11;
/// Which options the header's first word says are set.
pub(super) const NICE: u64 = 1;
pub(super) const IOPRIO: u64 = 2;
pub(super) const CPUS: u64 = 4;
pub(super) const UMASK: u64 = 8;
pub(super) const GROUPS: u64 = 16;
pub(super) const GID: u64 = 32;
pub(super) const UID: u64 = 64;
pub(super) const SETSID: u64 = 128;
pub(super) const CTTY: u64 = 256;
/// The largest block a trampoline accepts (a longer one is malformed).
pub(super) const MAX_BLOCK: u64 = 64 << 20;

/// Appends to `block` the block `setup` and the working directory `cwd`
/// (when the trampoline enters it) are sent as (nothing when they ask for
/// nothing). Its lists' 8-byte alignment counts from where it starts.
fn encode_into(block: &mut Vec<u8>, setup: &ChildSetup, cwd: Option<&CStr>) {
    let base = block.len();
    let s = setup.steps();
    let keep = &setup.keep;
    let flag = |set: bool, bit: u64| if set { bit } else { 0 };
    let flags = flag(s.nice.is_some(), NICE)
        | flag(s.ioprio.is_some(), IOPRIO)
        | flag(s.cpus.is_some(), CPUS)
        | flag(s.umask.is_some(), UMASK)
        | flag(s.groups.is_some(), GROUPS)
        | flag(s.gid.is_some(), GID)
        | flag(s.uid.is_some(), UID)
        | flag(setup.setsid, SETSID)
        | flag(setup.ctty, CTTY);
    if flags == 0 && s.rlimits.is_empty() && keep.is_empty() && cwd.is_none() {
        return;
    }
    let groups = s.groups.unwrap_or_default();
    // FreeBSD before 15.0 and macOS keep the effective group id in the
    // same array as the supplementary groups, as its first entry: their
    // setgroups(2) copies the list over that array, so `list[0]` becomes
    // the effective group id and only the rest the supplementary groups.
    // Sent as it is, a list would change the child's effective gid to its
    // first entry, and lose that group once the gid option overwrote the
    // slot. So the gid the child is to have (the gid option's, else the
    // one it inherits) goes first: the effective gid stays what the
    // options say, and the supplementary groups are the whole list. A
    // setgroups(2) of FreeBSD 15 or later (the symbol a binary built there
    // links) sets the supplementary groups only: there the list also holds
    // the child's own effective gid, which grants nothing that gid doesn't.
    // Not on Linux, where it would add a group (root's, for a root owner
    // without a gid option) to the child's list. An empty list (clearing)
    // is sent as it is on FreeBSD (the old setgroups(2) keeps the
    // effective gid for it); macOS's makes an empty list a list of gid 0
    // alone, so there it is sent as the effective gid alone.
    #[cfg(any(target_os = "freebsd", target_os = "macos"))]
    let groups = &match s.groups {
        Some(_) => egid_first(
            groups,
            s.gid.unwrap_or_else(|| rustix::process::getegid().as_raw()),
        ),
        None => Vec::new(),
    }[..];
    let cpus = s.cpus.unwrap_or_default();
    let header: [u64; HEADER] = [
        flags,
        s.nice.unwrap_or(0) as i64 as u64,
        s.ioprio.unwrap_or(0) as i64 as u64,
        u64::from(s.umask.unwrap_or(0)),
        u64::from(s.gid.unwrap_or(0)),
        u64::from(s.uid.unwrap_or(0)),
        s.rlimits.len() as u64,
        groups.len() as u64,
        cpus.len() as u64,
        keep.len() as u64,
        cwd.map_or(0, |d| d.to_bytes_with_nul().len() as u64),
    ];
    for word in header {
        block.extend_from_slice(&word.to_ne_bytes());
    }
    for l in s.rlimits {
        for word in [l.resource as u64, l.soft, l.hard] {
            block.extend_from_slice(&word.to_ne_bytes());
        }
    }
    let pad =
        |block: &mut Vec<u8>| block.resize(base + (block.len() - base).next_multiple_of(8), 0);
    for g in groups {
        block.extend_from_slice(&g.to_ne_bytes());
    }
    pad(block);
    for w in cpus {
        block.extend_from_slice(&w.to_ne_bytes());
    }
    pad(block);
    for &(_, target) in keep {
        block.extend_from_slice(&c_int::from(target).to_ne_bytes());
        block.extend_from_slice(&(-1 as c_int).to_ne_bytes());
    }
    if let Some(dir) = cwd {
        block.extend_from_slice(dir.to_bytes_with_nul());
        pad(block);
    }
}

/// `list` with `egid` in front, for the setgroups(2) of FreeBSD and macOS
/// (see [`encode_into`]); an empty list stays empty, but on macOS, where
/// it is `egid` alone.
#[cfg_attr(not(any(target_os = "freebsd", target_os = "macos")), allow(dead_code))]
fn egid_first(list: &[gid_t], egid: gid_t) -> Vec<gid_t> {
    match list {
        [] if cfg!(target_os = "macos") => vec![egid],
        [] => Vec::new(),
        list => std::iter::once(egid).chain(list.iter().copied()).collect(),
    }
}

/// Sends the go byte, `setup` and `cwd` (see the module docs) on the
/// owner's end of a gate socket.
pub(crate) fn send_go(
    sock: &OwnedFd,
    go: u8,
    setup: &ChildSetup,
    cwd: Option<&CStr>,
) -> io::Result<()> {
    // The go byte, the block's length (filled in after) and the block,
    // written in place: one buffer, one copy of the options.
    let mut head = vec![go];
    head.extend_from_slice(&0u64.to_ne_bytes());
    encode_into(&mut head, setup, cwd);
    let len = (head.len() - 1 - 8) as u64;
    head[1..9].copy_from_slice(&len.to_ne_bytes());
    let mut sent = 0;
    while sent < head.len() {
        match rustix::net::send(sock, &head[sent..], GO_FLAGS) {
            Ok(n) => sent += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for (fd, _) in &setup.keep {
        send_fd(sock.as_raw_fd(), 0, fd.as_raw_fd())?;
    }
    Ok(())
}

/// The byte `tag` carrying `fd` (`SCM_RIGHTS`) on the gate socket
/// `sock`: the owner's passed descriptors, and the trampoline's exec
/// report pipe ([`EXEC_PIPE`]; it allocates nothing).
pub(super) fn send_fd(sock: RawFd, tag: u8, fd: RawFd) -> io::Result<()> {
    let mut byte = [tag];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 4];
    // SAFETY: a zeroed msghdr is a valid empty one; the iovec and control
    // buffer it points at outlive the sendmsg call; `fd` is open (owned by
    // the setup) until the call returns, and the kernel copies it.
    unsafe {
        let mut mh: libc::msghdr = std::mem::zeroed();
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        crate::sys::guard::attach_fd(&mut mh, &mut control, fd);
        loop {
            let n = libc::sendmsg(sock, &mh, GO_FLAGS.bits() as _);
            if n == 1 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if n < 0 && e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(if n < 0 {
                e
            } else {
                io::ErrorKind::WriteZero.into()
            });
        }
    }
}

/// The trampoline's report after the go byte, on the gate: this byte
/// carrying the read end of a close-on-exec pipe that only the trampoline
/// ever held the write end of (so no copy of the owner can keep it open):
/// end of file there is the exec done, 4 bytes a failed exec's code
/// ([`FailedStep::pack`](crate::sys::step::FailedStep::pack)).
pub(super) const EXEC_PIPE: u8 = b'x';
/// Or this byte and the 4 bytes of a failed step's code.
pub(super) const FAILED: u8 = b'f';

/// What the trampoline reported after the go byte.
pub(super) enum Report {
    /// The exec report pipe's read end ([`EXEC_PIPE`]).
    Pipe(OwnedFd),
    /// A failed step's code ([`FAILED`]).
    Failed(c_int),
    /// The pipe was sent, but could not be received here.
    Lost(io::Error),
    /// Nothing, or no report of this version: the trampoline ended.
    Closed,
}

/// Waits until the gate socket `sock` has something to read, or the
/// trampoline `pid` (our unreaped child) has ended with nothing left to
/// read; whether there is something. Not end of file alone: a copy of
/// the owner forked (without exec) while the trampoline's end was open in
/// the owner holds that end as long as it lives.
fn readable(sock: &OwnedFd, pid: c_int) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    // How often the trampoline's end is checked for while nothing comes.
    let every = Timespec {
        tv_sec: 0,
        tv_nsec: 50_000_000,
    };
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut ended = false;
    loop {
        let mut fds = [PollFd::new(sock, PollFlags::IN)];
        match poll(&mut fds, Some(if ended { &zero } else { &every })) {
            Ok(n) if n > 0 => return true,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return true,
            Ok(_) if ended => return false,
            // Ended: one more look, for what it sent before it ended.
            Ok(_) => ended = trampoline_ended(pid),
        }
    }
}

/// Whether our unreaped child `pid` has ended (or is no longer ours to
/// wait for).
#[cfg(target_os = "openbsd")]
fn trampoline_ended(pid: c_int) -> bool {
    !matches!(super::waitid::peek_exit(pid), Ok(None))
}

/// Whether our unreaped child `pid` has ended (or is no longer ours to
/// wait for).
#[cfg(not(target_os = "openbsd"))]
fn trampoline_ended(pid: c_int) -> bool {
    use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
    let Some(pid) = Pid::from_raw(pid) else {
        return true;
    };
    // Not reaped (NOWAIT): the caller reaps it.
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    !matches!(waitid(WaitId::Pid(pid), options), Ok(None))
}

/// Fills `buf` from the gate socket of the trampoline `pid`: the bytes
/// read before end of file or the trampoline's end ([`readable`]).
pub(super) fn receive_all(sock: &OwnedFd, pid: c_int, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() && readable(sock, pid) {
        match rustix::net::recv(sock, &mut buf[got..], rustix::net::RecvFlags::empty()) {
            Ok((_, n)) if n > 0 => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            _ => break,
        }
    }
    got
}

/// Receives the trampoline's report after the go byte ([`EXEC_PIPE`] or
/// [`FAILED`]).
pub(super) fn receive_report(sock: &OwnedFd, pid: c_int) -> Report {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::mem::MaybeUninit;
    if !readable(sock, pid) {
        return Report::Closed;
    }
    let mut tag = [0u8];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    // Close-on-exec at once where the kernel can (not on macOS, where
    // pkit's own spawns close every descriptor they don't place anyway).
    #[cfg(not(target_os = "macos"))]
    let flags = RecvFlags::CMSG_CLOEXEC;
    #[cfg(target_os = "macos")]
    let flags = RecvFlags::empty();
    let got = loop {
        let mut iov = [io::IoSliceMut::new(&mut tag)];
        match recvmsg(sock, &mut iov, &mut control, flags) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other,
        }
    };
    let truncated = match got {
        Ok(m) if m.bytes == 1 => m.flags.contains(rustix::net::ReturnFlags::CTRUNC),
        _ => return Report::Closed,
    };
    let mut pipe = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message {
            pipe = pipe.or_else(|| fds.next());
        }
    }
    match (tag[0], pipe) {
        (EXEC_PIPE, Some(fd)) => {
            #[cfg(target_os = "macos")]
            let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
            Report::Pipe(fd)
        }
        (EXEC_PIPE, None) if truncated => Report::Lost(io::Error::from_raw_os_error(libc::EMFILE)),
        (EXEC_PIPE, None) => Report::Lost(io::Error::from_raw_os_error(libc::EBADMSG)),
        (FAILED, _) => {
            let mut code = [0u8; 4];
            match receive_all(sock, pid, &mut code) {
                4 => Report::Failed(c_int::from_ne_bytes(code)),
                _ => Report::Closed,
            }
        }
        _ => Report::Closed,
    }
}

/// Reads the exec report pipe to its end: the code of a failed exec, or
/// `Ok(None)` when the exec was done (or the trampoline ended without a
/// word, which its exit status then says).
pub(super) fn read_exec_report(pipe: &OwnedFd) -> io::Result<Option<c_int>> {
    let mut code = [0u8; 4];
    let mut got = 0;
    while got < code.len() {
        match rustix::io::read(pipe, &mut code[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok((got == code.len()).then(|| c_int::from_ne_bytes(code)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trampoline that ends while a copy of the owner holds its end of
    /// the gate (here: the test's own copy of it): the owner's read takes
    /// what it wrote before its end and returns, not waiting for an end of
    /// file the copy holds off. (Before, the owner's read was a blocking
    /// `recv` to end of file: it never returned.)
    #[test]
    fn the_owners_read_ends_with_the_trampoline_whoever_holds_its_end() {
        use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
        let (owner, end) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let copy = end.try_clone().unwrap();
        let mut child = std::process::Command::new("printf")
            .arg("ab")
            .stdout(std::process::Stdio::from(end))
            .spawn()
            .unwrap();
        let mut buf = [0u8; 4];
        let got = receive_all(&owner, child.id() as c_int, &mut buf);
        assert_eq!(&buf[..got], b"ab");
        child.wait().unwrap();
        drop(copy);
    }

    /// FreeBSD's and macOS's list (see `encode_into`): the effective gid
    /// first; an empty (clearing) list untouched, but the gid alone on
    /// macOS.
    #[test]
    fn the_effective_gid_goes_first_in_a_list_that_has_groups() {
        assert_eq!(egid_first(&[7, 8], 5), vec![5, 7, 8]);
        let cleared = if cfg!(target_os = "macos") {
            vec![5]
        } else {
            Vec::new()
        };
        assert_eq!(egid_first(&[], 5), cleared);
    }
}
