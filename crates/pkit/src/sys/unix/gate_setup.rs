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
//! resource limits ([`Rlimit`]s, three words each), the supplementary
//! groups (`gid_t`s), the CPU mask (`c_ulong`s), the passed descriptors'
//! target numbers (two `c_int`s each: the target, and room for the
//! trampoline to note the descriptor it received) and the working
//! directory (its bytes and a NUL), when the trampoline enters it (see
//! `spawn.rs`: after a privilege drop, as Linux's spawner does).
//!
//! The trampoline reads the block into memory it maps itself (it runs
//! before `main` and allocates nothing), moves the gate socket and every
//! received descriptor above all target numbers (close-on-exec), and then
//! applies the options in the order Linux's spawner does
//! (`setup_steps.rs`: limits, priority, umask, groups, group id, user id),
//! enters the working directory if it was sent, then places the passed
//! descriptors. A step that fails is sent back as
//! the code [`FailedStep::pack`] makes, as Linux's spawner reports it.

// The trampoline's half is unused where there is no trampoline (musl).
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

use libc::{c_int, c_ulong, gid_t};

use crate::sys::setup_steps::{StepCalls, Steps};
use crate::sys::step::FailedStep;
use crate::sys::{ChildSetup, ChildStep, Rlimit};

/// The go byte's send: a dead trampoline is an EPIPE, not a SIGPIPE.
#[cfg(not(target_os = "macos"))]
const GO_FLAGS: rustix::net::SendFlags = rustix::net::SendFlags::NOSIGNAL;
#[cfg(target_os = "macos")]
const GO_FLAGS: rustix::net::SendFlags = rustix::net::SendFlags::empty();

/// Words in the block's header.
const HEADER: usize = 11;
/// Which options the header's first word says are set.
const NICE: u64 = 1;
const IOPRIO: u64 = 2;
const CPUS: u64 = 4;
const UMASK: u64 = 8;
const GROUPS: u64 = 16;
const GID: u64 = 32;
const UID: u64 = 64;
/// The largest block a trampoline accepts (a longer one is malformed).
const MAX_BLOCK: u64 = 64 << 20;

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
        | flag(s.uid.is_some(), UID);
    if flags == 0 && s.rlimits.is_empty() && keep.is_empty() && cwd.is_none() {
        return;
    }
    let groups = s.groups.unwrap_or_default();
    // FreeBSD before 15.0 keeps the effective group id in the same array
    // as the supplementary groups, as its first entry: its setgroups(2)
    // makes `list[0]` the effective group id and only the rest the
    // supplementary groups. Sent as it is, a list would change the child's
    // effective gid to its first entry, and lose that group once the gid
    // option overwrote the slot. So the gid the child is to have (the gid
    // option's, else the one it inherits) goes first: the effective gid
    // stays what the options say, and the supplementary groups are the
    // whole list. A setgroups(2) of FreeBSD 15 or later (the symbol a
    // binary built there links) sets the supplementary groups only: there
    // the list also holds the child's own effective gid, which grants
    // nothing that gid doesn't. Not on Linux or macOS, where it would add
    // a group (root's, for a root owner without a gid option) to the
    // child's list. An empty list (clearing) is sent as it is: the old
    // setgroups(2) keeps the effective gid for it.
    #[cfg(target_os = "freebsd")]
    let groups = &egid_first(
        groups,
        s.gid.unwrap_or_else(|| rustix::process::getegid().as_raw()),
    )[..];
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

/// `list` with `egid` in front, for FreeBSD's setgroups(2) (see
/// [`encode_into`]); an empty list stays empty.
#[cfg_attr(not(target_os = "freebsd"), allow(dead_code))]
fn egid_first(list: &[gid_t], egid: gid_t) -> Vec<gid_t> {
    match list {
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
        send_fd(sock, fd.as_raw_fd())?;
    }
    Ok(())
}

