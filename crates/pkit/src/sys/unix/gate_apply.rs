//! The trampoline's half of the spawn options (see `gate_setup.rs` for
//! the block and the owner's half): reading them after the go byte and
//! applying them, before `main` and the `execve` of the real program.
//!
//! Every unsafe call carries its own `// SAFETY:` comment: the bodies of
//! this file's `unsafe fn`s are not blanket unsafe
//! (`unsafe_op_in_unsafe_fn`).

// Unused where there is no trampoline (musl).
#![cfg_attr(
    not(any(
        all(target_os = "linux", target_env = "gnu"),
        target_os = "macos",
        target_os = "freebsd"
    )),
    allow(dead_code)
)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::io;
use std::os::fd::RawFd;

use libc::{c_char, c_int, c_ulong, gid_t};

use super::gate_setup::{
    send_fd, CPUS, CTTY, EXEC_PIPE, FAILED, GID, GROUPS, HEADER, IOPRIO, MAX_BLOCK, NICE, SETSID,
    UID, UMASK,
};
use crate::sys::setup_steps::{StepCalls, Steps};
use crate::sys::step::FailedStep;
use crate::sys::{ChildStep, Rlimit};

/// The exec report pipe (see [`exec_reported`]): its read end, its
/// write end.
pub(super) type ExecPipe = [c_int; 2];

