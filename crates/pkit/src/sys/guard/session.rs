//! Sweeping a pty leader's session in the guards, once the owner is dead
//! (see `docs/pty-jobs-study.md` §4).
//!
//! A group whose leader was started leading a session of its own (a pty,
//! session id = the leader's pid = the process group's id) reaches beyond
//! its process group: a job-control shell there puts each job in a process
//! group of its own, in the same session. Entering a session takes a
//! `fork` from one of its members (`setsid` makes a new one, `setpgid`
//! stays inside it), so every member descends from our leader; and the
//! session's number stays allocated while anything holds it (as a pid,
//! pgid or sid), so while our leader is unreaped, or while no process
//! holds its number, the session of that number is ours (the rule each
//! guard applies before calling [`sweep`]: `process.rs`,
//! `portable_process.rs`).
//!
//! The members are found the way `ps` finds them, with raw,
//! async-signal-safe calls only (the guards' rules): Linux lists `/proc`
//! (`getdents64`) and asks `getsid` of each pid; macOS lists every pid
//! (`proc_listpids`) and asks `getsid` of each; FreeBSD asks for the
//! session's records (`kern.proc.session`); DragonFly, NetBSD and OpenBSD
//! list every record (`kern.proc.all`) and filter on its session field
//! (their `kern.proc.session` names the session by its leader, gone by
//! now).
//!
//! Raw: every libc call in this file stays raw on purpose: the guards'
//! async-signal-safe loops (no allocation, no lock).

#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

/// What one listing of a session's members came to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Listed {
    /// Every member was seen.
    Whole,
    /// The buffer was too small (the BSDs' and macOS's whole listing).
    TooSmall,
    /// The system could not be asked.
    Failed,
}

/// Whether a guard may sweep session `sid`: never session 0 or 1, the
/// guard's own, nor `started_in` (the session the guard was started in:
/// a forked guard's owner's).
pub(super) fn may_sweep(sid: i32, started_in: i32) -> bool {
    // SAFETY: getsid(0) has no preconditions.
    let own = unsafe { libc::getsid(0) };
    sid > 1 && sid != own && sid != started_in
}

/// SIGKILLs (through `kill`) every live member of session `sid` but the
/// leader `sid` itself (killed after, with its process group, by the
/// caller) and this process, pass after pass, until a pass signals none
/// (a member forked during a pass is found by the next one), the listing
/// fails, or `deadline_ms` ([`now_ms`]) passes. `kill` says whether it
/// signalled the member: one it may not signal (EPERM: another user's, a
/// `sudo` in the shell) or that left is not waited for, so it does not
/// hold the teardown of the groups after this one until the deadline. `buf` holds the
/// listing; `Listed::TooSmall` if it was too small for one.
///
/// # Safety
/// Guard only: raw calls on `buf`.
pub(super) unsafe fn sweep(
    sid: i32,
    buf: &mut [u8],
    deadline_ms: i64,
    kill: &mut dyn FnMut(i32) -> bool,
) -> Listed {
    let me = libc::getpid();
    let mut nap = 1;
    loop {
        let mut live = false;
        let listed = members(sid, buf, &mut |pid| {
            if pid != sid && pid != me && kill(pid) {
                live = true;
            }
        });
        if listed != Listed::Whole || !live || now_ms() >= deadline_ms {
            return listed;
        }
        // The signalled are dying: a short pause before the next look.
        nap_ms(nap);
        nap = (nap * 2).min(16);
    }
}

/// The most one session's sweep may take of a teardown's bound.
pub(super) const SWEEP_CAP_MS: i64 = 2_000;

/// The deadline of one session's sweep, at `now` (ms, [`now_ms`]), in a
/// teardown bounded by `deadline`, with `left` sweeps still to make (this
/// one included): an equal share of what is left of the bound, and at
/// most [`SWEEP_CAP_MS`], so that one slow session (a member in
/// uninterruptible sleep, which a SIGKILL does not end at once) leaves the
/// sessions and groups after it their own time. Never past `deadline`.
pub(super) fn sweep_deadline(now: i64, deadline: i64, left: usize) -> i64 {
    let share = (deadline - now).max(0) / left.max(1) as i64;
    now + share.min(SWEEP_CAP_MS)
}