/// One byte carrying `fd` (`SCM_RIGHTS`).
fn send_fd(sock: &OwnedFd, fd: RawFd) -> io::Result<()> {
    let mut byte = [0u8];
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
            let n = libc::sendmsg(sock.as_raw_fd(), &mh, GO_FLAGS.bits() as _);
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

/// How the trampoline's setup went.
pub(super) enum Setup {
    /// Applied: exec the program.
    Done,
    /// A step failed: send this code back (see [`FailedStep::pack`]) and
    /// exit.
    Failed(c_int),
    /// The owner's end closed: exit.
    Gone,
}

/// A block that is not what this module writes (from an owner of another
/// version): reported as an exec that could not be made.
fn malformed() -> Setup {
    Setup::Failed(FailedStep::Exec.pack(libc::EINVAL))
}

/// The trampoline's half: reads the options after the go byte from the
/// gate socket `*gate` and applies them (see the module docs). The gate
/// may be moved to another number (`*gate` says which).
///
/// # Safety
/// Only in the trampoline, before `main`, between the go byte and the
/// exec: it changes this process's limits, credentials and descriptors.
pub(super) unsafe fn receive_and_apply(gate: &mut RawFd) -> Setup {
    // Raw: as the rest of the trampoline (see its module docs), before
    // `main` and on descriptor numbers.
    let mut len = [0u8; 8];
    if !read_exact(*gate, len.as_mut_ptr(), len.len()) {
        return Setup::Gone;
    }
    let len = u64::from_ne_bytes(len);
    if len == 0 {
        return Setup::Done;
    }
    if len > MAX_BLOCK || len < (HEADER * 8) as u64 {
        return malformed();
    }
    let len = len as usize;
    let block = libc::mmap(
        std::ptr::null_mut(),
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANON,
        -1,
        0,
    );
    if block == libc::MAP_FAILED {
        return Setup::Failed(FailedStep::Exec.pack(libc::ENOMEM));
    }
    let block = block.cast::<u8>();
    if !read_exact(*gate, block, len) {
        return Setup::Gone;
    }
    // The header, then each list at a multiple of 8 bytes (the mapping is
    // page-aligned), every length checked against the block's.
    let word = |i: usize| *block.cast::<u64>().add(i);
    let flags = word(0);
    let counts = [word(6), word(7), word(8), word(9), word(10)];
    let sizes = [
        std::mem::size_of::<Rlimit>(),
        std::mem::size_of::<gid_t>(),
        std::mem::size_of::<c_ulong>(),
        2 * std::mem::size_of::<c_int>(),
        1,
    ];
    let mut at = [0usize; 5];
    let mut end = HEADER * 8;
    for i in 0..5 {
        let Some(bytes) = (counts[i] as usize).checked_mul(sizes[i]) else {
            return malformed();
        };
        at[i] = end;
        let Some(next) = end
            .checked_add(bytes)
            .and_then(|e| e.checked_next_multiple_of(8))
        else {
            return malformed();
        };
        end = next;
    }
    if end != len {
        return malformed();
    }
    let some = |bit: u64, v: u64| (flags & bit != 0).then_some(v);
    let has = |bit: u64| flags & bit != 0;
    let list = |i: usize| (block.add(at[i]), counts[i] as usize);
    let (rlimits, n) = list(0);
    let (groups, n_groups) = list(1);
    let (cpus, n_cpus) = list(2);
    let (keep, n_keep) = list(3);
    let (cwd, n_cwd) = list(4);
    if n_cwd > 0 && *cwd.add(n_cwd - 1) != 0 {
        return malformed();
    }
    let keep = std::slice::from_raw_parts_mut(keep.cast::<[c_int; 2]>(), n_keep);
    let steps = Steps {
        rlimits: std::slice::from_raw_parts(rlimits.cast::<Rlimit>(), n),
        nice: some(NICE, word(1)).map(|v| v as c_int),
        ioprio: some(IOPRIO, word(2)).map(|v| v as c_int),
        cpus: has(CPUS).then(|| std::slice::from_raw_parts(cpus.cast::<c_ulong>(), n_cpus)),
        umask: some(UMASK, word(3)).map(|v| v as libc::mode_t),
        groups: has(GROUPS).then(|| std::slice::from_raw_parts(groups.cast::<gid_t>(), n_groups)),
        gid: some(GID, word(4)).map(|v| v as gid_t),
        uid: some(UID, word(5)).map(|v| v as libc::uid_t),
    };
    // The passed descriptors: received, then (with the gate) moved above
    // every target, so that no placement overwrites one still to be used.
    if !keep.is_empty() {
        let above = keep.iter().map(|k| k[0]).max().unwrap_or(0).max(*gate) + 1;
        let moved = libc::fcntl(*gate, libc::F_DUPFD_CLOEXEC, above);
        if moved < 0 {
            return Setup::Failed(FailedStep::Setup(ChildStep::KeepFds).pack(errno()));
        }
        libc::close(*gate);
        *gate = moved;
        for k in keep.iter_mut() {
            let got = match receive_fd(*gate) {
                Ok(fd) => fd,
                Err(None) => return Setup::Gone,
                Err(Some(e)) => {
                    return Setup::Failed(FailedStep::Setup(ChildStep::KeepFds).pack(e));
                }
            };
            let moved = libc::fcntl(got, libc::F_DUPFD_CLOEXEC, above);
            let e = errno();
            libc::close(got);
            if moved < 0 {
                return Setup::Failed(FailedStep::Setup(ChildStep::KeepFds).pack(e));
            }
            k[1] = moved;
        }
    }
    if let Err(step) = crate::sys::setup_steps::apply(&steps, &LibcCalls) {
        return Setup::Failed(FailedStep::Setup(step).pack(errno()));
    }
    // With the child's credentials, as Linux's spawner enters it.
    if n_cwd > 0 && libc::chdir(cwd.cast()) < 0 {
        return Setup::Failed(FailedStep::Chdir.pack(errno()));
    }
    // After the privilege drop, as Linux's spawner places them; dup2
    // clears the target's close-on-exec flag.
    for k in keep.iter() {
        if libc::dup2(k[1], k[0]) < 0 {
            return Setup::Failed(FailedStep::Setup(ChildStep::KeepFds).pack(errno()));
        }
    }
    Setup::Done
}

/// Reads exactly `len` bytes into `buf`; `false` at end of file or on an
/// error.
///
/// # Safety
/// `buf` has room for `len` bytes.
unsafe fn read_exact(fd: RawFd, buf: *mut u8, len: usize) -> bool {
    let mut got = 0;
    while got < len {
        let n = libc::read(fd, buf.add(got).cast(), len - got);
        if n > 0 {
            got += n as usize;
        } else if n == 0 || errno() != libc::EINTR {
            return false;
        }
    }
    true
}

/// Receives one byte carrying a descriptor: the descriptor; `Err(None)`
/// at end of file or on a failed read (the owner is gone); `Err(Some(e))`
/// when the byte came without it: `EMFILE` when the kernel cut the control
/// message (no free descriptor number here), `EBADMSG` when none or a
/// short one came.
///
/// # Safety
/// Trampoline only (see [`receive_and_apply`]).
unsafe fn receive_fd(gate: RawFd) -> Result<RawFd, Option<c_int>> {
    let mut byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 8];
    let mut mh: libc::msghdr = std::mem::zeroed();
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control.as_mut_ptr().cast();
    mh.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = loop {
        let n = libc::recvmsg(gate, &mut mh, 0);
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        break n;
    };
    if n != 1 {
        return Err(None);
    }
    if mh.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(Some(libc::EMFILE));
    }
    let cm = libc::CMSG_FIRSTHDR(&mh);
    let fd_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as _) as usize;
    if cm.is_null()
        || (*cm).cmsg_level != libc::SOL_SOCKET
        || (*cm).cmsg_type != libc::SCM_RIGHTS
        || ((*cm).cmsg_len as usize) < fd_len
    {
        return Err(Some(libc::EBADMSG));
    }
    // SAFETY: a control message of SCM_RIGHTS at least one descriptor long
    // (checked above), inside `control`; its data may be unaligned.
    Ok(std::ptr::read_unaligned(
        libc::CMSG_DATA(cm).cast::<RawFd>(),
    ))
}

