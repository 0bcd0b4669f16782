//! The one polite stop Windows has: `CTRL_BREAK_EVENT`, sent through the
//! console to a console process group.
//!
//! Every child pkit starts (but a pty session's) leads a new console
//! process group (`CREATE_NEW_PROCESS_GROUP`, see `spawn.rs`), and the
//! console programs it starts join that group unless they ask for their
//! own. A break aimed at
//! the group reaches them all; a console program's default handler exits
//! (with `STATUS_CONTROL_C_EXIT`), and one with a handler can clean up
//! first. Ctrl-C can't be aimed at a group (and a new group ignores it),
//! so SIGTERM and SIGINT both mean a break here.
//!
//! A break reaches only processes attached to the owner's console: a GUI
//! program has none, a pty session's program has a pseudo console of its
//! own (and leads no group: see `pty_spawn.rs`), and an owner without a
//! console (a service, a GUI application, a program started detached) can
//! send none. When no break
//! can be delivered at all the caller is told (`Unsupported`), so a
//! graceful stop goes straight to termination instead of waiting out a
//! grace nobody was asked to use. Wine 8 does not implement the break
//! (`GenerateConsoleCtrlEvent` fails for `CTRL_BREAK_EVENT`): under Wine a
//! graceful stop is always the immediate termination.

use std::io;

use windows_sys::Win32::System::Console::{
    GenerateConsoleCtrlEvent, GetConsoleProcessList, CTRL_BREAK_EVENT,
};

use super::unsupported;
use crate::sys::signal::nums::{SIGINT, SIGTERM};

/// Whether `sig` is delivered as a break (SIGTERM and SIGINT).
pub(crate) fn is_break(sig: i32) -> bool {
    sig == SIGTERM || sig == SIGINT
}

/// The ids of the processes attached to the owner's console (empty when
/// the owner has none).
fn console_processes() -> Vec<u32> {
    let mut ids = vec![0u32; 64];
    loop {
        // SAFETY: `ids` is writable for `ids.len()` entries, the count passed.
        let n = unsafe { GetConsoleProcessList(ids.as_mut_ptr(), ids.len() as u32) } as usize;
        if n == 0 {
            return Vec::new();
        }
        if n <= ids.len() {
            ids.truncate(n);
            return ids;
        }
        ids.resize(n + 16, 0);
    }
}

/// Sends a break to the console process group led by each of `leaders`
/// that is attached to the owner's console; returns how many groups were
/// sent one, or `Unsupported` (with the reason) when none could be.
///
/// The caller passes only the ids of children pkit started that are still
/// running, and holds their handles meanwhile: such an id is not reused,
/// and the group it names exists. (An id that names no group would not be
/// safe: the console may take it as "every process attached to me", the
/// owner included.)
pub(crate) fn send_break(leaders: impl IntoIterator<Item = u32>) -> io::Result<usize> {
    let attached = console_processes();
    if attached.is_empty() {
        return Err(unsupported(
            "no console to send CTRL_BREAK through: this process has none (a service, a GUI \
             application), so Windows can only terminate",
        ));
    }
    let mut sent = 0;
    let mut last_error = None;
    for pid in leaders {
        if !attached.contains(&pid) {
            continue;
        }
        // SAFETY: plain call with a live group leader's id (see above).
        if unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, pid) } != 0 {
            sent += 1;
        } else {
            last_error = Some(io::Error::last_os_error());
        }
    }
    match (sent, last_error) {
        (0, Some(e)) => Err(unsupported(&format!(
            "CTRL_BREAK could not be sent ({e}); Windows can only terminate"
        ))),
        (0, None) => Err(unsupported(
            "no running process shares this process's console (GUI programs have none): \
             CTRL_BREAK can't reach them, so Windows can only terminate",
        )),
        (n, _) => Ok(n),
    }
}
