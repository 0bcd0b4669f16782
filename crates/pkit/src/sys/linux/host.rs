//! Discovering what this Linux host offers: the cgroup v2 mount, the owner's
//! cgroup, `cgroup.kill`, and whether `clone3` is allowed.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

/// Where cgroup v2 lives for this process, as read from `/proc/self`.
#[derive(Debug, Clone)]
pub(crate) struct CgroupHost {
    /// Mount point of the cgroup2 file system.
    pub mount: PathBuf,
    /// The owner's cgroup, relative to the hierarchy root (`/` for the root).
    pub owner: PathBuf,
    /// The owner's cgroup directory: where groups are created.
    pub parent_dir: PathBuf,
    /// Whether teardown can write `cgroup.kill` (kernel >= 5.14).
    pub has_kill: bool,
}

/// The outcome of looking for cgroup v2 for this process's cgroup now:
/// found, or why not.
///
/// The answer is for this process's cgroup at the call (groups are made in
/// the owner's cgroup, and an owner can be moved: adopted by an outer
/// group, or by a service manager). Where the kernel tells a process's
/// cgroup v2 id through a pidfd (`PIDFD_GET_INFO`, Linux 6.13), that id is
/// asked, from a pidfd of this process kept open for it: while it is the
/// id of the directory the last answer names, that answer stands, and
/// nothing else is read. Otherwise `/proc/self/cgroup` is read (whose
/// kernel side takes the kernel's global `css_set_lock` and writes a line
/// per hierarchy, ten on a host that mounts the v1 controllers too: under
/// load, a one-shot run's costliest call after the spawn, issue 20); the
/// rest is looked for again only when that text changed since the last
/// answer. When it can't be read (no descriptor free), the last answer
/// stands.
pub(crate) fn cgroup_host() -> &'static Result<CgroupHost, String> {
    // The newest answer. Taken with `try_`: a copy forked without exec
    // whose parent held the lock at the fork finds its own answer instead
    // of waiting for ever.
    static LATEST: RwLock<Option<&'static Found>> = RwLock::new(None);
    let id = own_cgroup_id();
    let latest = LATEST.try_read().ok().and_then(|l| *l);
    if let (Some(found), Some(id)) = (latest, id) {
        // The cgroup the answer names, by its directory's identity (an id
        // is never given to another cgroup): the owner is still there.
        if found.dir_id == Some(id) {
            return &found.host;
        }
    }
    let mut buf = [0u8; 4096];
    let now = own_cgroup(&mut buf);
    if let Some(found) = latest {
        match &now {
            Ok(text) if found.cgroup.as_deref() != Some(&text[..]) => {}
            _ => return &found.host,
        }
    }
    // Never freed: a caller may hold the answer for ever, and an owner is
    // moved rarely. Two threads that see the same move each keep their own
    // (both right); the last one stored is the next calls' answer.
    let host = discover(now.as_deref());
    let fresh: &'static Found = Box::leak(Box::new(Found {
        cgroup: now.as_ref().ok().map(|t| t.to_vec()),
        dir_id: host.as_ref().ok().and_then(|h| dir_id(&h.parent_dir)),
        host,
    }));
    if let Ok(mut l) = LATEST.try_write() {
        *l = Some(fresh);
    }
    &fresh.host
}

/// A descriptor kept by the process of identity `.0` (`sys::pid::identity`),
/// with its file's identity (`sys::file_id`, for a forked copy's
/// [`replace_kept`]).
type KeptFd = Option<Kept>;

/// One kept descriptor (see [`KeptFd`]).
type Kept = (u64, rustix::fd::OwnedFd, Option<(u64, u64)>);

/// `fd`, kept by the process of identity `me`.
fn kept_fd(me: u64, fd: rustix::fd::OwnedFd) -> Kept {
    let id = crate::sys::file_id(std::os::fd::AsFd::as_fd(&fd));
    (me, fd, id)
}

