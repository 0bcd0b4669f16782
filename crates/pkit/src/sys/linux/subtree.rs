//! A cgroup and everything below it.
//!
//! A group's directory gains sub-cgroups: one leaf per started process (see
//! [`Leaf`]), and whatever its programs make themselves — a program that
//! uses pkit, a container runtime, systemd in a container. `cgroup.procs`
//! lists only one directory's own processes and `rmdir` refuses a directory
//! that has sub-directories, so every listing, signal and removal of a group
//! walks its whole subtree. (`cgroup.freeze`, `cgroup.kill` and the
//! `populated` flag of `cgroup.events` are recursive already.) One
//! exception: a catchable signal leaves out the groups of a nested pkit,
//! whose owner, a member above them, gets it and relays it (see [`Reach`]).

use std::collections::HashSet;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::leaves::Leaves;

/// The sub-directories of `dir` (none when it can't be read).
fn child_dirs(dir: &Path) -> Vec<PathBuf> {
    // One `stat` instead of a listing (open, fstat, two getdents, close)
    // for the common leaf: cgroupfs counts a directory's links as a
    // directory's should, 2 meaning no sub-directory (see
    // `has_children_at`). Gone is none either.
    match rustix::fs::stat(dir) {
        Ok(st) if st.st_nlink == 2 => return Vec::new(),
        Err(rustix::io::Errno::NOENT) => return Vec::new(),
        _ => {}
    }
    // At the descriptor limit the reserve's slot serves for the listing.
    let listed = super::reserve::with_reserve(|| {
        Ok(std::fs::read_dir(dir)?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect())
    });
    listed.unwrap_or_default()
}

/// Every directory below `dir`, deepest first (each before its parent).
pub(crate) fn descendants(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for child in child_dirs(dir) {
        out.extend(descendants(&child));
        out.push(child);
    }
    out
}

/// Whether `dir` has a sub-directory (a sub-cgroup).
pub(crate) fn has_children(dir: &Path) -> bool {
    !child_dirs(dir).is_empty()
}

/// Whether the cgroup directory open as `fd` (at `dir`) has a sub-cgroup,
/// asked with one `fstat`: cgroupfs counts a directory's links as a
/// directory's should (2, plus one per sub-directory), so a link count of
/// 2 means none. Any other answer (or a failed `fstat`) lists `dir`.
pub(crate) fn has_children_at(fd: std::os::fd::BorrowedFd<'_>, dir: &Path) -> bool {
    match rustix::fs::fstat(fd) {
        Ok(st) if st.st_nlink == 2 => false,
        Ok(st) if st.st_nlink > 2 => true,
        _ => has_children(dir),
    }
}

/// The pids in one directory's `cgroup.procs`. One descriptor, for the
/// time of the read: at the descriptor limit the reserve's (see
/// [`reserve`](super::reserve)), so a subtree can still be listed, and its
/// members reached by number where no pidfd can be had (see [`members`]).
fn procs_in(dir: &Path) -> io::Result<Vec<i32>> {
    let path = dir.join("cgroup.procs");
    super::reserve::with_reserve(|| {
        let mut text = String::new();
        std::fs::File::open(&path)?.read_to_string(&mut text)?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    })
}

/// The pids in `dir` and every cgroup below it. A cgroup that is gone,
/// `dir` or one below it (`ENOENT`, or `ENODEV` once opened), has no
/// members: the kernel removes only an empty
/// cgroup (a reaped process's leaf, a group torn down between two passes
/// of a kill). Any other error reading `dir` itself is reported; a
/// sub-cgroup's is skipped.
pub(crate) fn pids(dir: &Path) -> io::Result<Vec<i32>> {
    pids_but(dir, None, Reach::All)
}

/// Which processes of a subtree a signal pass reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Every one, in every cgroup below (listings, SIGKILL, SIGSTOP,
    /// SIGCONT, and every signal `pkit run` does not relay).
    All,
    /// Every one but those in a nested pkit's group (see [`nested_group`]):
    /// a signal `pkit run` relays reaches such a group through its owner
    /// alone, which relays it (`pkit run` does) or ends its group its own
    /// way, so its programs never get the signal twice.
    SparingNested,
}