fn errno() -> c_int {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The setup steps' system calls in the trampoline: a process of its own
/// (not sharing the owner's memory), single-threaded before `main`, so the
/// C library's wrappers serve.
struct LibcCalls;

impl StepCalls for LibcCalls {
    fn rlimit(&self, limit: &Rlimit) -> bool {
        // The API's "unlimited" is u64::MAX; macOS's RLIM_INFINITY is
        // i64::MAX (above its maximum, a hard limit needs privilege).
        let value = |v: u64| {
            if v == u64::MAX {
                libc::RLIM_INFINITY
            } else {
                v as libc::rlim_t
            }
        };
        let lim = libc::rlimit {
            rlim_cur: value(limit.soft),
            rlim_max: value(limit.hard),
        };
        // SAFETY: setrlimit of this process, reading `lim`.
        unsafe { libc::setrlimit(limit.resource as _, &lim) == 0 }
    }

    fn nice(&self, nice: c_int) -> bool {
        // SAFETY: setpriority of this process; plain numbers.
        unsafe { libc::setpriority(libc::PRIO_PROCESS as _, 0, nice) == 0 }
    }

    #[cfg(target_os = "linux")]
    fn ioprio(&self, value: c_int) -> bool {
        // IOPRIO_WHO_PROCESS (1), this process (0).
        // SAFETY: ioprio_set of this process; plain numbers.
        unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, value) == 0 }
    }

    #[cfg(not(target_os = "linux"))]
    fn ioprio(&self, _value: c_int) -> bool {
        // Refused before the spawn (`spawn::unsupported_setup`).
        super::sigchld::set_errno(libc::ENOSYS);
        false
    }

    #[cfg(target_os = "linux")]
    fn cpus(&self, mask: &[c_ulong]) -> bool {
        let bytes = std::mem::size_of_val(mask);
        // SAFETY: sched_setaffinity of this process, reading `bytes` bytes
        // of `mask` (the raw call takes a mask of any length).
        unsafe { libc::syscall(libc::SYS_sched_setaffinity, 0, bytes, mask.as_ptr()) == 0 }
    }

    #[cfg(not(target_os = "linux"))]
    fn cpus(&self, _mask: &[c_ulong]) -> bool {
        // Refused before the spawn (`spawn::unsupported_setup`).
        super::sigchld::set_errno(libc::ENOSYS);
        false
    }

    fn umask(&self, mode: libc::mode_t) {
        // SAFETY: umask(2) only sets this process's mask.
        unsafe { libc::umask(mode) };
    }

    fn groups(&self, list: &[gid_t]) -> bool {
        // SAFETY: setgroups of this process, reading `list`.
        unsafe { libc::setgroups(list.len() as _, list.as_ptr()) == 0 }
    }

    fn gid(&self, gid: gid_t) -> bool {
        // SAFETY: plain numbers, this process.
        #[cfg(any(target_os = "linux", target_os = "freebsd"))]
        return unsafe { libc::setresgid(gid, gid, gid) == 0 };
        // macOS has no setresgid; setgid sets all three for a privileged
        // process, and only the effective one is allowed otherwise.
        // SAFETY: as above.
        #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
        return unsafe { libc::setgid(gid) == 0 };
    }

    fn uid(&self, uid: libc::uid_t) -> bool {
        // SAFETY: plain numbers, this process.
        #[cfg(any(target_os = "linux", target_os = "freebsd"))]
        return unsafe { libc::setresuid(uid, uid, uid) == 0 };
        // SAFETY: as for the group id.
        #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
        return unsafe { libc::setuid(uid) == 0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FreeBSD's list (see `encode_into`): the effective gid first, an empty
    /// (clearing) list untouched.
    #[test]
    fn the_effective_gid_goes_first_in_a_list_that_has_groups() {
        assert_eq!(egid_first(&[7, 8], 5), vec![5, 7, 8]);
        assert_eq!(egid_first(&[], 5), Vec::<gid_t>::new());
    }
}