/// Keeps `fresh` in `kept` in place of what was there: a forked copy's copy
/// of its maker's kept descriptor is let go of, never dropped (see
/// `sys::let_go_inherited`: its number may be `fresh`'s, or a file's the
/// application opened since).
fn replace_kept(kept: &mut KeptFd, fresh: KeptFd) {
    use std::os::fd::{AsRawFd, IntoRawFd};
    if let Some((_, fd, id)) = kept.take() {
        let number = fresh.as_ref().map_or(-1, |(_, f, _)| f.as_raw_fd());
        crate::sys::let_go_inherited(fd.into_raw_fd(), id, number);
    }
    *kept = fresh;
}

/// This process's cgroup v2 id now, through a pidfd of its own kept open
/// for it (`PIDFD_GET_INFO`); `None` where the kernel can't tell it
/// (before Linux 6.13: asked once) or no pidfd can be had. The pidfd is
/// this process's: a copy forked without exec inherits one that names its
/// parent, and opens its own (closing its duplicate); told apart as
/// `own_cgroup`'s descriptor is (`sys::pid::identity`). Taken with
/// `try_lock`, so a forked copy whose parent held the lock at the fork
/// doesn't wait for ever (it reads `/proc/self/cgroup` then).
fn own_cgroup_id() -> Option<u64> {
    use super::pidfd_info::{pidfd_info, unsupported, PIDFD_INFO_CGROUPID};
    use std::os::fd::AsFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    static KEPT: Mutex<KeptFd> = Mutex::new(None);
    static NONE_HERE: AtomicBool = AtomicBool::new(false);
    if NONE_HERE.load(Ordering::Relaxed) {
        return None;
    }
    let me = crate::sys::pid::identity();
    let mut kept = KEPT.try_lock().ok()?;
    if kept.as_ref().is_none_or(|(owner, _, _)| *owner != me) {
        let pid = rustix::process::getpid();
        let fresh = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .ok()
            .map(|fd| kept_fd(me, fd));
        replace_kept(&mut kept, fresh);
    }
    let (_, fd, _) = kept.as_ref()?;
    match pidfd_info(fd.as_fd(), PIDFD_INFO_CGROUPID) {
        Ok(info) if info.mask & PIDFD_INFO_CGROUPID != 0 => Some(info.cgroupid),
        Ok(_) => {
            // A kernel built without cgroups: nothing to ask again.
            NONE_HERE.store(true, Ordering::Relaxed);
            *kept = None;
            None
        }
        Err(e) => {
            if unsupported(&e) {
                NONE_HERE.store(true, Ordering::Relaxed);
                *kept = None;
            }
            None
        }
    }
}

/// The cgroup id of the cgroup v2 directory `dir`: its inode number (the
/// kernel's `cgroup_id` is its kernfs node's id, which is the inode number
/// where an inode number has 64 bits). `None` on 32-bit targets, where it is
/// cut to 32 bits.
fn dir_id(dir: &Path) -> Option<u64> {
    if cfg!(target_pointer_width = "64") {
        rustix::fs::stat(dir).ok().map(|st| st.st_ino)
    } else {
        None
    }
}

/// `/proc/self/cgroup` now, in `buf`: one `pread` of a descriptor kept open
/// for it (every group's creation asks where the kernel has no
/// `PIDFD_GET_INFO`: an `open`, a `read` to the end and a `close` each time
/// cost a one-shot run three calls more than this one), else a whole fresh
/// read. The descriptor is this process's: a copy
/// forked without exec inherits one that names its parent's file, and
/// opens its own (closing its duplicate); told apart by pid and fork
/// generation (`sys::pid::identity`: a copy forked into a new pid
/// namespace may have its parent's pid number). Taken with `try_lock`, so a
/// forked copy whose parent held the lock at the fork doesn't wait for
/// ever: it reads afresh.
fn own_cgroup(buf: &mut [u8; 4096]) -> io::Result<Cow<'_, [u8]>> {
    use rustix::fs::{Mode, OFlags};
    static KEPT: Mutex<KeptFd> = Mutex::new(None);
    const PATH: &str = "/proc/self/cgroup";
    let me = crate::sys::pid::identity();
    if let Ok(mut kept) = KEPT.try_lock() {
        if kept.as_ref().is_none_or(|(owner, _, _)| *owner != me) {
            let fresh = rustix::fs::open(PATH, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .ok()
                .map(|fd| kept_fd(me, fd));
            replace_kept(&mut kept, fresh);
        }
        if let Some((_, fd, _)) = kept.as_ref() {
            // The whole text (a few hundred bytes, a line per hierarchy)
            // comes in one read of a seq file from offset 0; a full buffer
            // may have more: read afresh then.
            if let Ok(n) = rustix::io::pread(fd, &mut buf[..], 0) {
                if n < buf.len() {
                    return Ok(Cow::Borrowed(&buf[..n]));
                }
            }
        }
    }
    std::fs::read(PATH).map(Cow::Owned)
}