impl Reach {
    /// The reach of a pass sending `sig`: the signals `pkit run` catches
    /// and relays ([`RELAYED_BY_PKIT_RUN`](crate::RELAYED_BY_PKIT_RUN))
    /// spare nested groups; every other one reaches [`All`](Self::All):
    /// SIGKILL and SIGSTOP can't be caught, SIGCONT must undo a SIGSTOP
    /// that went everywhere, and a signal the nested pkit does not relay
    /// (SIGABRT, SIGPIPE, SIGURG, a real-time one) would otherwise never
    /// reach its programs (it kills the nested pkit, or is lost).
    pub(crate) fn of(sig: i32) -> Reach {
        if crate::RELAYED_BY_PKIT_RUN.contains(&sig) {
            Reach::SparingNested
        } else {
            Reach::All
        }
    }
}

/// Whether the sub-cgroup `dir`, below a cgroup whose own processes are
/// `parent_procs`, is the group of a nested pkit: named as pkit names its
/// groups (`pkit-<owner pid>.<ns>.<start>-<seq>[-<name>]`, or an older
/// pkit's `pkit-<owner pid>-<seq>[-<name>]`: see `names.rs`), with that
/// owner alive in the cgroup above (pkit makes its groups as children of
/// its owner's own cgroup). The owner got the signal, and its group is its
/// to signal.
///
/// An owner of another pid namespace (a nested pkit run in a pid namespace
/// of its own) is found among `parent_procs` by its namespace and its pid
/// there (`/proc/<pid>/ns/pid`, `NSpid` in `/proc/<pid>/status`), where
/// this process's `/proc` shows it; an older pkit's name in another pid
/// namespace can't be matched: its group is then not recognised, and its
/// programs get the signal directly as well as through their owner. A
/// program that names a sub-cgroup this way itself (`pkit-<its own
/// pid>-1`) keeps what it moves there from the group's catchable signals,
/// never from SIGKILL, SIGSTOP or the group's teardown.
fn nested_group(dir: &Path, parent_procs: &[i32]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Some(owner) = dir
        .file_name()
        .and_then(|n| super::names::owner_of(n.as_bytes()))
    else {
        return false;
    };
    let own_ns = super::names::own().tag.map(|t| t.ns);
    match owner.tag {
        Some(tag) if Some(tag.ns) != own_ns => {
            super::names::proc_is_own()
                && parent_procs
                    .iter()
                    .any(|&p| p > 0 && in_ns_as(p, tag.ns, owner.pid))
        }
        _ => parent_procs.iter().any(|&p| p as u32 == owner.pid),
    }
}

/// Whether process `pid` (of this pid namespace) is in the pid namespace
/// `ns` (an inode number), with the pid `inner` there.
fn in_ns_as(pid: i32, ns: u64, inner: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let in_ns = std::fs::metadata(format!("/proc/{pid}/ns/pid")).is_ok_and(|m| m.ino() == ns);
    if !in_ns {
        return false;
    }
    // `NSpid:` lists its pid in each namespace from ours inward: the last
    // is its own namespace's.
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|pids| pids.split_ascii_whitespace().last())
            .is_some_and(|last| last.parse() == Ok(inner))
    })
}

/// `result` of an act on the cgroup `dir` (a signal or kill pass), but
/// `Ok` where it failed because `dir` was removed under it: a close on
/// another task (serialized with other closes, not with signals) ended the
/// tree and removed the directory, and the kernel removes only an empty
/// cgroup, so nothing was left to reach.
pub(crate) fn unless_removed(dir: &Path, result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if removed_under(dir, &e) => Ok(()),
        other => other,
    }
}

/// Whether `e` says the cgroup `dir` was removed under the call: `ENODEV`
/// (cgroupfs's answer on a cgroup being removed: its files are
/// deactivated, and its directory may still be there while the `rmdir`
/// completes), or `ENOENT` from an open once `dir` is gone.
pub(crate) fn removed_under(dir: &Path, e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENODEV) || (e.kind() == io::ErrorKind::NotFound && !dir.exists())
}

/// [`pids`] at `reach`, leaving out the direct sub-cgroups of `dir` that
/// `skip` names as leaves (and everything below them): the subtree of a
/// group's first started process, which lives in the group's own
/// directory.
pub(crate) fn pids_but(dir: &Path, skip: Option<&Leaves>, reach: Reach) -> io::Result<Vec<i32>> {
    let mut out = match procs_in(dir) {
        // Gone before the open (ENOENT) or between the open and the read
        // (ENODEV: a close on another task removed it).
        Err(e) if removed_under(dir, &e) => return Ok(Vec::new()),
        other => other?,
    };
    let mut below = Vec::new();
    for child in child_dirs(dir) {
        if skip.is_some_and(|s| child.file_name().is_some_and(|n| s.is_leaf(n))) {
            continue;
        }
        walk(&child, &out, reach, &mut below)?;
    }
    out.extend(below);
    Ok(out)
}

