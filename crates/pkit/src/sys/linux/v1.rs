//! cgroup v1 controller hierarchies, used for resource caps on hybrid hosts
//! where cgroup v2 has no controllers (memory, pids and cpu are v1 there).
//!
//! Containment and teardown stay with the v2 cgroup (or are refused); a v1
//! cgroup only carries limits and counters. v1 has no clone-time placement,
//! so a child joins its v1 cgroups itself, with a `write` to pre-opened
//! `cgroup.procs` files just before `exec`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::host::{find_subslice, unescape};

/// A v1 hierarchy: where it is mounted and where this process sits in it.
#[derive(Debug, Clone)]
pub(crate) struct V1Hierarchy {
    /// The owner's cgroup directory in this hierarchy.
    pub owner_dir: PathBuf,
}

/// The v1 hierarchies by controller name (`memory`, `pids`, `cpu`, …).
pub(crate) fn hierarchies() -> &'static HashMap<String, V1Hierarchy> {
    // Not a `OnceLock`: see `CopyOnce` (this reads files).
    static H: crate::sys::CopyOnce<HashMap<String, V1Hierarchy>> = crate::sys::CopyOnce::new();
    H.get_or_init(|| {
        let (Ok(mountinfo), Ok(cgroup)) = (
            std::fs::read("/proc/self/mountinfo"),
            std::fs::read("/proc/self/cgroup"),
        ) else {
            return HashMap::new();
        };
        discover(&mountinfo, &cgroup)
    })
}

fn discover(mountinfo: &[u8], cgroup: &[u8]) -> HashMap<String, V1Hierarchy> {
    // Our path in each hierarchy: "N:ctrl1,ctrl2:/path".
    let mut owner: HashMap<String, PathBuf> = HashMap::new();
    for line in cgroup.split(|&b| b == b'\n') {
        let mut parts = line.splitn(3, |&b| b == b':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        for c in ctrls.split(|&b| b == b',').filter(|c| !c.is_empty()) {
            owner.insert(
                String::from_utf8_lossy(c).into_owned(),
                PathBuf::from(String::from_utf8_lossy(path).into_owned()),
            );
        }
    }
    let mut out = HashMap::new();
    for line in mountinfo.split(|&b| b == b'\n') {
        let Some(sep) = find_subslice(line, b" - ") else {
            continue;
        };
        let (left, right) = (&line[..sep], &line[sep + 3..]);
        let mut r = right.split(|&b| b == b' ');
        if r.next() != Some(b"cgroup") {
            continue;
        }
        let _source = r.next();
        let options = r.next().unwrap_or_default();
        let fields: Vec<&[u8]> = left.split(|&b| b == b' ').collect();
        if fields.len() < 5 {
            continue;
        }
        let (root, mount) = (unescape(fields[3]), unescape(fields[4]));
        for opt in options.split(|&b| b == b',') {
            let name = String::from_utf8_lossy(opt).into_owned();
            let Some(path) = owner.get(&name) else {
                continue;
            };
            let Ok(rel) = path.strip_prefix(&root) else {
                continue;
            };
            let owner_dir = mount.join(rel);
            if owner_dir.is_dir() {
                out.entry(name).or_insert(V1Hierarchy { owner_dir });
            }
        }
    }
    out
}

/// One v1 cgroup directory of a group (in one hierarchy).
#[derive(Debug)]
pub(crate) struct V1Cgroup {
    path: PathBuf,
    /// Open `cgroup.procs` for the child to join through before exec.
    procs: OwnedFd,
    /// The process that made it: a child forked without `exec` drops its
    /// copy without removing the directory.
    owner: crate::sys::Creator,
}

impl V1Cgroup {
    /// Creates `<owner dir of controller>/<name>`.
    pub(crate) fn create(controller: &str, name: &str) -> Result<V1Cgroup, String> {
        let h = hierarchies()
            .get(controller)
            .ok_or_else(|| format!("no cgroup v1 {controller} hierarchy is mounted"))?;
        let path = h.owner_dir.join(name);
        crate::sys::fault::io_check(crate::sys::fault::Point::CgroupMkdir)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        std::fs::create_dir(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let procs = rustix::fs::open(
            path.join("cgroup.procs"),
            OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            let _ = std::fs::remove_dir(&path);
            format!("cannot open {}/cgroup.procs: {e}", path.display())
        })?;
        // The stale sweep's sign of a live owner, as for the v2 directory
        // (see `Cgroup::create`): a shared lock on this `cgroup.procs`.
        let _ = rustix::fs::flock(&procs, rustix::fs::FlockOperation::NonBlockingLockShared);
        Ok(V1Cgroup {
            path,
            procs,
            owner: crate::sys::Creator::here(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn procs_fd(&self) -> &OwnedFd {
        &self.procs
    }

    pub(crate) fn has(&self, file: &str) -> bool {
        self.path.join(file).exists()
    }

    pub(crate) fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.path.join(file))
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .map_err(|e| {
                format!(
                    "cannot write {value} to {}/{file}: {e}",
                    self.path.display()
                )
            })
    }

    /// Reads a file of the owner's own cgroup in this hierarchy.
    pub(crate) fn read_parent(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.path.parent()?.join(file)).ok()
    }

    pub(crate) fn read(&self, file: &str) -> Option<String> {
        let mut s = String::new();
        std::fs::File::open(self.path.join(file))
            .and_then(|mut f| f.read_to_string(&mut s))
            .ok()?;
        Some(s)
    }

    /// Moves a process in (for `adopt`).
    pub(crate) fn add_process(&self, pid: i32) -> std::io::Result<()> {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string())
    }

    /// Removes the directory (its processes must be gone; zombies don't
    /// count in v1), with any sub-cgroups a program in the group made below
    /// it (a nested pkit's capped groups: the kill that ended the group
    /// ended that pkit and its guard too, so nobody else will).
    pub(crate) fn remove(&self) {
        super::events::remove_dir_tree(&self.path);
    }
}

/// A v1 directory is removed when its handle goes, whatever path led there:
/// a later cap that failed while the group was being built, a group whose
/// teardown was cancelled, or an ordinary end (then it is already gone and
/// this finds nothing). While members remain the kernel refuses (`EBUSY`)
/// and whoever empties the group removes it afterwards (the reaper thread,
/// handed the path by [`Cgroup::teardown`](super::cgroup::Cgroup::teardown)).
impl Drop for V1Cgroup {
    fn drop(&mut self) {
        if !self.owner.is_here_confirmed() {
            return;
        }
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hierarchies() {
        let mountinfo = b"30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n\
31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let cgroup = b"4:memory:/\n2:cpu,cpuacct:/\n0::/\n";
        let h = discover(mountinfo, cgroup);
        // The directories only exist on a host with those mounts.
        for (name, v) in &h {
            assert!(["memory", "cpu", "cpuacct"].contains(&name.as_str()));
            assert!(v.owner_dir.starts_with("/sys/fs/cgroup"));
        }
    }
}