/// One answer of [`cgroup_host`], and the `/proc/self/cgroup` text it was
/// found for (`None`: that text could not be read).
struct Found {
    cgroup: Option<Vec<u8>>,
    /// The cgroup id of the directory `host` names (`parent_dir`), where
    /// known.
    dir_id: Option<u64>,
    host: Result<CgroupHost, String>,
}

/// `cgroup`: the reading of `/proc/self/cgroup`.
fn discover(cgroup: Result<&[u8], &io::Error>) -> Result<CgroupHost, String> {
    let mountinfo = std::fs::read("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let cgroup = cgroup.map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let owner = find_v2_cgroup(cgroup)
        .ok_or_else(|| "/proc/self/cgroup has no cgroup v2 (0::) entry".to_string())?;
    let (mount_root, mount) = find_cgroup2_mount(&mountinfo, &owner)
        .ok_or_else(|| "no cgroup2 file system is mounted".to_string())?;
    // The mount may expose only a subtree of the hierarchy (containers): the
    // owner's path is relative to the hierarchy root, the mount to its root.
    let rel = owner
        .strip_prefix(&mount_root)
        .map_err(|_| {
            format!(
                "this process's cgroup {} is outside the mounted cgroup2 subtree {}",
                owner.display(),
                mount_root.display()
            )
        })?
        .to_path_buf();
    let parent_dir = parent_dir_of(&mount, &rel);
    if !parent_dir.is_dir() {
        return Err(format!(
            "this process's cgroup directory {} does not exist (stale namespace?)",
            parent_dir.display()
        ));
    }
    let has_kill = cgroup_kill_supported(&parent_dir);
    Ok(CgroupHost {
        mount,
        owner,
        parent_dir,
        has_kill,
    })
}

/// Finds the cgroup2 mount to use in `/proc/self/mountinfo` text and
/// returns (root within the hierarchy, mount point): the last one listed
/// whose root holds `owner` (this process's cgroup), else the first one.
///
/// The last, because a later mount shadows an earlier one on the same path
/// or above it: a container that mounts cgroup2 afresh (its own cgroup
/// namespace's view) over the host's keeps the host's entry listed first,
/// whose root, seen from the new namespace, lies outside it.
pub(crate) fn find_cgroup2_mount(mountinfo: &[u8], owner: &Path) -> Option<(PathBuf, PathBuf)> {
    let mounts = cgroup2_mounts(mountinfo);
    let holding = mounts
        .iter()
        .rev()
        .find(|(root, _)| owner.starts_with(root));
    holding.or(mounts.first()).cloned()
}

/// Every cgroup2 mount in `/proc/self/mountinfo` text, in order, as (root
/// within the hierarchy, mount point).
fn cgroup2_mounts(mountinfo: &[u8]) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for line in mountinfo.split(|&b| b == b'\n') {
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        let Some(sep) = find_subslice(line, b" - ") else {
            continue;
        };
        let (left, right) = (&line[..sep], &line[sep + 3..]);
        let fstype = right.split(|&b| b == b' ').next().unwrap_or_default();
        if fstype != b"cgroup2" {
            continue;
        }
        let fields: Vec<&[u8]> = left.split(|&b| b == b' ').collect();
        if fields.len() >= 5 {
            out.push((unescape(fields[3]), unescape(fields[4])));
        }
    }
    out
}

