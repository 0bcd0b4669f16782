//! A process's start time and parent, read by its number: what tells the
//! portable guard's registered group leader from a later process given the
//! same number (see `portable.rs`). A leaf of `guard`.
//!
//! The owner reads it once, at registration, while the leader is its
//! unreaped child; the guard reads it again before each kill, in its
//! async-signal-safe loop. So every reader here makes raw system calls on
//! stack buffers only: no allocation, no locks, no panics (as do the two
//! helpers it shares with the owner's side: `procfs::format_pid_stat` for
//! the Linux path's name, `ptable::info` for macOS's `proc_pidinfo`).
//!
//! Raw: every libc call in this file stays raw on purpose (the guard's
//! async-signal-safe loop; rustix has no `kinfo_proc`).
//!
//! The unit is each system's own, only ever compared with itself:
//! - Linux: `/proc/<pid>/stat` field 22, clock ticks (1/100 s) since boot
//!   (`CLOCK_BOOTTIME`: a clock step does not move it).
//! - macOS: `proc_pidinfo(PROC_PIDTBSDINFO)`'s `pbi_start_tvsec` and
//!   `pbi_start_tvusec`, microseconds since the epoch as the kernel stored
//!   them at the fork (a later clock step does not move them).
//! - FreeBSD: `sysctl kern.proc.pid`'s `kinfo_proc.ki_start`, less
//!   `kern.boottime`: microseconds since boot. The kernel reports
//!   `ki_start` as its uptime at the fork plus the boot time as of the
//!   query, and a clock step moves the boot time; the difference, read
//!   between two equal readings of the boot time, does not move.

/// What the system says about the process holding a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Birth {
    /// Its start time (see the module docs for the unit); never 0.
    pub(super) time: u64,
    /// Its parent's process id.
    pub(super) parent: i32,
}

/// The start time and parent of process `pid`; `None` if no process has
/// that number or it can't be read. Async-signal-safe, no allocation.
#[cfg(target_os = "linux")]
pub(super) fn birth(pid: i32) -> Option<Birth> {
    if pid <= 0 {
        return None;
    }
    let mut path = [0u8; 32];
    let path = crate::sys::linux::procfs::format_pid_stat(pid, &mut path);
    let mut buf = [0u8; 1024];
    // SAFETY: `path` is a C string; every read goes into the rest of our
    // own buffer, whose remaining length is passed.
    let len = unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let mut got = 0usize;
        while got < buf.len() {
            let r = libc::read(fd, buf.as_mut_ptr().add(got).cast(), buf.len() - got);
            if r > 0 {
                got += r as usize;
            } else if r == 0 || !interrupted() {
                break;
            }
        }
        libc::close(fd);
        got
    };
    parse_stat(&buf[..len])
}

/// Fields 4 (ppid) and 22 (starttime) of a `/proc/<pid>/stat` text: the
/// 2nd and the 20th after the comm's closing parenthesis (the comm may
/// hold any byte, a parenthesis or a space too). `None` if they are not
/// there, or the start time is 0.
#[cfg(target_os = "linux")]
pub(super) fn parse_stat(stat: &[u8]) -> Option<Birth> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let mut fields = stat[close + 1..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    let parent = number(fields.nth(1)?)?;
    let time = number(fields.nth(17)?)?;
    let parent = i32::try_from(parent).ok()?;
    (time != 0).then_some(Birth { time, parent })
}