/// Adds the pids of the sub-cgroup `dir` and of every cgroup below it to
/// `out`; at [`Reach::SparingNested`], none of a nested pkit's group (see
/// [`nested_group`]), found below a cgroup whose own processes are
/// `parent_procs`. A sub-cgroup that can't be read adds none (one removed
/// meanwhile has none), but for want of a descriptor: that is an error, a
/// listing that leaves out members that run.
fn walk(dir: &Path, parent_procs: &[i32], reach: Reach, out: &mut Vec<i32>) -> io::Result<()> {
    if reach == Reach::SparingNested && nested_group(dir, parent_procs) {
        return Ok(());
    }
    let procs = match procs_in(dir) {
        Ok(procs) => procs,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => return Err(e),
        Err(_) => Vec::new(),
    };
    for child in child_dirs(dir) {
        walk(&child, &procs, reach, out)?;
    }
    out.extend(procs);
    Ok(())
}

/// Pidfds of the processes in the subtree of the group directory `dir`
/// less its leaves (see [`Leaves`]), each checked to name a
/// member: the listing is read again after the pidfds are opened, and a
/// pidfd is kept only if its pid is still listed. If the process the pidfd
/// names were gone and its number reused by then, the pidfd names the dead
/// process and a signal to it does nothing; so a signal through these fds
/// never reaches a process outside the group. An error when a member
/// could not be pinned (no descriptor free for its pidfd): a subtree taken
/// as only those pinned would leave the others running.
pub(crate) fn member_pidfds_but(
    dir: &Path,
    leaves: &Leaves,
    reach: Reach,
) -> io::Result<Vec<(i32, OwnedFd)>> {
    all_pinned(members(dir, Some(leaves), reach)?)
}

/// The pinned members, or an error when some could not be pinned.
fn all_pinned((fds, unpinned): Members) -> io::Result<Vec<(i32, OwnedFd)>> {
    match unpinned.is_empty() {
        true => Ok(fds),
        false => Err(io::Error::other(format!(
            "no pidfd for {} of the members",
            unpinned.len()
        ))),
    }
}

/// Pinned members (pid, pidfd) and unpinned ones (pid).
type Members = (Vec<(i32, OwnedFd)>, Vec<i32>);

/// [`member_pidfds_but`], plus the listed pids that could not be pinned with a
/// pidfd (`pidfd_open` failed other than with `ESRCH`: no fds left, no
/// memory, no pidfds on this kernel) and are still listed on the second
/// read. Signalling those by number is the only way to end them; it is
/// safe while the cgroup is frozen (a frozen member can't exit on its own,
/// so its number stays its own) and otherwise as safe as any `kill`.
fn members(dir: &Path, skip: Option<&Leaves>, reach: Reach) -> io::Result<Members> {
    let listed = pids_but(dir, skip, reach)?;
    let mut unpinned = Vec::new();
    let mut fds: Vec<(i32, OwnedFd)> = Vec::new();
    for p in listed {
        let Some(pid) = rustix::process::Pid::from_raw(p) else {
            continue;
        };
        let opened = crate::sys::fault::check(crate::sys::fault::Point::PidfdOpen)
            .map_err(rustix::io::Errno::from_raw_os_error)
            .and_then(|()| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()));
        match opened {
            Ok(fd) => fds.push((p, fd)),
            Err(rustix::io::Errno::SRCH) => {}
            Err(_) => unpinned.push(p),
        }
    }
    let still: HashSet<i32> = pids_but(dir, skip, reach)?.into_iter().collect();
    fds.retain(|(p, _)| still.contains(p));
    unpinned.retain(|p| still.contains(p));
    Ok((fds, unpinned))
}

/// Sends `sig` to every member of `dir`'s subtree through verified pidfds
/// (see [`member_pidfds_but`]), at the reach of `sig` (see [`Reach::of`]: a
/// catchable signal spares nested pkit groups). Every member is tried; the
/// first error is reported after. Returns the pids signalled.
pub(crate) fn signal_members(dir: &Path, sig: i32) -> io::Result<Vec<i32>> {
    signal_members_but(dir, sig, None)
}