/// How the trampoline's setup went.
pub(super) enum Setup {
    /// Applied: exec the program, reporting through this pipe when the
    /// setup made it (before a descriptor limit could leave no room).
    Done(Option<ExecPipe>),
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
    // SAFETY: `len` has room for its own length.
    if !unsafe { read_exact(*gate, len.as_mut_ptr(), len.len()) } {
        return Setup::Gone;
    }
    let len = u64::from_ne_bytes(len);
    if len == 0 {
        return Setup::Done(None);
    }
    if len > MAX_BLOCK || len < (HEADER * 8) as u64 {
        return malformed();
    }
    let len = len as usize;
    // SAFETY: a new private anonymous mapping of `len` bytes, placed by the
    // kernel: no memory of ours is touched. Never unmapped: the exec (or
    // the exit) that follows discards it.
    let block = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON,
            -1,
            0,
        )
    };
    if block == libc::MAP_FAILED {
        return Setup::Failed(FailedStep::Exec.pack(libc::ENOMEM));
    }
    let block = block.cast::<u8>();
    // SAFETY: the mapping has room for `len` bytes.
    if !unsafe { read_exact(*gate, block, len) } {
        return Setup::Gone;
    }
    // The header, then each list at a multiple of 8 bytes (the mapping is
    // page-aligned), every length checked against the block's.
    // SAFETY: called for words 0 to 10 only: inside the header, which the
    // block (at least HEADER words, checked above) holds; the mapping is
    // page-aligned, so each word is aligned.
    let word = |i: usize| unsafe { *block.cast::<u64>().add(i) };
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
    // SAFETY: every `at[i]` is at most `end`, which is `len`: inside the
    // mapping or one past its end.
    let list = |i: usize| (unsafe { block.add(at[i]) }, counts[i] as usize);
    let (rlimits, n) = list(0);
    let (groups, n_groups) = list(1);
    let (cpus, n_cpus) = list(2);
    let (keep, n_keep) = list(3);
    let (cwd, n_cwd) = list(4);
    // SAFETY: the working directory's last byte, inside the mapping (its
    // list ends within `len`, checked above).
    if n_cwd > 0 && unsafe { *cwd.add(n_cwd - 1) } != 0 {
        return malformed();
    }
    // SAFETY: (the four lists below) each lies inside the mapping, at a
    // multiple of 8 bytes from its page-aligned start (aligned for its
    // type), `count` elements long (checked against `len` above); every
    // bit pattern is a valid value of these plain integer types; the
    // lists don't overlap, and nothing else refers to the mapping.
    let keep = unsafe { std::slice::from_raw_parts_mut(keep.cast::<[c_int; 2]>(), n_keep) };
    let steps = Steps {
        // SAFETY: as above.
        rlimits: unsafe { std::slice::from_raw_parts(rlimits.cast::<Rlimit>(), n) },
        nice: some(NICE, word(1)).map(|v| v as c_int),
        ioprio: some(IOPRIO, word(2)).map(|v| v as c_int),
        // SAFETY: as above.
        cpus: has(CPUS)
            .then(|| unsafe { std::slice::from_raw_parts(cpus.cast::<c_ulong>(), n_cpus) }),
        umask: some(UMASK, word(3)).map(|v| v as libc::mode_t),
        // SAFETY: as above.
        groups: has(GROUPS)
            .then(|| unsafe { std::slice::from_raw_parts(groups.cast::<gid_t>(), n_groups) }),
        gid: some(GID, word(4)).map(|v| v as gid_t),
        uid: some(UID, word(5)).map(|v| v as libc::uid_t),
    };
    // The passed descriptors: received, each (and the gate) moved off
    // every target number, so that no placement overwrites one still to be
    // used: onto the lowest free number that is no target (not above them
    // all: a target just below the descriptor limit leaves no room there).
    if !keep.is_empty() {
        // SAFETY: in the trampoline, as this function.
        *gate = match unsafe { off_targets(*gate, keep) } {
            Ok(fd) => fd,
            Err(e) => return Setup::Failed(FailedStep::Setup(ChildStep::KeepFds).pack(e)),
        };
        for i in 0..keep.len() {
            // SAFETY: in the trampoline, as this function.
            let got = match unsafe { receive_fd(*gate) } {
                Ok(fd) => fd,
                Err(None) => return Setup::Gone,
                Err(Some(e)) => {
                    return Setup::Failed(FailedStep::Setup(ChildStep::KeepFds).pack(e));
                }
            };
            // SAFETY: in the trampoline; `got` was just received, ours.
            let placed = unsafe { off_targets(got, keep) }.and_then(|fd| {
                // Not the program's: only the placement's copy is.
                // SAFETY: fcntl(2) on our own descriptor.
                match unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } {
                    0 => Ok(fd),
                    _ => Err(errno()),
                }
            });
            match placed {
                Ok(fd) => keep[i][1] = fd,
                Err(e) => return Setup::Failed(FailedStep::Setup(ChildStep::KeepFds).pack(e)),
            }
        }
    }
    // The exec report pipe, before the limits (`--rlimit NOFILE=4` leaves
    // no number free for it), on no target.
    // SAFETY: in the trampoline, as this function.
    let pipe = match unsafe { exec_pipe(keep) } {
        Ok(pipe) => pipe,
        Err(e) => return Setup::Failed(FailedStep::Exec.pack(e)),
    };
    // The session first, as Linux's spawner takes it right after stdio: a
    // pty session's trampoline leads one already (see `trampoline.rs`).
    if let Err(step) = crate::sys::setup_steps::session(has(SETSID), has(CTTY), &LibcCalls) {
        return Setup::Failed(FailedStep::Setup(step).pack(errno()));
    }
    if let Err(step) = crate::sys::setup_steps::apply(&steps, &LibcCalls) {
        return Setup::Failed(FailedStep::Setup(step).pack(errno()));
    }
    // With the child's credentials, as Linux's spawner enters it.
    // SAFETY: `cwd` ends with a NUL (checked above), inside the mapping.
    if n_cwd > 0 && unsafe { libc::chdir(cwd.cast()) } < 0 {
        return Setup::Failed(FailedStep::Chdir.pack(errno()));
    }
    // After the privilege drop, as Linux's spawner places them; dup2
    // clears the target's close-on-exec flag.
    for k in keep.iter() {
        // SAFETY: dup2(2) on descriptor numbers: the received copy onto
        // its target (whatever had that number is replaced, as asked).
        if unsafe { libc::dup2(k[1], k[0]) } < 0 {
            return Setup::Failed(FailedStep::Setup(ChildStep::KeepFds).pack(errno()));
        }
    }
    Setup::Done(Some(pipe))
}

/// The trampoline's sends on the gate: a dead owner's closed end is an
/// EPIPE, not a SIGPIPE (at its default in this image): MSG_NOSIGNAL, or
/// on macOS the socket's SO_NOSIGPIPE, set by the owner.
#[cfg(not(target_os = "macos"))]
pub(super) const NO_SIGPIPE: c_int = libc::MSG_NOSIGNAL;
#[cfg(target_os = "macos")]
pub(super) const NO_SIGPIPE: c_int = 0;

