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
//!
//! Given back, pkit's new descriptors (a run's pipes, each restart's) must
//! fit below the original soft limit again, where pkit's own (~20) would
//! leave a small one no room. So under a small soft limit pkit first
//! holds every free number below it ([`reserve_low`], before it opens
//! anything of its own), so that its own descriptors are numbered above
//! it, and lets them go when it gives the limit back: then the runs have
//! the room the limit gives, as a program started without pkit would.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The largest original soft limit [`reserve_low`] holds the numbers
/// below: above it pkit's own descriptors leave a run room enough.
const RESERVE_BELOW: u64 = 64;

/// The numbers held by [`reserve_low`] until [`give_back`].
static RESERVED: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

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

/// After [`raise_nofile`] raised a soft limit of at most [`RESERVE_BELOW`]:
/// holds every free descriptor number below that original limit (copies
/// of one `/dev/null`, close-on-exec), so that what pkit opens from now
/// on is numbered above it, until [`give_back`] lets them go. Call it
/// before pkit opens anything of its own, once inherited descriptors have
/// been looked at (a number held here looks open). Best effort: a failed
/// open or copy holds what it has.
pub fn reserve_low() {
    let Some(&(soft, _)) = ORIGINAL.get() else {
        return;
    };
    if soft > RESERVE_BELOW {
        return;
    }
    let mut held = RESERVED.lock().unwrap_or_else(|e| e.into_inner());
    let Ok(null) = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return;
    };
    // The copies take the lowest free numbers, one by one.
    let mut next = null;
    while (rustix::fd::AsRawFd::as_raw_fd(&next) as u64) < soft {
        let Ok(copy) = rustix::io::fcntl_dupfd_cloexec(&next, 3) else {
            break;
        };
        held.push(next);
        next = copy;
    }
    // `next` is the first at or above the limit (or the last one held when
    // a copy failed): not needed, closed.
    if (rustix::fd::AsRawFd::as_raw_fd(&next) as u64) < soft {
        held.push(next);
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
    // The numbers below the limit are the runs' again (see `reserve_low`).
    RESERVED.lock().unwrap_or_else(|e| e.into_inner()).clear();
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