/// [`signal_members`], leaving out the leaves `skip` names (see
/// [`pids_but`]).
pub(crate) fn signal_members_but(
    dir: &Path,
    sig: i32,
    skip: Option<&Leaves>,
) -> io::Result<Vec<i32>> {
    let mut first_err = None;
    let mut done = Vec::new();
    let (fds, unpinned) = members(dir, skip, Reach::of(sig))?;
    for (pid, fd) in fds {
        let sent = crate::sys::fault::io_check(crate::sys::fault::Point::SignalMember)
            .and_then(|()| super::signal::pidfd_signal(fd.as_fd(), sig));
        match sent {
            Ok(()) => done.push(pid),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    for pid in unpinned {
        match crate::sys::unix::pgroup::kill(pid, sig) {
            Ok(()) => done.push(pid),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// SIGKILLs every member of `dir`'s subtree, nested pkit groups included,
/// passing over it again while
/// new members keep appearing (a tree that is not frozen can fork between
/// the listing and the kill); at most a few passes.
pub(crate) fn kill_members(dir: &Path) -> io::Result<()> {
    kill_members_but(dir, None)
}

/// [`kill_members`], leaving out the leaves `skip` names (see
/// [`pids_but`]).
pub(crate) fn kill_members_but(dir: &Path, skip: Option<&Leaves>) -> io::Result<()> {
    let mut killed: HashSet<i32> = HashSet::new();
    let mut first_err = None;
    for _ in 0..4 {
        let (fds, unpinned) = members(dir, skip, Reach::All)?;
        let fresh: Vec<&(i32, OwnedFd)> = fds.iter().filter(|(p, _)| !killed.contains(p)).collect();
        let fresh_unpinned: Vec<i32> = unpinned
            .into_iter()
            .filter(|p| !killed.contains(p))
            .collect();
        if fresh.is_empty() && fresh_unpinned.is_empty() {
            break;
        }
        for pid in fresh_unpinned {
            if let Err(e) = crate::sys::unix::pgroup::kill(pid, libc::SIGKILL) {
                first_err.get_or_insert(e);
            }
            killed.insert(pid);
        }
        for (pid, fd) in fresh {
            if let Err(e) = super::signal::pidfd_signal(fd.as_fd(), libc::SIGKILL) {
                first_err.get_or_insert(e);
            }
            killed.insert(*pid);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `killed`, the outcome of a [`kill_members`] pass over the cgroup `dir`,
/// or, where it failed for want of a free descriptor (`EMFILE`: the owner
/// at its `RLIMIT_NOFILE`), the outcome of [`kill_members_at_the_limit`].
pub(crate) fn at_the_limit(
    killed: io::Result<()>,
    dir: &Path,
    user_frozen: bool,
    freeze: impl Fn(bool) -> io::Result<()>,
) -> io::Result<()> {
    match killed {
        Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
            kill_members_at_the_limit(dir, user_frozen, freeze)
        }
        other => other,
    }
}

/// [`kill_members`] with no descriptor free: each step that needs one (the
/// freeze and its confirmation, each listing, the thaw) gets it through
/// the reserve (`reserve.rs`), one at a time, and the members are killed
/// by number, as [`members`] kills those it can't pin with a pidfd (a
/// pidfd each is what the limit leaves no room for). `freeze(true)`
/// freezes the cgroup and waits for the kernel to confirm, `freeze(false)`
/// thaws it; `user_frozen`: it is frozen already and stays so. A frozen
/// member can't exit on its own, so the number listed stays its own until
/// the kill; if the freeze fails, each kill is as safe as any `kill`.
fn kill_members_at_the_limit(
    dir: &Path,
    user_frozen: bool,
    freeze: impl Fn(bool) -> io::Result<()>,
) -> io::Result<()> {
    use super::reserve::with_reserve;
    if !user_frozen {
        // Killed even if the freeze fails, as kill_members would be.
        let _ = with_reserve(|| freeze(true));
    }
    let mut killed: HashSet<i32> = HashSet::new();
    let mut result = Ok(());
    // Passes while new members appear (an unfrozen tree may fork).
    for _ in 0..4 {
        let listed = match with_reserve(|| pids(dir)) {
            Ok(listed) => listed,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        let fresh: Vec<i32> = listed.into_iter().filter(|&p| killed.insert(p)).collect();
        if fresh.is_empty() {
            break;
        }
        for pid in fresh {
            match crate::sys::unix::pgroup::kill(pid, libc::SIGKILL) {
                // Gone since the listing (killed through its handle).
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) if result.is_ok() => result = Err(e),
                _ => {}
            }
        }
    }
    if !user_frozen {
        let thawed = match with_reserve(|| freeze(false)) {
            Err(e) if removed_under(dir, &e) => Ok(()),
            other => other,
        };
        result = result.and(thawed);
    }
    result
}