/// Executes the real program, reported to the owner through a pipe that
/// only this process ever holds the write end of: `pipe` (made by the
/// setup), or made here; its read end passed on the gate ([`EXEC_PIPE`])
/// and closed, then `execve`; a failed exec writes its code into the pipe
/// (its end of file at the exec is the owner's word that the program
/// runs; the gate's would not do, as a copy of the owner forked while the
/// trampoline's end of it was open in the owner holds that end). Returns
/// the code to send on the gate ([`report_failed`]) when the pipe could
/// not be made or passed; `None` after a failed exec, reported in the
/// pipe.
///
/// # Safety
/// Trampoline only, after [`receive_and_apply`] said `Done`; `gate` is the
/// gate's number, `pipe` what `Done` held, `path`, `argv` and `envp` as
/// execve(2) takes them.
pub(super) unsafe fn exec_reported(
    gate: RawFd,
    pipe: Option<ExecPipe>,
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> Option<c_int> {
    let failed = |e: c_int| Some(FailedStep::Exec.pack(e));
    // SAFETY: in the trampoline, as this function.
    let ends = match pipe.map_or_else(|| unsafe { exec_pipe(&[]) }, Ok) {
        Ok(ends) => ends,
        Err(e) => return failed(e),
    };
    if let Err(e) = send_fd(gate, EXEC_PIPE, ends[0]) {
        return failed(e.raw_os_error().unwrap_or(libc::EIO));
    }
    // SAFETY: close(2) and fcntl(2) on our own descriptor numbers (the
    // read end is the owner's now); `path`, `argv` and `envp` are the
    // caller's promise; execve returns only on failure, with its errno.
    unsafe {
        libc::close(ends[0]);
        libc::fcntl(gate, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::execve(path, argv, envp);
    }
    let code = FailedStep::Exec.pack(errno()).to_ne_bytes();
    // SAFETY: write(2) reads the bytes of `code` (4: one atomic write).
    unsafe { libc::write(ends[1], code.as_ptr().cast(), code.len()) };
    None
}

/// The exec report pipe ([`exec_reported`]), its write end close-on-exec,
/// neither end numbered as a target of `keep` (see [`off_targets`]); the
/// errno when it can't be made.
///
/// # Safety
/// Trampoline only (one thread, between the go byte and the exec).
unsafe fn exec_pipe(keep: &[[c_int; 2]]) -> Result<ExecPipe, c_int> {
    let mut ends: [c_int; 2] = [-1, -1];
    // SAFETY: pipe2(2) writes two descriptor numbers into `ends`.
    #[cfg(not(target_os = "macos"))]
    let made = unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } == 0;
    // No pipe2 on macOS; the trampoline has one thread, which does not
    // exec between the two calls.
    // SAFETY: pipe(2) writes two descriptor numbers into `ends`; fcntl(2)
    // on them.
    #[cfg(target_os = "macos")]
    let made = unsafe {
        libc::pipe(ends.as_mut_ptr()) == 0
            && libc::fcntl(ends[1], libc::F_SETFD, libc::FD_CLOEXEC) == 0
    };
    if !made {
        return Err(errno());
    }
    for end in ends.iter_mut() {
        // SAFETY: in the trampoline, as this function; our own new end.
        *end = unsafe { off_targets(*end, keep) }?;
    }
    Ok(ends)
}

/// `fd` where it is, or, when its number is a target of `keep` (a
/// placement would overwrite it), a close-on-exec copy on the lowest
/// number that is free and no target, `fd` itself closed. The errno when
/// no such number is left below the descriptor limit (`fd` closed too).
///
/// # Safety
/// Trampoline only (one thread, between the go byte and the exec); `fd`
/// is ours, open, and nothing else uses its number.
unsafe fn off_targets(fd: c_int, keep: &[[c_int; 2]]) -> Result<c_int, c_int> {
    let target = |n: c_int| keep.iter().any(|k| k[0] == n);
    if !target(fd) {
        return Ok(fd);
    }
    let mut floor = 0;
    // Each round steps over one more target: at most `keep.len()` rounds.
    let moved = loop {
        // SAFETY: fcntl(2) on our own descriptor.
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor) };
        if copy < 0 || !target(copy) {
            break copy;
        }
        // SAFETY: the copy just made, ours; its number is a target, left
        // free for the placement.
        unsafe { libc::close(copy) };
        floor = copy + 1;
    };
    let e = errno();
    // SAFETY: `fd`, replaced by its copy (or given up with it).
    unsafe { libc::close(fd) };
    if moved < 0 {
        return Err(e);
    }
    Ok(moved)
}

