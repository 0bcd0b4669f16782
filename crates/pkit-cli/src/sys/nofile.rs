//! `pkit run`'s and `pkit supervise`'s own descriptor room (Linux). A
//! run holds about 20 descriptors of pkit's own (signals, runtime, guard,
//! reaper, group), so under a small soft `RLIMIT_NOFILE` (`ulimit -n 20`)
//! every start failed with EMFILE. pkit raises its own soft limit to the
//! hard one at start, as long-running supervisors do, and hands the
//! program the pair it was given ([`original`], restored in the child by
//! `checks::rlimits`, in every run of a supervision too). The CLI does
//! this, never the library: a library must not change its process's
//! limits.
//!
//! Every mechanism: the portable backend restores the pair in its
//! trampoline, as every other spawn option. Where it has none (e.g.
//! `PKIT_SPAWN_TRAMPOLINE=off`) the restore is refused; pkit then puts
//! its own soft limit back ([`give_back`]) and starts the program without
//! it, so that the program inherits the pair (`run::start`; `pkit
//! supervise` supervises again, its first start refused before anything
//! ran: `supervise::main`). Either way the program gets exactly what pkit
//! got.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The soft and hard limit pkit started with, when it raised its own.
static ORIGINAL: OnceLock<(u64, u64)> = OnceLock::new();

/// Whether pkit's own soft limit is the original one again ([`give_back`]).
static GIVEN_BACK: AtomicBool = AtomicBool::new(false);

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
/// changed pkit's own (and [`give_back`] has not put it back); the program
/// gets this pair back. `u64::MAX` stands for unlimited, as in the
/// library's `Command::rlimit`.
pub fn original() -> Option<(u64, u64)> {
    if GIVEN_BACK.load(Ordering::Relaxed) {
        return None;
    }
    ORIGINAL.get().copied()
}

/// Puts pkit's own soft limit back to the one it started with, for a
/// start that can't restore it in the child: the program then inherits
/// it. Whether pkit's limit is the original again (false when it was
/// never raised, or the kernel refused, which lowering a soft limit never
/// is). Descriptors pkit already holds stay open; new ones get the
/// original room.
pub fn give_back() -> bool {
    let Some(&(soft, _)) = ORIGINAL.get() else {
        return false;
    };
    // The hard limit was never changed: only the soft one goes back (it
    // was below the hard one, so finite).
    let now = getrlimit(Resource::Nofile);
    let back = Rlimit {
        current: Some(soft),
        maximum: now.maximum,
    };
    let done = setrlimit(Resource::Nofile, back).is_ok();
    if done {
        GIVEN_BACK.store(true, Ordering::Relaxed);
    }
    done
}