/// Sleeps `ms` milliseconds (async-signal-safe).
fn nap_ms(ms: i64) {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: (ms * 1_000_000) as _,
    };
    // SAFETY: nanosleep reads our timespec; no remainder wanted.
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

/// Monotonic milliseconds.
pub(super) fn now_ms() -> i64 {
    let mut ts = std::mem::MaybeUninit::<libc::timespec>::zeroed();
    // SAFETY: clock_gettime writes one timespec into ours.
    let ts = unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, ts.as_mut_ptr());
        ts.assume_init()
    };
    // time_t and c_long are i64 on the 64-bit targets pkit builds for.
    #[allow(clippy::useless_conversion)]
    let (sec, nsec) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
    sec * 1000 + nsec / 1_000_000
}

/// Calls `f` with each live (non-zombie) member of session `sid`.
///
/// # Safety
/// Guard only: raw calls on `buf`.
#[cfg(target_os = "linux")]
pub(super) unsafe fn members(sid: i32, buf: &mut [u8], f: &mut dyn FnMut(i32)) -> Listed {
    let dir = libc::open(
        c"/proc".as_ptr(),
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
    );
    if dir < 0 {
        return Listed::Failed;
    }
    // A listing cut short by a failed read is not a whole one (rv30).
    let whole = super::walk::for_each_entry(dir, buf, &mut |name, _| {
        let pid = name
            .iter()
            .try_fold(0i32, |acc, &b| {
                b.is_ascii_digit()
                    .then(|| acc.saturating_mul(10).saturating_add(i32::from(b - b'0')))
            })
            .unwrap_or(0);
        if pid > 0 && libc::getsid(pid) == sid && !exited(pid) {
            f(pid);
        }
        true
    });
    libc::close(dir);
    match whole {
        true => Listed::Whole,
        false => Listed::Failed,
    }
}

/// Whether process `pid` is known gone or a zombie (`/proc/<pid>/stat`'s
/// state `Z` or `X`). A `/proc/<pid>/stat` that can't be opened or read
/// for another reason than the process's absence (`EMFILE`, `ENFILE`,
/// `ENOMEM`: the guard at its descriptor limit) is not: the member is
/// listed, and the sweep's kill signals it by number once it can't have a
/// pidfd either (see `process.rs`), instead of skipping a live member.
///
/// # Safety
/// Guard only.
#[cfg(target_os = "linux")]
unsafe fn exited(pid: i32) -> bool {
    let absent = || matches!(*libc::__errno_location(), libc::ENOENT | libc::ESRCH);
    let mut path = [0u8; 32];
    let path = crate::sys::linux::procfs::format_pid_stat(pid, &mut path);
    let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return absent();
    }
    // The comm is at most 15 bytes: the state is within the first 64.
    let mut text = [0u8; 128];
    let n = libc::pread(fd, text.as_mut_ptr().cast(), text.len(), 0);
    let unread = n < 0 && !absent();
    libc::close(fd);
    if unread {
        return false;
    }
    let text = &text[..n.max(0) as usize];
    match text.iter().rposition(|&b| b == b')') {
        // A main thread that ended while other threads run shows `Z` too
        // (`ps`: `Zl`): live while its task directory lists more than it.
        Some(close) => match text.get(close + 2) {
            Some(b'X') => true,
            Some(b'Z') => !more_threads(path.to_bytes()),
            _ => false,
        },
        None => true,
    }
}

/// Whether the process whose `/proc/<pid>/stat` path is `stat` has more
/// than one thread: its `/proc/<pid>/task` directory links two more than
/// it has threads (a zombie keeps its main one).
///
/// # Safety
/// Guard only.
#[cfg(target_os = "linux")]
unsafe fn more_threads(stat: &[u8]) -> bool {
    let mut task = [0u8; 32];
    let len = stat.len().min(task.len() - 1);
    task[..len].copy_from_slice(&stat[..len]);
    // ".../stat" and ".../task" have the same length.
    if len < 4 {
        return false;
    }
    task[len - 4..len].copy_from_slice(b"task");
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    if libc::stat(task.as_ptr().cast(), st.as_mut_ptr()) != 0 {
        return false;
    }
    st.assume_init().st_nlink > 3
}

