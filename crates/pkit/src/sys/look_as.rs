//! A program's lookup judged with the ids its child will run as (see
//! [`look_as`]).

use super::types::ChildIds;

/// Runs `look` (a program's lookup on `PATH`) so that the file system is
/// judged with the rights of a child that takes `ids`: on Linux, on a
/// scratch thread holding those ids (`linux/ids_thread.rs`); with the
/// owner's rights when the child changes no id, when this process may not
/// take them (the child's setup is then refused too, and says so), and on
/// the other platforms (their ids are the whole process's).
pub(crate) fn look_as<T: Send>(ids: &ChildIds<'_>, look: impl FnOnce() -> T + Send) -> T {
    #[cfg(target_os = "linux")]
    if ids.change() {
        return match super::linux::ids_thread::look_as(ids, look) {
            Ok(found) => found,
            Err(look) => look(),
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = ids.change();
    look()
}
