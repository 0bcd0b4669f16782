//! A program's lookup judged with the ids its child will run as (see
//! [`look_as`]).

/// The ids a child takes before exec (`Command::uid`, `gid`, `groups`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChildIds<'a> {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Option<&'a [u32]>,
}

impl ChildIds<'_> {
    /// Whether the child runs with ids other than the owner's.
    fn change(&self) -> bool {
        self.uid.is_some() || self.gid.is_some() || self.groups.is_some()
    }
}

/// Runs `look` (a program's lookup on `PATH`) so that the file system is
/// judged with the rights of a child that takes `ids`: on Linux, on a
/// scratch thread holding those ids (`linux/ids_thread.rs`); with the
/// owner's rights when the child changes no id, when this process may not
/// take them (the child's setup is then refused too, and says so), and on
/// the other platforms (their ids are the whole process's).
pub(crate) fn look_as<T: Send>(ids: &ChildIds<'_>, look: impl FnOnce() -> T + Send) -> T {
    #[cfg(target_os = "linux")]
    if ids.change() {
        return match super::linux::ids_thread::look_as((ids.uid, ids.gid, ids.groups), look) {
            Ok(found) => found,
            Err(look) => look(),
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = ids.change();
    look()
}