/// A decimal number of digits only (a trailing newline allowed).
#[cfg(target_os = "linux")]
fn number(field: &[u8]) -> Option<u64> {
    let field = field.strip_suffix(b"\n").unwrap_or(field);
    if field.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

#[cfg(target_os = "linux")]
fn interrupted() -> bool {
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
}

/// The start time and parent of process `pid`; `None` if no process has
/// that number or it can't be read (a zombie may not be). Async-signal-safe
/// (one system call), no allocation.
#[cfg(target_os = "macos")]
pub(super) fn birth(pid: i32) -> Option<Birth> {
    if pid <= 0 {
        return None;
    }
    let info = crate::sys::unix::ptable::info(pid)?;
    let time = info
        .pbi_start_tvsec
        .wrapping_mul(1_000_000)
        .wrapping_add(info.pbi_start_tvusec);
    let parent = i32::try_from(info.pbi_ppid).ok()?;
    (time != 0).then_some(Birth { time, parent })
}

/// The start time and parent of process `pid`; `None` if no process has
/// that number or it can't be read. Async-signal-safe (system calls only),
/// no allocation.
#[cfg(target_os = "freebsd")]
pub(super) fn birth(pid: i32) -> Option<Birth> {
    use std::mem::{size_of, MaybeUninit};
    if pid <= 0 {
        return None;
    }
    // The boot time before and after, so that a clock step in between is
    // seen (and the reading done again).
    for _ in 0..4 {
        let before = boot_time()?;
        let mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PID, pid];
        let mut info = MaybeUninit::<libc::kinfo_proc>::zeroed();
        let mut len = size_of::<libc::kinfo_proc>();
        // SAFETY: sysctl writes at most `len` bytes into our buffer and
        // the size it wrote into `len`.
        let rc = unsafe {
            libc::sysctl(
                mib.as_ptr(),
                mib.len() as libc::c_uint,
                info.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null(),
                0,
            )
        };
        if rc != 0 || len != size_of::<libc::kinfo_proc>() {
            return None;
        }
        if boot_time()? != before {
            continue;
        }
        // SAFETY: filled whole (sysctl wrote its whole size), and zeroed
        // before: every field is plain data.
        let info = unsafe { info.assume_init() };
        let start = micros(info.ki_start);
        let time = start.wrapping_sub(before);
        return (time != 0).then_some(Birth {
            time,
            parent: info.ki_ppid,
        });
    }
    None
}

/// `kern.boottime` in microseconds.
#[cfg(target_os = "freebsd")]
fn boot_time() -> Option<u64> {
    use std::mem::size_of;
    let mib = [libc::CTL_KERN, libc::KERN_BOOTTIME];
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = size_of::<libc::timeval>();
    // SAFETY: sysctl writes at most `len` bytes into our timeval.
    let rc = unsafe {
        libc::sysctl(
            mib.as_ptr(),
            mib.len() as libc::c_uint,
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
            std::ptr::null(),
            0,
        )
    };
    (rc == 0 && len == size_of::<libc::timeval>()).then(|| micros(tv))
}

/// A `timeval` in microseconds (wrapping: only compared).
#[cfg(target_os = "freebsd")]
fn micros(tv: libc::timeval) -> u64 {
    (tv.tv_sec as u64)
        .wrapping_mul(1_000_000)
        .wrapping_add(tv.tv_usec as u64)
}

/// Elsewhere no start time is known: the guard compares none.
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "freebsd")))]
pub(super) fn birth(_pid: i32) -> Option<Birth> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn parse_stat_reads_fields_4_and_22_after_the_comm() {
        let tail = " S 4321 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 99 100\n";
        let stat = format!("77 (a) b ) c){tail}");
        let birth = parse_stat(stat.as_bytes());
        assert_eq!(
            birth,
            Some(Birth {
                time: 424242,
                parent: 4321
            })
        );
        // The start time as the last field, with the newline.
        let short = "77 (x) S 9 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 55\n";
        assert_eq!(parse_stat(short.as_bytes()).map(|b| b.time), Some(55));
        assert_eq!(parse_stat(b"77 (x) S 1 2"), None);
        assert_eq!(parse_stat(b"no parenthesis"), None);
        let zero = "7 (x) S 9 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 0 1";
        assert_eq!(parse_stat(zero.as_bytes()), None, "0 is no start time");
        let bad = "7 (x) S 9 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 1x 1";
        assert_eq!(parse_stat(bad.as_bytes()), None);
    }

    /// A real child: its parent is us, its start time is stable and at or
    /// after ours; once reaped its number names nothing (or another).
    #[test]
    fn a_childs_birth_is_read_and_stable() {
        let mut child = crate::sys::guard::tests::sleeper();
        let pid = child.id() as i32;
        let ours = birth(std::process::id() as i32).expect("our own birth");
        let b = birth(pid).expect("the child's birth");
        assert_eq!(b.parent as u32, std::process::id());
        assert!(b.time >= ours.time);
        assert_eq!(birth(pid), Some(b), "a start time is stable");
        // As `cut` reads it (the comm, "sleep", has no space).
        let cut = std::process::Command::new("cut")
            .args(["-d", " ", "-f22"])
            .arg(format!("/proc/{pid}/stat"))
            .output()
            .expect("cut");
        assert_eq!(
            String::from_utf8_lossy(&cut.stdout).trim(),
            b.time.to_string()
        );
        let _ = child.kill();
        let _ = child.wait();
        assert_ne!(birth(pid), Some(b), "a reaped child has no birth");
        assert_eq!(birth(0), None);
        assert_eq!(birth(-5), None);
    }
}
