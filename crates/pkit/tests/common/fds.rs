//! This process's descriptors, for the tests that check pkit leaves none
//! open: a [`Snapshot`] of them by target, and what was opened since
//! ([`opened_since`], [`assert_none_opened_since`]).
//!
//! A test that measures descriptors runs alone in its binary
//! ([`super::begin_exclusive`]), but that excludes only other tests'
//! bodies: a `#[tokio::test]` builds its runtime before its body waits on
//! the suite lock, so another test's runtime may be made while the
//! measured test counts. A tokio runtime's I/O driver opens an epoll set
//! (and a second descriptor of it), the eventfd that wakes it and, with
//! the signal driver, a second descriptor of the process-wide signal
//! socket, both watched by that epoll set. Those are not pkit's, and are
//! told apart by that shape, read from `/proc/self/fdinfo`: an epoll set
//! opened since (at most two descriptors of it) that watches exactly one
//! eventfd and at most one socket that was open before (a second
//! descriptor of it), with what it watches. An epoll set that was open
//! before is never a runtime made meanwhile, so what an existing runtime
//! (the measuring test's own included) is made to watch since (an
//! eventfd in an `AsyncFd`, a new descriptor of an old socket) counts. At
//! most one such runtime per other test thread of the harness is ignored
//! (none when it runs one test thread), so a runtime-shaped leak repeated
//! per group or run still shows. Everything else that is new counts: a
//! pidfd, a pipe, a new socket, a cgroup directory or file, `/dev/null`,
//! a pty, an epoll set that watches a pidfd or a pipe, a second
//! descriptor of a socket that no runtime watches.
//!
//! The listing's own descriptor (`/proc/<pid>/fd`, which pkit never
//! opens) is left out of every snapshot.
//!
//! Descriptors are compared by number, target and what `fdinfo` tells of
//! them (inode, a pidfd's process, an eventfd's id, an epoll set's watch
//! list), so one closed and another of its kind opened at its number
//! still shows; only an exact double (the kernel reuses eventfd ids and
//! numbers) passes for the old one, and that is no growth; so does a file
//! or directory closed and opened again at another number. Kernels older
//! than pidfs (6.9) and eventfd ids tell those apart by number alone.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::{DEADLINE, POLL};

/// One open descriptor: its number, what `/proc/self/fd` says it is, and
/// what tells it from another of its kind at that number (its inode and,
/// a pidfd, its process, from `/proc/self/fdinfo`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fd {
    pub num: i32,
    pub target: String,
    pub id: String,
}

impl std::fmt::Display for Fd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.num, self.target)
    }
}

/// This process's descriptors at one moment, by number.
#[derive(Debug, Clone)]
pub struct Snapshot {
    fds: Vec<Fd>,
    /// Of each epoll set: the descriptors it watches (number, inode).
    watches: BTreeMap<i32, Vec<(i32, u64)>>,
}

