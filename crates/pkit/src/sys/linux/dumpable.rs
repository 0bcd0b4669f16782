//! This process's "dumpable" flag across a change of ids made in its
//! memory. The kernel marks a process not dumpable (`commit_creds`: the
//! flag lives in the memory the threads share) when any task sharing that
//! memory changes its effective user or group id: a spawned child taking
//! `Command::uid`/`gid`/`groups` before its exec (the spawners' children
//! share the owner's memory until then, `CLONE_VM`), and the scratch
//! thread of a lookup with those ids (`ids_thread.rs`). Not dumpable, the
//! owner would write no core dump, its `/proc/<pid>` files would belong to
//! root, and its own user could no longer trace it. [`kept`] puts the flag
//! back.
//!
//! Changes of ids from several threads overlap: no lock is held across one
//! (a start held before its exec must not hold the others, and a copy
//! forked meanwhile must not inherit a lock held by a thread it does not
//! have). One word counts the changes under way instead: the first to begin
//! reads the flag (the original), the last to end puts it back, and none
//! does while another's task with other ids still shares this memory (which
//! the kernel's mark protects: tracing that task would reach this memory).
//! A copy forked (`fork(3)`) while a change was under way has the parent's
//! word but none of its changes: a `pthread_atfork` handler puts the
//! original back in the copy (its copy of the flag may be the change's
//! mark) and counts afresh. The word also carries the fork generation
//! (`sys::pid::identity`), which tells a copy the same way should the
//! handler be missing.
//!
//! The flag is one bit the kernel and the caller share: a caller's own
//! `prctl(PR_SET_DUMPABLE, 0)` made on another thread while a change is
//! under way can't be told from the kernel's mark, and is undone with it
//! (the caller should make it before starting children with other ids, or
//! again after).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::AtForkOnce;

/// Runs `change` (something that changes ids in this process's memory, when
/// `ids` says so), then puts the dumpable flag back as it was before the
/// first of the changes under way began, once the last of them has ended.
pub(crate) fn kept<T>(ids: bool, change: impl FnOnce() -> T) -> T {
    if !ids {
        return change();
    }
    // Left on unwinding too: a count never brought back would keep the
    // flag from ever being put back.
    let _under_way = UnderWay::enter();
    change()
}

/// The changes under way, one word (see [`Word`]).
static STATE: AtomicU64 = AtomicU64::new(0);

/// [`STATE`] unpacked. From the low bits: the count of changes under way
/// (24 bits, more than the kernel's task limit), whether one thread has it
/// to itself to put the flag back (1), the flag before the first change of
/// the latest round (2: 0, 1, 2, or 3 for unknown; kept after the round
/// for a copy forked as it ended), the count of rounds ended (21, so that a
/// reading of the flag made at one count of 0 is not taken for one made at
/// a later 0), and the fork generation it belongs to (16).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Word {
    count: u32,
    restoring: bool,
    original: u8,
    rounds: u32,
    generation: u16,
}

const COUNT_BITS: u32 = 24;
const ROUND_BITS: u32 = 21;
const UNKNOWN: u8 = 3;

impl Word {
    fn unpack(w: u64) -> Self {
        Self {
            count: (w & ((1 << COUNT_BITS) - 1)) as u32,
            restoring: w >> COUNT_BITS & 1 == 1,
            original: (w >> (COUNT_BITS + 1) & 3) as u8,
            rounds: (w >> (COUNT_BITS + 3) & ((1 << ROUND_BITS) - 1)) as u32,
            generation: (w >> 48) as u16,
        }
    }

    fn pack(self) -> u64 {
        u64::from(self.count & ((1 << COUNT_BITS) - 1))
            | u64::from(self.restoring) << COUNT_BITS
            | u64::from(self.original & 3) << (COUNT_BITS + 1)
            | u64::from(self.rounds & ((1 << ROUND_BITS) - 1)) << (COUNT_BITS + 3)
            | u64::from(self.generation) << 48
    }
}

/// This process's fork generation, as [`Word`] keeps it.
fn generation() -> u16 {
    (crate::sys::pid::identity() >> 32) as u16
}

/// One change under way; its drop ends it.
struct UnderWay {
    generation: u16,
}

impl UnderWay {
    fn enter() -> Self {
        watch_forks();
        let generation = generation();
        loop {
            let seen = STATE.load(Ordering::Acquire);
            let w = Word::unpack(seen);
            if w.generation != generation {
                // A copy forked from another generation: none of that
                // word's changes are under way here.
                take_over(seen, w, generation);
                continue;
            }
            if w.restoring {
                // Another thread is putting the flag back (one system
                // call): a change begun now could be undone by it.
                std::thread::yield_now();
                continue;
            }
            let next = if w.count == 0 {
                Word {
                    count: 1,
                    original: read().map_or(UNKNOWN, |d| d as u8),
                    ..w
                }
            } else {
                Word {
                    count: w.count + 1,
                    ..w
                }
            };
            if cas(seen, next) {
                return Self { generation };
            }
        }
    }
}

