//! `pkit run`'s own descriptor room (Linux). A cgroup run holds about 20
//! descriptors of pkit's own (signals, runtime, guard, reaper, group), so
//! under a small soft `RLIMIT_NOFILE` (`ulimit -n 20`) every start failed
//! with EMFILE. pkit raises its own soft limit to the hard one at start,
//! as long-running supervisors do, and hands the program the pair it was
//! given ([`original`], restored by `checks::spawn_options`). The CLI does
//! this, never the library: a library must not change its process's
//! limits.

use std::sync::OnceLock;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The soft and hard limit pkit started with, when it raised its own.
static ORIGINAL: OnceLock<(u64, u64)> = OnceLock::new();

/// Raises pkit's soft `RLIMIT_NOFILE` to its hard limit, when it is lower,
/// and keeps the original pair for [`original`]. Opens no descriptor. When
/// the raise is refused, the limit stays as it was (and nothing is kept).
/// The hard limit was checked against `fs.nr_open` when it was set, so the
/// raise asks for nothing the kernel would not give.
pub fn raise_nofile() {
    let now = getrlimit(Resource::Nofile);
    let (soft, hard) = (
        now.current.unwrap_or(u64::MAX),
        now.maximum.unwrap_or(u64::MAX),
    );
    if soft >= hard {
        return;
    }
    let raised = Rlimit {
        current: now.maximum,
        maximum: now.maximum,
    };
    if setrlimit(Resource::Nofile, raised).is_ok() {
        let _ = ORIGINAL.set((soft, hard));
    }
}

/// The `(soft, hard)` `RLIMIT_NOFILE` pkit started with, if [`raise_nofile`]
/// changed pkit's own; the program gets this pair back. `u64::MAX` stands
/// for unlimited, as in the library's `Command::rlimit`.
pub fn original() -> Option<(u64, u64)> {
    ORIGINAL.get().copied()
}