impl Snapshot {
    /// This process's descriptors now.
    ///
    /// The listing and the epoll sets' watch lists are read one after the
    /// other, and another thread may open and register descriptors in
    /// between: a runtime's socket copy made and registered after the
    /// listing would be watched by an epoll set it was not listed beside,
    /// and later look like a lone leaked socket (CI failed on that in
    /// leaks.rs). So the listing is read again after the watch lists, and
    /// the snapshot taken again until both listings agree.
    pub fn take() -> Snapshot {
        let mut tries = 0;
        loop {
            let fds = listing();
            let watches = fds
                .iter()
                .filter(|fd| fd.target == "anon_inode:[eventpoll]")
                .map(|fd| (fd.num, epoll_watches(fd.num)))
                .collect();
            tries += 1;
            if listing() == fds {
                return Snapshot { fds, watches };
            }
            assert!(
                tries < 1000,
                "the descriptor list kept changing: no consistent snapshot in 1000 tries"
            );
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// [`take`](Self::take), once this process's descriptors and the
    /// epoll sets' watch lists stay the same for 100 ms (at most
    /// [`DEADLINE`]): a baseline with no runtime half made in it (another
    /// test's, which the harness builds before that test waits for its
    /// turn), whose completion would then look like new descriptors of an
    /// old epoll set.
    pub fn settled() -> Snapshot {
        let deadline = Instant::now() + DEADLINE;
        let mut last = Snapshot::take();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = Snapshot::take();
            if (now.fds == last.fds && now.watches == last.watches) || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }

    /// Every descriptor (`num: target id`) and each epoll set's watch
    /// list, for a failure's message.
    pub fn describe(&self) -> String {
        let fds: Vec<String> = self
            .fds
            .iter()
            .map(|fd| format!("{}: {} {}", fd.num, fd.target, fd.id.replace('\t', " ")))
            .collect();
        format!("{}; epoll sets: {:?}", fds.join(", "), self.watches)
    }

    /// How many descriptors are open.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// The descriptors, by number.
    pub fn fds(&self) -> &[Fd] {
        &self.fds
    }

    fn fd(&self, num: i32) -> Option<&Fd> {
        self.fds.iter().find(|fd| fd.num == num)
    }

    fn target(&self, num: i32) -> Option<&str> {
        self.fd(num).map(|fd| fd.target.as_str())
    }
}

/// This process's descriptors, by number, with their identities.
fn listing() -> Vec<Fd> {
    let own = format!("/proc/{}/fd", std::process::id());
    let mut fds: Vec<Fd> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .filter_map(|e| {
            let num = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            let target = target.to_string_lossy().into_owned();
            (!target.starts_with(&own)).then(|| Fd {
                num,
                id: identity(num, &target),
                target,
            })
        })
        .collect();
    fds.sort();
    fds
}

/// What tells descriptor `num` from an earlier one of its kind at that
/// number: its `ino:`, `Pid:` (a pidfd) and `eventfd-id:` lines in
/// `/proc/self/fdinfo` (an epoll set is told by what it watches, see
/// [`opened_since`]).
fn identity(num: i32, target: &str) -> String {
    if target == "anon_inode:[eventpoll]" {
        return String::new();
    }
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{num}")).unwrap_or_default();
    info.lines()
        .filter(|l| {
            ["ino:", "Pid:", "eventfd-id:"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The descriptors (number, inode) epoll set `num` watches, from its
/// `/proc/self/fdinfo` lines `tfd: N events: ... ino:HEX sdev:...`.
fn epoll_watches(num: i32) -> Vec<(i32, u64)> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{num}")).unwrap_or_default();
    let mut out: Vec<(i32, u64)> = info
        .lines()
        .filter_map(|l| {
            let tfd = l
                .strip_prefix("tfd:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            let ino = l.split_whitespace().find_map(|w| w.strip_prefix("ino:"))?;
            Some((tfd, u64::from_str_radix(ino, 16).ok()?))
        })
        .collect();
    out.sort_unstable();
    out
}

/// The inode of a `socket:[N]` target.
fn socket_inode(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// How many tests the harness runs at once, if this process's arguments
/// (`--test-threads`) or `RUST_TEST_THREADS` say.
pub fn test_threads() -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let env = std::env::var("RUST_TEST_THREADS").ok();
    test_threads_of(&args, env.as_deref())
}

/// [`test_threads`] of these arguments and `RUST_TEST_THREADS` value, as
/// libtest reads them (the argument first).
pub fn test_threads_of(args: &[String], env: Option<&str>) -> Option<usize> {
    let from_args =
        args.iter()
            .enumerate()
            .find_map(|(i, a)| match a.strip_prefix("--test-threads") {
                Some(rest) if rest.starts_with('=') => rest[1..].parse().ok(),
                Some("") => args.get(i + 1)?.parse().ok(),
                _ => None,
            });
    from_args.or_else(|| env?.parse().ok())
}

/// How many runtimes of other tests may be being made at once, given how
/// many tests the harness runs at once: one per other test thread (none
/// when it runs one). Not known: one per other available core, at least
/// one (the harness's default, or a runner that says otherwise).
pub fn foreign_runtimes_allowed_for(test_threads: Option<usize>) -> usize {
    match test_threads {
        Some(n) => n.saturating_sub(1),
        None => std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(1)
            .max(1),
    }
}

/// How many runtimes of other tests may be being made at once
/// ([`foreign_runtimes_allowed_for`] this harness's test threads).
pub fn foreign_runtimes_allowed() -> usize {
    foreign_runtimes_allowed_for(test_threads())
}

/// The descriptors `now` holds that `before` did not (by number and
/// target), leaving out up to [`foreign_runtimes_allowed`] tokio
/// runtimes' drivers made meanwhile (see the module's docs).
pub fn opened_since(before: &Snapshot, now: &Snapshot) -> Vec<Fd> {
    opened_since_allowing(before, now, foreign_runtimes_allowed())
}

/// [`opened_since`], ignoring at most `runtimes` foreign runtimes.
pub fn opened_since_allowing(before: &Snapshot, now: &Snapshot, runtimes: usize) -> Vec<Fd> {
    let old: BTreeSet<&Fd> = before.fds.iter().collect();
    // An epoll set at a number an epoll set had before is that one if it
    // watches a descriptor it watched (a runtime's waker stays), or both
    // watch nothing. Not by a socket: every runtime's second descriptor of
    // the process-wide signal socket is that socket (same inode), so a
    // runtime dropped and another made at its numbers would pass for the
    // old one, and its new eventfd for a lone leak.
    let same_epoll = |num: i32| {
        let (Some(was), Some(is)) = (before.watches.get(&num), now.watches.get(&num)) else {
            return false;
        };
        (was.is_empty() && is.is_empty())
            || is.iter().any(|w| {
                was.contains(w)
                    && before.fd(w.0) == now.fd(w.0)
                    && now.target(w.0).is_some_and(|t| socket_inode(t).is_none())
            })
    };
    let new: Vec<&Fd> = now
        .fds
        .iter()
        .filter(|fd| {
            !old.contains(fd) || (fd.target == "anon_inode:[eventpoll]" && !same_epoll(fd.num))
        })
        .collect();
    let is_new = |num: i32| new.iter().any(|fd| fd.num == num);
    let old_sockets: BTreeSet<u64> = before
        .fds
        .iter()
        .filter_map(|fd| socket_inode(&fd.target))
        .collect();
    // The epoll sets shaped like a runtime's driver made since `before`,
    // by what they watch (an epoll set's second descriptor watches the
    // same): exactly one eventfd, at most one socket that was open before
    // (the signal driver's second descriptor of the signal socket).
    let mut runtimes_seen: BTreeMap<&Vec<(i32, u64)>, Vec<i32>> = BTreeMap::new();
    for (&num, watched) in &now.watches {
        let (mut eventfds, mut sockets) = (0, 0);
        let shaped = watched.iter().all(|&(tfd, ino)| match now.target(tfd) {
            Some("anon_inode:[eventfd]") => {
                eventfds += 1;
                true
            }
            Some(t) => {
                sockets += 1;
                socket_inode(t).is_some_and(|s| s == ino && old_sockets.contains(&s))
            }
            None => false,
        });
        if shaped && eventfds == 1 && sockets <= 1 {
            runtimes_seen.entry(watched).or_default().push(num);
        }
    }
    // Those whose epoll set is new, a runtime's two descriptors of it at
    // most. One may have been half made at `before`: its epoll set, waker
    // and the set's second descriptor old, its socket's descriptor not
    // yet made (then the set watched its eventfd alone, which a made
    // runtime's never does: tokio's signal driver is on in tests).
    let half_made = |sets: &[i32], watched: &[(i32, u64)]| {
        let was = sets.iter().find_map(|n| before.watches.get(n));
        watched.iter().any(|&(tfd, _)| {
            is_new(tfd)
                && now.target(tfd).is_some_and(|t| t.starts_with("socket:"))
                && watched.iter().all(|w| w.0 == tfd || !is_new(w.0))
                && was.is_some_and(|was| was.iter().eq(watched.iter().filter(|w| w.0 != tfd)))
        })
    };
    let mut ignored: BTreeSet<i32> = BTreeSet::new();
    let made_meanwhile = runtimes_seen.into_iter().filter(|(watched, sets)| {
        sets.len() <= 2 && (sets.iter().copied().any(is_new) || half_made(sets, watched))
    });
    for (watched, sets) in made_meanwhile.take(runtimes) {
        ignored.extend(sets.into_iter().filter(|&n| is_new(n)));
        ignored.extend(watched.iter().map(|&(tfd, _)| tfd).filter(|&n| is_new(n)));
    }
    // Strictly by number and target: a descriptor closed meanwhile and
    // another of its kind opened (a pidfd for a pidfd) is still seen. A
    // file or directory is the exception: one closed meanwhile and the
    // same file (path and inode) opened again at another number is no
    // growth (pkit's reserve descriptor, `/`, spent by a thaw and made
    // again at the lowest free number: CI failed on that in faults.rs).
    let mut moved: Vec<&Fd> = before
        .fds
        .iter()
        .filter(|was| was.target.starts_with('/') && !now.fds.contains(was))
        .collect();
    let mut out: Vec<Fd> = Vec::new();
    for fd in new.into_iter().filter(|fd| !ignored.contains(&fd.num)) {
        let same_file = |was: &&Fd| was.target == fd.target && was.id == fd.id;
        match moved.iter().position(same_file) {
            Some(i) if fd.target.starts_with('/') => {
                moved.swap_remove(i);
            }
            _ => out.push(fd.clone()),
        }
    }
    out.sort();
    out
}

/// Polls (up to [`DEADLINE`]: teardown may finish on pkit's reaper
/// thread) until no descriptor is open that was not in `before`
/// ([`opened_since`]); panics with `what`, what is open beyond `before`,
/// and both listings.
pub async fn assert_none_opened_since(before: &Snapshot, what: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = Snapshot::take();
        let leaked = opened_since(before, &now);
        if leaked.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "{what}: {} descriptor(s) left open after {DEADLINE:?}: {}\n\
                 now ({}): {}\nbefore ({}): {}",
                leaked.len(),
                list(&leaked),
                now.len(),
                list(now.fds()),
                before.len(),
                list(before.fds()),
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `fds` as `num: target, ...`.
pub fn list(fds: &[Fd]) -> String {
    fds.iter().map(Fd::to_string).collect::<Vec<_>>().join(", ")
}