/// Calls `f` with each live (non-zombie) member of session `sid`.
///
/// # Safety
/// Guard only: raw calls on `buf`.
#[cfg(target_os = "macos")]
unsafe fn members(sid: i32, buf: &mut [u8], f: &mut dyn FnMut(i32)) -> Listed {
    /// libproc.h's `PROC_ALL_PIDS`.
    const PROC_ALL_PIDS: u32 = 1;
    let size = buf.len().min(libc::c_int::MAX as usize) as libc::c_int;
    let n = libc::proc_listpids(PROC_ALL_PIDS, 0, buf.as_mut_ptr().cast(), size);
    if n <= 0 {
        return Listed::Failed;
    }
    if n >= size {
        return Listed::TooSmall;
    }
    let each = std::mem::size_of::<libc::pid_t>();
    for i in 0..n as usize / each {
        let pid = std::ptr::read_unaligned(buf.as_ptr().add(i * each).cast::<libc::pid_t>());
        if pid <= 0 || libc::getsid(pid) != sid {
            continue;
        }
        // A zombie's proc_pidinfo may fail: not live either way.
        let live = crate::sys::unix::ptable::info(pid).is_some_and(|i| i.pbi_status != libc::SZOMB);
        if live {
            f(pid);
        }
    }
    Listed::Whole
}

/// FreeBSD's records of session `sid`, DragonFly's, NetBSD's and OpenBSD's
/// of every process (see the module docs).
#[cfg(target_os = "freebsd")]
type Record = libc::kinfo_proc;
#[cfg(any(target_os = "dragonfly", target_os = "openbsd"))]
type Record = libc::kinfo_proc;
#[cfg(target_os = "netbsd")]
type Record = libc::kinfo_proc2;

/// The sysctl name of the records listed (FreeBSD: the session's), and
/// how many of its ints are used.
#[cfg(target_os = "freebsd")]
fn name(sid: i32, _count: usize) -> ([libc::c_int; 6], libc::c_uint) {
    let what = libc::KERN_PROC_SESSION;
    ([libc::CTL_KERN, libc::KERN_PROC, what, sid, 0, 0], 4)
}

/// The sysctl name of the records listed (DragonFly: every process's),
/// and how many of its ints are used.
#[cfg(target_os = "dragonfly")]
fn name(_sid: i32, _count: usize) -> ([libc::c_int; 6], libc::c_uint) {
    let what = libc::KERN_PROC_ALL;
    ([libc::CTL_KERN, libc::KERN_PROC, what, 0, 0, 0], 4)
}

/// The sysctl name of the records listed (every process's, room for
/// `count`), and how many of its ints are used.
#[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
fn name(_sid: i32, count: usize) -> ([libc::c_int; 6], libc::c_uint) {
    #[cfg(target_os = "netbsd")]
    let table = libc::KERN_PROC2;
    #[cfg(target_os = "openbsd")]
    let table = libc::KERN_PROC;
    let each = std::mem::size_of::<Record>() as libc::c_int;
    let count = libc::c_int::try_from(count).unwrap_or(libc::c_int::MAX);
    let what = libc::KERN_PROC_ALL;
    ([libc::CTL_KERN, table, what, 0, each, count], 6)
}

/// A record's pid, session and whether it is live (not a zombie; as
/// `unix/ptable_bsd.rs` reads it).
#[cfg(target_os = "freebsd")]
fn read(r: &Record) -> (i32, i32, bool) {
    (r.ki_pid, r.ki_sid, r.ki_stat != libc::SZOMB)
}
#[cfg(target_os = "dragonfly")]
fn read(r: &Record) -> (i32, i32, bool) {
    let zombie = r.kp_stat as u32 == libc::procstat::SZOMB as u32;
    (r.kp_pid, r.kp_sid, !zombie)
}
#[cfg(target_os = "netbsd")]
fn read(r: &Record) -> (i32, i32, bool) {
    // SDYING, SZOMB, SDEAD (sys/proc.h).
    let zombie = [3i8, 5, 6].contains(&r.p_stat);
    (r.p_pid, r.p_sid, !zombie)
}
#[cfg(target_os = "openbsd")]
fn read(r: &Record) -> (i32, i32, bool) {
    /// PS_ZOMBIE (sys/proc.h).
    const PS_ZOMBIE: u32 = 0x0004_0000;
    (r.p_pid, r.p_sid, r.p_psflags & PS_ZOMBIE == 0)
}