pub(crate) fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub(crate) fn unescape(field: &[u8]) -> PathBuf {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && i + 3 < field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (field[i + 1] - b'0') * 64 + (field[i + 2] - b'0') * 8 + (field[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    PathBuf::from(OsStr::from_bytes(&out))
}

/// The `0::/path` line of `/proc/self/cgroup`.
pub(crate) fn find_v2_cgroup(text: &[u8]) -> Option<PathBuf> {
    text.split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"0::"))
        .map(|p| PathBuf::from(OsStr::from_bytes(p)))
}

/// Kernel release as (major, minor), from uname.
pub(crate) fn kernel_version() -> (u32, u32) {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy().into_owned();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (major, minor)
}

/// The owner's cgroup directory: `rel` (the owner's cgroup relative to the
/// mount's root) under `mount`, rebuilt from its components. `join` of an
/// empty `rel` (an owner in the mount's root cgroup) leaves a trailing `/`,
/// and a pooled directory's `parent()`, which has none, then missed the
/// byte comparison's fast path at every take from the pool: a
/// component-by-component walk of both paths, about 1,700 instructions a
/// run (issue 20).
fn parent_dir_of(mount: &Path, rel: &Path) -> PathBuf {
    mount.join(rel).components().collect()
}

/// Kernel release string, for reports.
pub(crate) fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

/// Whether `cgroup.kill` can be expected: present in any non-root cgroup on
/// kernels >= 5.14. The root cgroup has none, so look at the kernel version
/// unless the owner's own directory shows the file.
fn cgroup_kill_supported(parent_dir: &Path) -> bool {
    parent_dir.join("cgroup.kill").exists() || kernel_version() >= (5, 14)
}

/// Whether the owner may create cgroups under `dir` (without creating one).
pub(crate) fn dir_writable(dir: &Path) -> io::Result<()> {
    rustix::fs::access(
        dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container that mounted cgroup2 afresh over the host's: the host's
    /// entry comes first and its root (seen from the container's cgroup
    /// namespace) is outside; the container's own mount is the one to use.
    #[test]
    fn the_mount_holding_the_owner_wins_over_a_shadowed_one() {
        let info = b"30 25 0:26 /.. /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
                     41 40 0:50 / /sys/fs/cgroup rw - tmpfs none rw\n\
                     42 41 0:26 / /sys/fs/cgroup/unified rw - cgroup2 none rw\n";
        let (root, mount) = find_cgroup2_mount(info, Path::new("/")).unwrap();
        assert_eq!(root, Path::new("/"));
        assert_eq!(mount, Path::new("/sys/fs/cgroup/unified"));
        // A single mount: that one, whatever the owner.
        let one = b"30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let (root, mount) = find_cgroup2_mount(one, Path::new("/user.slice/x")).unwrap();
        assert_eq!(
            (root.as_path(), mount.as_path()),
            (Path::new("/"), Path::new("/sys/fs/cgroup"))
        );
        // None holds the owner: the first, so the error names its root.
        let outside = b"30 25 0:26 /.. /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let (root, _) = find_cgroup2_mount(outside, Path::new("/")).unwrap();
        assert_eq!(root, Path::new("/.."));
    }

    /// The owner's directory has no trailing `/` when the owner is in the
    /// mount's root cgroup, so a directory made in it (`join`) has it, byte
    /// for byte, as its `parent()` (what the pool compares).
    #[test]
    fn the_owner_directory_is_the_parent_of_its_groups_byte_for_byte() {
        let mount = Path::new("/sys/fs/cgroup/unified");
        for rel in ["", "user.slice/x", "user.slice/x/"] {
            let dir = parent_dir_of(mount, Path::new(rel));
            let group = dir.join("pkit-1-2");
            let parent = group.parent().unwrap();
            assert_eq!(
                parent.as_os_str().as_bytes(),
                dir.as_os_str().as_bytes(),
                "{rel:?}"
            );
            assert!(!dir.as_os_str().as_bytes().ends_with(b"/"), "{rel:?}");
        }
        assert_eq!(parent_dir_of(mount, Path::new("")), mount);
    }
}