/// Sends a failed step's `code` on the gate ([`FAILED`] and its bytes).
pub(super) fn report_failed(gate: RawFd, code: c_int) {
    let mut bytes = [FAILED; 5];
    bytes[1..].copy_from_slice(&code.to_ne_bytes());
    // SAFETY: send(2) reads the bytes of `bytes`.
    unsafe { libc::send(gate, bytes.as_ptr().cast(), bytes.len(), NO_SIGPIPE) };
}

/// Reads exactly `len` bytes into `buf`; `false` at end of file or on an
/// error.
///
/// # Safety
/// `buf` has room for `len` bytes.
unsafe fn read_exact(fd: RawFd, buf: *mut u8, len: usize) -> bool {
    let mut got = 0;
    while got < len {
        // SAFETY: `buf` has room for `len` bytes (the caller's promise), so
        // for `len - got` from `got` on.
        let n = unsafe { libc::read(fd, buf.add(got).cast(), len - got) };
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
    // SAFETY: a zeroed msghdr is a valid empty one (null pointers, zero
    // lengths).
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control.as_mut_ptr().cast();
    mh.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = loop {
        // SAFETY: `mh` points at `iov` (one byte of `byte`) and `control`,
        // both alive and writable for the call.
        let n = unsafe { libc::recvmsg(gate, &mut mh, 0) };
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
    // SAFETY: `mh` as recvmsg left it: its control pointer and length
    // describe (part of) `control`.
    let cm = unsafe { libc::CMSG_FIRSTHDR(&mh) };
    // SAFETY: arithmetic on a length only.
    let fd_len = u64::from(unsafe { libc::CMSG_LEN(std::mem::size_of::<RawFd>() as _) });
    // SAFETY: a non-null first header lies inside `control`, whole (the
    // kernel wrote it; CMSG_FIRSTHDR checks its room); `control`'s u64s
    // align it.
    let header = (!cm.is_null()).then(|| unsafe { &*cm });
    match header {
        Some(h)
            if h.cmsg_level == libc::SOL_SOCKET
                && h.cmsg_type == libc::SCM_RIGHTS
                // (A usize on Linux, a socklen_t on the BSDs.)
                && h.cmsg_len as u64 >= fd_len => {}
        _ => return Err(Some(libc::EBADMSG)),
    }
    // SAFETY: a control message of SCM_RIGHTS at least one descriptor long
    // (checked above), inside `control`; its data may be unaligned.
    Ok(unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cm).cast::<RawFd>()) })
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
    fn setsid(&self) -> bool {
        // A pty session's trampoline called setsid before it was ready
        // (`trampoline.rs`): done if it leads its session; else again, for
        // the errno.
        // SAFETY: getsid, getpid and setsid of this process; no pointer.
        unsafe { libc::getsid(0) == libc::getpid() || libc::setsid() >= 0 }
    }

    fn take_terminal(&self) -> bool {
        // SAFETY: ioctl(TIOCSCTTY) on this process's fd 0, no pointer.
        let taken = unsafe { libc::ioctl(0, libc::TIOCSCTTY as _, 0) >= 0 };
        // macOS throws away what the master has not read yet when the
        // slave's last reference closes (the program's exit), unless the
        // session holds a reference to its terminal, which an open of
        // /dev/tty takes: its exit then waits for the output to be read.
        // Without it a quick program's last output could be lost.
        #[cfg(target_os = "macos")]
        if taken {
            // SAFETY: open of a constant NUL-terminated path; the returned
            // descriptor (if any) is this code's to close.
            unsafe {
                let tty = libc::open(
                    c"/dev/tty".as_ptr(),
                    libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
                );
                if tty >= 0 {
                    libc::close(tty);
                }
            }
        }
        taken
    }

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