/// Calls `f` with each live (non-zombie) member of session `sid`.
///
/// # Safety
/// Guard only: raw calls on `buf`.
#[cfg(any(
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
))]
unsafe fn members(sid: i32, buf: &mut [u8], f: &mut dyn FnMut(i32)) -> Listed {
    let each = std::mem::size_of::<Record>();
    let (mib, used) = name(sid, buf.len() / each);
    let mut len: libc::size_t = buf.len();
    let rc = libc::sysctl(
        mib.as_ptr(),
        used,
        buf.as_mut_ptr().cast(),
        &mut len,
        std::ptr::null_mut(),
        0,
    );
    if rc != 0 {
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ENOMEM) => Listed::TooSmall,
            // FreeBSD: no such session (nobody left in it).
            Some(libc::ESRCH) => Listed::Whole,
            _ => Listed::Failed,
        };
    }
    for i in 0..len.min(buf.len()) / each {
        let r = std::ptr::read_unaligned(buf.as_ptr().add(i * each).cast::<Record>());
        let (pid, in_sid, live) = read(&r);
        if pid > 0 && in_sid == sid && live {
            f(pid);
        }
    }
    Listed::Whole
}

/// Elsewhere the session can't be listed: nothing is swept.
///
/// # Safety
/// None needed; as the others.
#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
unsafe fn members(_sid: i32, _buf: &mut [u8], _f: &mut dyn FnMut(i32)) -> Listed {
    Listed::Failed
}

/// A buffer mapped for one teardown's listings (the portable guard has
/// none prepared): anonymous memory, grown by doubling on
/// [`Listed::TooSmall`], unmapped when dropped. Async-signal-safe.
pub(super) struct Mapped {
    ptr: *mut u8,
    len: usize,
}

/// The first mapping's size; the largest one tried.
const MAPPED_FIRST: usize = 256 * 1024;
const MAPPED_MAX: usize = 64 * 1024 * 1024;

impl Mapped {
    /// No mapping yet.
    pub(super) const fn none() -> Mapped {
        Mapped {
            ptr: std::ptr::null_mut(),
            len: 0,
        }
    }

    /// The buffer, mapped (or remapped `grow`n to twice the size) now;
    /// `None` if it can't be (or would exceed the largest size).
    pub(super) fn get(&mut self, grow: bool) -> Option<&mut [u8]> {
        if self.ptr.is_null() || grow {
            let len = if self.ptr.is_null() {
                MAPPED_FIRST
            } else {
                self.len * 2
            };
            self.release();
            if len > MAPPED_MAX {
                return None;
            }
            // SAFETY: a fresh anonymous mapping, ours alone.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANON,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return None;
            }
            self.ptr = p.cast();
            self.len = len;
        }
        // SAFETY: `len` bytes mapped read-write at `ptr`, borrowed with self.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) })
    }

    fn release(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: unmaps our own mapping, which nothing borrows now.
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
            self.ptr = std::ptr::null_mut();
        }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        self.release();
    }
}

/// [`sweep`] on a [`Mapped`] buffer, grown while a listing does not fit.
///
/// # Safety
/// Guard only.
pub(super) unsafe fn sweep_mapped(
    sid: i32,
    buf: &mut Mapped,
    deadline_ms: i64,
    kill: &mut dyn FnMut(i32) -> bool,
) {
    let mut grow = false;
    while let Some(b) = buf.get(grow) {
        if sweep(sid, b, deadline_ms, kill) != Listed::TooSmall || now_ms() >= deadline_ms {
            return;
        }
        grow = true;
    }
}
