//! The names of the cgroup directories pkit makes for its groups, read by
//! the stale sweep (whose owner is dead?) and by the signal passes over a
//! subtree (is this sub-cgroup a nested pkit's group?).
//!
//! A name is `pkit-<pid>.<ns>.<start>-<seq>`, or `pkit-<pid>.<ns>.<start>-
//! <seq>-<name>` for a named group: the owner's pid, the inode number of
//! its pid namespace (`/proc/self/ns/pid`) and its start time (clock ticks
//! after boot, `/proc/self/stat` field 22), then the owner's own count.
//! A pid alone is unique within one pid namespace only: two pkits in two
//! pid namespaces sharing one cgroup v2 hierarchy without a cgroup
//! namespace of their own (two containers, two runs under `unshare -pf`,
//! which both start at pid 1) often have the same one. With the
//! namespace and the start time, a name tells whose it is beyond that, and
//! a later process given a dead owner's pid is not taken for it. The three
//! numbers are read once per process (again in a forked copy).
//!
//! An older pkit named its directories `pkit-<pid>-<seq>[-<name>]`; such a
//! name still parses ([`Owner::tag`] `None`), for the sweep of what it left
//! and for a nested older pkit's groups. An older pkit parses none of the
//! new names (its owner part is not a number), so it leaves them alone.
//! Where `/proc` can't tell the namespace or the start time, names are made
//! the older way.

use std::sync::atomic::{AtomicU64, Ordering};

/// The name prefix of every cgroup pkit makes (see the module docs).
pub(crate) const NAME_PREFIX: &str = "pkit-";

/// The owner a directory's name gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    /// Its pid, in its own pid namespace.
    pub(crate) pid: u32,
    /// Its pid namespace and start time; `None` in an older pkit's name.
    pub(crate) tag: Option<Tag>,
}

/// Where an owner's pid is valid, and when that process started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tag {
    /// The inode number of its pid namespace.
    pub(crate) ns: u64,
    /// Its start time, clock ticks after boot (as `/proc/<pid>/stat` says).
    pub(crate) start: u64,
}

/// The owner in a directory's name (see the module docs), or `None` if it
/// is not named as pkit names its groups (the group name, whatever it is,
/// is ignored).
pub(crate) fn owner_of(name: &[u8]) -> Option<Owner> {
    let rest = name.strip_prefix(NAME_PREFIX.as_bytes())?;
    let dash = rest.iter().position(|&b| b == b'-')?;
    let (owner, seq) = (&rest[..dash], &rest[dash + 1..]);
    let seq = match seq.iter().position(|&b| b == b'-') {
        Some(end) if end + 1 < seq.len() => &seq[..end],
        Some(_) => return None,
        None => seq,
    };
    if seq.is_empty() || !seq.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut parts = owner.split(|&b| b == b'.');
    let pid = number(parts.next()?)?;
    let pid = u32::try_from(pid).ok()?;
    let tag = match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => None,
        (Some(ns), Some(start), None) => Some(Tag {
            ns: number(ns)?,
            start: number(start)?,
        }),
        _ => return None,
    };
    Some(Owner { pid, tag })
}

/// A run of ASCII digits as a number (no sign, no blank).
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The owner part of a name: `<pid>.<ns>.<start>`, or `<pid>` alone
/// without a tag.
impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.tag {
            Some(t) => write!(f, "{}.{}.{}", self.pid, t.ns, t.start),
            None => write!(f, "{}", self.pid),
        }
    }
}

/// This process as an owner: its pid and, if `/proc` tells them, its pid
/// namespace and start time. Read once per process (a forked copy, which
/// has an identity of its own, reads its own).
pub(crate) fn own() -> Owner {
    // The identity the tag was read for, and the tag (0, 0: none).
    static FOR: AtomicU64 = AtomicU64::new(0);
    static NS: AtomicU64 = AtomicU64::new(0);
    static START: AtomicU64 = AtomicU64::new(0);
    let id = crate::sys::pid::identity();
    let pid = id as u32;
    let known = |ns: u64, start: u64| Owner {
        pid,
        tag: (ns != 0).then_some(Tag { ns, start }),
    };
    // Written before `FOR` (Release), read after it (Acquire). Two threads
    // that read at once read the same answer.
    if FOR.load(Ordering::Acquire) == id {
        return known(NS.load(Ordering::Relaxed), START.load(Ordering::Relaxed));
    }
    let tag = read_own_tag();
    let (ns, start) = tag.map_or((0, 0), |t| (t.ns, t.start));
    NS.store(ns, Ordering::Relaxed);
    START.store(start, Ordering::Relaxed);
    FOR.store(id, Ordering::Release);
    known(ns, start)
}

/// This process's pid namespace and start time, from `/proc/self`.
fn read_own_tag() -> Option<Tag> {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/self/ns/pid").ok()?.ino();
    let start = start_of(&std::fs::read("/proc/self/stat").ok()?)?;
    (ns != 0).then_some(Tag { ns, start })
}

/// The start time (field 22) in a `/proc/<pid>/stat` text.
pub(crate) fn start_of(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    // After the comm: field 3 (state) first, so field 22 is the 20th.
    let field = stat[close + 1..]
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty())
        .nth(19)?;
    number(field)
}

/// The pid namespace this process's `/proc` numbers processes in is its
/// own: `/proc/self` names it by its own pid (a `/proc` mounted for an
/// outer namespace names it by its pid there). Only then does
/// `/proc/<pid>` mean the process with that pid in this namespace.
pub(crate) fn proc_is_own() -> bool {
    std::fs::read_link("/proc/self")
        .is_ok_and(|p| p.as_os_str().to_str() == Some(&crate::sys::pid::current().to_string()))
}
