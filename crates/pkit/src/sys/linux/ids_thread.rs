//! A look at the file system with a child's user and group ids: a scratch
//! thread takes the ids the child will run as (its own credentials only:
//! on Linux a thread's ids are its own, and the raw system calls change
//! the calling thread's alone, where glibc's wrappers change every
//! thread's), makes the look, and exits with the ids it took. So the
//! kernel itself judges what the child may search and execute (the mode
//! bits, ACLs, a `noexec` mount, a security module), not the owner's
//! rights. The one mark the thread leaves on the process, which the kernel
//! makes not dumpable, is undone once it is gone (`dumpable.rs`).

use super::prexec::{id, nr};

use crate::sys::types::ChildIds;

/// How much stack the scratch thread gets: a `PATH` search holds a few
/// paths on the heap and little on the stack.
const STACK: usize = 128 * 1024;

/// Runs `look` on a scratch thread that first takes `ids` as the child's
/// setup will (supplementary groups, group id, user id; with a user id and
/// no groups, the groups are cleared where this process may). `Err(look)`,
/// not run, when the thread could not take an id the child is to have (an
/// owner without the privilege: the child's own setup then fails, and says
/// so) or could not be started.
pub(crate) fn look_as<T, F>(ids: &ChildIds<'_>, look: F) -> Result<T, F>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    // Left here when the thread does not run it (a refused id, or no
    // thread), for the caller's fallback.
    let slot = std::sync::Mutex::new(Some(look));
    // The thread's new ids make the kernel mark the whole process not
    // dumpable: `kept` puts the flag back once the thread is gone.
    let ran = super::dumpable::kept(true, || {
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("pkit-look-as".into())
                .stack_size(STACK)
                .spawn_scoped(scope, || {
                    if !take(ids) {
                        return None;
                    }
                    let look = slot
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take()?;
                    Some(look())
                });
            match thread {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(_) => None,
            }
        })
    });
    match ran {
        Some(t) => Ok(t),
        None => Err(slot
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .expect("not taken: the thread did not run it")),
    }
}

/// Takes `ids` on the calling thread (and only there); false when an id
/// the child is to have was refused.
fn take(ids: &ChildIds<'_>) -> bool {
    let ChildIds { uid, gid, groups } = *ids;
    match groups {
        // SAFETY: setgroups of the calling thread only (the raw system
        // call, not glibc's process-wide wrapper), reading `list`.
        Some(list) => unsafe {
            if libc::syscall(nr::SETGROUPS, list.len(), list.as_ptr()) < 0 {
                return false;
            }
        },
        // As the child: best effort (an owner that may not has no
        // privileged groups to shed).
        // SAFETY: setgroups of the calling thread only, with no list.
        None if uid.is_some() => unsafe {
            libc::syscall(nr::SETGROUPS, 0usize, std::ptr::null::<libc::gid_t>());
        },
        None => {}
    }
    if let Some(gid) = gid {
        // SAFETY: setresgid of the calling thread only; plain numbers.
        if unsafe { libc::syscall(nr::SETRESGID, id(gid), id(gid), id(gid)) } < 0 {
            return false;
        }
    }
    if let Some(uid) = uid {
        // SAFETY: setresuid of the calling thread only; plain numbers.
        if unsafe { libc::syscall(nr::SETRESUID, id(uid), id(uid), id(uid)) } < 0 {
            return false;
        }
    }
    true
}
