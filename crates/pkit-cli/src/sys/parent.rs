//! Whether pkit's parent may relay signals: an outer `pkit run` forwards
//! a signal it got to its tree, and a nested pkit in the same process
//! group got it directly too (see `forward.rs`'s `RELAYED_WITHIN`).

/// pkit's parent when last asked, and whether it may relay.
#[derive(Default)]
pub struct Parent {
    last: Option<(i32, bool)>,
}

impl Parent {
    /// Whether `ppid`, pkit's parent, may be a pkit whose relays repeat a
    /// signal this pkit got directly: on Linux, one running the same
    /// executable or one of the same name (another build of pkit), or one
    /// whose `/proc` entry can't be read (another user's); elsewhere
    /// always (no `/proc` to tell by). A parent that is not a pkit relays
    /// nothing: each of its signals is a request of its own.
    pub fn may_relay(&mut self, ppid: i32) -> bool {
        if let Some((pid, may)) = self.last {
            if pid == ppid {
                return may;
            }
        }
        let may = runs_pkit(ppid).unwrap_or(true);
        self.last = Some((ppid, may));
        may
    }
}

/// Whether process `pid` runs this executable, or one of its name.
#[cfg(target_os = "linux")]
fn runs_pkit(pid: i32) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let theirs = std::fs::metadata(format!("/proc/{pid}/exe"))?;
    let ours = std::fs::metadata("/proc/self/exe")?;
    if (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
        return Ok(true);
    }
    let comm = |p: &str| std::fs::read_to_string(format!("/proc/{p}/comm"));
    Ok(comm(&pid.to_string())? == comm("self")?)
}

#[cfg(not(target_os = "linux"))]
fn runs_pkit(_: i32) -> std::io::Result<bool> {
    Ok(true)
}