impl Drop for UnderWay {
    fn drop(&mut self) {
        loop {
            let seen = STATE.load(Ordering::Acquire);
            let w = Word::unpack(seen);
            if w.generation != self.generation || w.count == 0 {
                // Begun in the process this copy was forked from (pkit
                // forks no copy that returns here): nothing of ours.
                return;
            }
            if w.count > 1 {
                if cas(
                    seen,
                    Word {
                        count: w.count - 1,
                        ..w
                    },
                ) {
                    return;
                }
                continue;
            }
            // The last: with the word to itself (no change can begin), put
            // the flag back, then let changes begin again.
            let mine = Word {
                count: 0,
                restoring: true,
                rounds: w.rounds.wrapping_add(1),
                ..w
            };
            if cas(seen, mine) {
                put_back(w.original);
                STATE.store(
                    Word {
                        restoring: false,
                        ..mine
                    }
                    .pack(),
                    Ordering::Release,
                );
                return;
            }
        }
    }
}

/// A thread of a forked copy finding the word `seen` (`w`) of another
/// generation: puts the flag back if a change was under way at the fork,
/// and makes the word this generation's (with the word to itself meanwhile,
/// as the last change's end does).
fn take_over(seen: u64, w: Word, generation: u16) {
    let mine = Word {
        count: 0,
        restoring: true,
        original: UNKNOWN,
        rounds: 0,
        generation,
    };
    if !cas(seen, mine) {
        return;
    }
    if w.count > 0 || w.restoring {
        put_back(w.original);
    }
    STATE.store(
        Word {
            restoring: false,
            ..mine
        }
        .pack(),
        Ordering::Release,
    );
}

/// Registers [`forking`] and [`forked`] once, before the first change
/// begins (so before any fork could copy one under way).
fn watch_forks() {
    // Not a `Once` (see `AtForkOnce`): a copy forked while another thread
    // of its parent registers them registers them itself, unless they
    // were at the fork ([`forked`] ran in it).
    HOOKS.register(|| {
        // Raw: pthread_atfork has no rustix form.
        // SAFETY: registers two `extern "C" fn`s without state: `forking`
        // (run before a fork by the forking thread) stores one word in a
        // thread-local; `forked` (run in the child) makes atomic loads and
        // stores, a thread-local read and `prctl` calls, which are
        // async-signal-safe (all a forked child of a threaded process may
        // do before exec). If they can't be registered, the generation in
        // the word still tells a copy.
        let rc = unsafe { libc::pthread_atfork(Some(forking), None, Some(forked)) };
        rc == 0
    });
}

/// [`forking`] and [`forked`] (noted in a copy by [`forked`]: a copy
/// forked as they were being registered has them).
static HOOKS: AtForkOnce = AtForkOnce::new();

thread_local! {
    /// The word as the forking thread saw it just before its fork.
    static BEFORE_FORK: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The `pthread_atfork` prepare handler: notes the word before the fork.
extern "C" fn forking() {
    let _ = BEFORE_FORK.try_with(|b| b.set(Some(STATE.load(Ordering::Acquire))));
}

/// The `pthread_atfork` child handler: a copy forked while a change was
/// under way (the copy has none of it, but may have its mark) puts the
/// flag back at once and counts afresh. The kernel copies the flag a
/// moment before the memory (where a change may have ended meanwhile):
/// any change seen under way, begun or ended between the word noted
/// before the fork and the copy's, counts.
extern "C" fn forked() {
    HOOKS.forked();
    let w = Word::unpack(STATE.load(Ordering::Acquire));
    let before = BEFORE_FORK.try_with(Cell::take).ok().flatten();
    let moved = before.map(Word::unpack).is_some_and(|b| {
        b.count > 0 || b.restoring || b.rounds != w.rounds || b.generation != w.generation
    });
    if w.count > 0 || w.restoring || moved {
        put_back(w.original);
    }
    let fresh = Word {
        count: 0,
        restoring: false,
        ..w
    };
    STATE.store(fresh.pack(), Ordering::Release);
}

fn cas(seen: u64, next: Word) -> bool {
    STATE
        .compare_exchange(seen, next.pack(), Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// The flag now (0, 1 or 2), if the kernel says.
fn read() -> Option<i32> {
    // SAFETY: PR_GET_DUMPABLE reads a flag of this process.
    let d = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
    (0..=2).contains(&d).then_some(d)
}

/// Sets the flag to `original` if it differs. Only 0 and 1 can be set (2,
/// root-only dumps, comes from the kernel's `suid_dumpable` alone).
fn put_back(original: u8) {
    if matches!(original, 0 | 1) && read() != Some(i32::from(original)) {
        // SAFETY: PR_SET_DUMPABLE sets a flag of this process, back to the
        // value it had.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(original)) };
    }
}

#[cfg(test)]
mod tests {
    use super::Word;

    #[test]
    fn a_word_packs_and_unpacks() {
        for w in [
            Word {
                count: 0,
                restoring: false,
                original: 0,
                rounds: 0,
                generation: 0,
            },
            Word {
                count: (1 << 24) - 1,
                restoring: true,
                original: 3,
                rounds: (1 << 21) - 1,
                generation: u16::MAX,
            },
            Word {
                count: 7,
                restoring: false,
                original: 1,
                rounds: 12345,
                generation: 3,
            },
        ] {
            assert_eq!(Word::unpack(w.pack()), w);
        }
    }
}
