#![cfg(target_os = "linux")]
//! Copies forked (plain `fork`, no `exec`) while other threads use pkit,
//! which then use pkit themselves (copies2). A `std::sync::Mutex` another
//! thread holds at the fork stays held for ever in the copy: a copy's
//! pkit call that waits for one hangs. And the descriptors a copy inherits
//! from its parent's pkit threads (pipes their threads read, which the
//! copy does not have) are closed once the copy makes its own.
//!
//! Each test runs helper runs of this binary (`COPY_LOCKS_ROLE`): a
//! helper's threads make runs, group closes and stats in a loop while it
//! forks copies; each copy uses pkit with a watchdog (its own thread
//! bounded by [`COPY_LIMIT`], and an alarm past it), so a hang counts as
//! one, never as a hung test.

mod common;

use std::time::{Duration, Instant};

use common::copies::{self, copies_while_looping, Copies, Reaped};
use common::*;
use pkit::MechanismChoice;

const SUITE: &str = "copy_locks";

/// How long a copy's pkit calls may take before the copy counts as hung
/// (a hang is for ever; a loaded machine can hold a fork, an exec and a
/// reap up for seconds), and the alarm that ends a copy stuck past it.
const COPY_LIMIT: Duration = Duration::from_secs(20);
const COPY_ALARM: u32 = 40;

/// The role this run of the binary plays (a helper run), if any.
fn role() -> Option<String> {
    std::env::var("COPY_LOCKS_ROLE").ok()
}

/// Writes `s` and a line feed to fd 1 with one write(2) (safe in a forked
/// copy).
fn say(s: &str) {
    copies::say("copy_locks", s);
}

/// Runs this binary again, test `test` alone in role `role` with the
/// mechanism `choice` forced, for at most `limit` (killed then): whether
/// it exited with success, and its stdout's `copy_locks: ` lines.
fn run_helper(
    test: &str,
    role: &str,
    choice: MechanismChoice,
    limit: Duration,
) -> (bool, Vec<String>) {
    let mut cmd = self_as(test, ("COPY_LOCKS_ROLE", role), &[]);
    cmd.env("COPY_LOCKS_MECHANISM", choice.to_string());
    let (status, text) = run_helper_cmd(cmd, limit);
    helper_said(status, &text, "copy_locks: ")
}

/// The mechanism a helper run forces.
fn helper_mechanism() -> MechanismChoice {
    match std::env::var("COPY_LOCKS_MECHANISM").as_deref() {
        Ok("cgroup") => MechanismChoice::Cgroup,
        Ok("portable") => MechanismChoice::Portable,
        _ => MechanismChoice::ProcessGroup,
    }
}

/// One piece of work of kind `i % 3` under `choice`: a one-shot run (the
/// spawn, a group made and closed: a spare cgroup taken and offered), a
/// group started, waited for, measured and closed (its stats; a process
/// group's close lists `/proc`), a blocking run; whether it went.
fn work(choice: MechanismChoice, i: usize) -> bool {
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    match i % 3 {
        0 => rt()
            .block_on(cmd(choice, "true").output())
            .is_ok_and(|o| o.success()),
        1 => rt().block_on(async {
            let Ok(g) = pkit::Group::builder().mechanism(choice).build() else {
                return false;
            };
            let Ok(mut p) = g.start(&cmd(choice, "true")) else {
                return false;
            };
            let ok = p.wait().await.is_ok_and(|s| s.success());
            let _ = g.stats();
            ok && g.close().await.is_ok()
        }),
        _ => cmd(choice, "true")
            .blocking()
            .output()
            .is_ok_and(|o| o.success()),
    }
}

/// Forks a copy that runs `f` on a thread of its own, bounded by `limit`
/// (and an alarm past it); the copy's exit code: 0 when `f` returned
/// true, 1 when false, 2 when it hung.
fn in_copy(limit: Duration, f: impl FnOnce() -> bool + Send + 'static) -> i32 {
    let alarm = COPY_ALARM.max(limit.as_secs() as u32 * 2);
    copies::in_copy(alarm, limit, f)
}

/// The helper of [`copies_forked_while_threads_use_pkit_never_hang`]: two
/// threads do [`work`] in a loop; once both began, 12 copies are forked,
/// one every 5 ms (the first ones while the threads make their first
/// groups: the pool of spare cgroups is being filled), each doing all
/// three kinds of work.
fn hammer_and_fork() {
    let choice = helper_mechanism();
    let spec = Copies {
        n: 12,
        gap: Duration::from_millis(5),
        loopers: 2,
        begun: true,
        warm_up: Duration::ZERO,
        alarm: COPY_ALARM,
        killed: copies::HUNG,
        reaped: Reaped::EachFirst,
    };
    let mut codes = [0u32; 3];
    let body = move |i| {
        work(choice, i);
    };
    let copy = || copies::watched(COPY_LIMIT, move || (0..3).all(|i| work(choice, i)));
    for code in copies_while_looping(spec, body, copy) {
        codes[code as usize] += 1;
    }
    say(&format!(
        "fine {} failed {} hung {}",
        codes[0], codes[1], codes[2]
    ));
}

/// Copies forked while two threads make one-shot runs, group closes
/// with stats and blocking runs (fresh helper processes, so that the
/// first forks come while the threads make their first groups) make all
/// three themselves: none hangs, none fails. Every lock these paths take
/// is one a copy never waits on for ever (a `CopyLock`, a `try_lock`
/// with a fallback, or one a copy tells is its parent's without taking
/// it).
#[test]
fn copies_forked_while_threads_use_pkit_never_hang() {
    let name = "copies_forked_while_threads_use_pkit_never_hang";
    if role().as_deref() == Some("hammer") {
        hammer_and_fork();
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        for choice in mechanisms() {
            for round in 0..3 {
                let (ok, lines) = run_helper(
                    name,
                    "hammer",
                    choice,
                    COPY_LIMIT * 12 + Duration::from_secs(120),
                );
                assert!(ok, "{choice} round {round}: {lines:#?}");
                assert!(
                    lines.iter().any(|l| l == "fine 12 failed 0 hung 0"),
                    "{choice} round {round}: {lines:#?}"
                );
            }
        }
    });
}

/// How many of this process's open descriptors are pipes.
fn pipes() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("pipe:"))
        })
        .count()
}

/// Waits (up to 10 s) until this process holds at most `most` pipes: a
/// run's pipes are closed by its threads, which can lag behind its end;
/// the count then.
fn pipes_settled(most: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = pipes();
        if n <= most || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(POLL);
    }
}

/// The helper of [`copies_of_copies_keep_no_pipe_of_their_makers`]: a
/// supervisor runs a program, then a copy is forked, which forks a copy,
/// which forks one (three generations); each does all three kinds of
/// [`work`] and tells how many pipes it holds once its runs' pipes are
/// closed (at most as many as the first maker held at the first fork, as
/// what a copy inherits open it keeps: it waits for that first, to fork
/// the next with none of its own runs' pipes).
fn generations() {
    let choice = helper_mechanism();
    for i in 0..3 {
        work(choice, i);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sup = {
        let _in = rt.enter();
        pkit::Supervisor::new(cmd(choice, "sleep").arg("300"))
            .mechanism(choice)
            .start()
    };
    // Its program running (a child `sleep`), so that the copies have its
    // pipes too.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !own_children()
        .iter()
        .any(|(pid, _)| comm(*pid).as_deref() == Some("sleep"))
    {
        assert!(Instant::now() < deadline, "the supervised program started");
        std::thread::sleep(POLL);
    }
    fn generation(choice: MechanismChoice, base: usize, n: u32) -> i32 {
        // Each generation waits for the next ones too.
        let limit = COPY_LIMIT * (4 - n);
        in_copy(limit, move || {
            let ok = (0..3).all(|i| work(choice, i));
            say(&format!("gen {n} ok {ok} pipes {}", pipes_settled(base)));
            ok && (n == 3 || generation(choice, base, n + 1) == 0)
        })
    }
    let base = pipes();
    say(&format!("maker pipes {base}"));
    say(&format!("copies {}", generation(choice, base, 1)));
    rt.block_on(sup.stop()).expect("the supervisor stops");
}

/// A copy forked (plain `fork`) after its maker used pkit makes its own
/// exit notifier (the portable backend) and reaper (Linux) when it first
/// runs something: a pipe each, read by a thread of its own. It closes its
/// copies of its maker's pipe then (the read end is its maker's thread's,
/// which is not in the copy; nothing else would ever close them): before,
/// each generation of copies kept its makers' two ends open, two more
/// descriptors per generation (supfix's copies leaked 2 fds). Here three
/// generations, forked while the first maker runs a supervisor, hold no
/// more pipes than the maker.
#[test]
fn copies_of_copies_keep_no_pipe_of_their_makers() {
    let name = "copies_of_copies_keep_no_pipe_of_their_makers";
    if role().as_deref() == Some("generations") {
        generations();
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        for choice in mechanisms() {
            let (ok, lines) = run_helper(
                name,
                "generations",
                choice,
                COPY_LIMIT * 3 + Duration::from_secs(120),
            );
            assert!(ok, "{choice}: {lines:#?}");
            assert!(
                lines.iter().any(|l| l == "copies 0"),
                "{choice}: {lines:#?}"
            );
            let number = |l: &str| l.parse::<usize>().expect("a count");
            let base = lines
                .iter()
                .find_map(|l| l.strip_prefix("maker pipes "))
                .map(number)
                .unwrap_or_else(|| panic!("{choice}: {lines:#?}"));
            let counts: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix("gen ")?.split_once(" ok true pipes "))
                .map(|(_, n)| number(n))
                .collect();
            assert_eq!(counts.len(), 3, "{choice}: {lines:#?}");
            assert!(
                counts.iter().all(|n| *n <= base),
                "{choice}: no generation holds more pipes than the maker: {lines:#?}"
            );
        }
    });
}

/// Holds the dynamic loader's lock as long as it can: walks the loaded
/// objects with `dl_iterate_phdr`, napping 5 ms at each (glibc holds its
/// lock for the whole walk).
fn hold_the_loaders_lock() {
    unsafe extern "C" fn nap(
        _info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        _data: *mut std::ffi::c_void,
    ) -> libc::c_int {
        std::thread::sleep(Duration::from_millis(5));
        0
    }
    // SAFETY: the callback touches nothing it is handed.
    unsafe { libc::dl_iterate_phdr(Some(nap), std::ptr::null_mut()) };
}

/// The helper of [`copies_forked_in_the_loaders_lock_start_their_guard`]:
/// a thread walks the loaded objects in a loop (the loader's lock held
/// nearly all the time); 4 copies are forked meanwhile, one at a time,
/// each making a blocking portable run, this process's first pkit call
/// (its guard started, the trampoline looked for).
fn fork_in_the_loaders_lock() {
    let spec = Copies {
        n: 4,
        gap: Duration::from_millis(20),
        loopers: 1,
        begun: true,
        warm_up: Duration::from_millis(20),
        alarm: COPY_ALARM,
        killed: copies::HUNG,
        reaped: Reaped::EachFirst,
    };
    let mut codes = [0u32; 3];
    let copy = || copies::watched(COPY_LIMIT, || work(MechanismChoice::Portable, 2));
    for code in copies_while_looping(spec, |_| hold_the_loaders_lock(), copy) {
        codes[code as usize] += 1;
    }
    say(&format!(
        "fine {} failed {} hung {}",
        codes[0], codes[1], codes[2]
    ));
}

/// A copy forked while another thread of its maker held the dynamic
/// loader's lock (in `dl_iterate_phdr`, as the maker's own first portable
/// run once did, asking whether pkit is in the main executable) makes its
/// first portable run: it asks that question too, without the loader
/// (from the program headers the kernel hands it), so it does not wait for
/// a lock no thread of it will ever release (phdr: a grandcopy hung there
/// once in 300 copies-of-copies runs; here every copy hung). Portable in
/// every pass (only that backend asks).
#[test]
fn copies_forked_in_the_loaders_lock_start_their_guard() {
    let name = "copies_forked_in_the_loaders_lock_start_their_guard";
    if role().as_deref() == Some("loader") {
        fork_in_the_loaders_lock();
        return;
    }
    if role().is_some() {
        return;
    }
    in_suite(SUITE, || {
        let (ok, lines) = run_helper(
            name,
            "loader",
            MechanismChoice::Portable,
            COPY_LIMIT * 4 + Duration::from_secs(120),
        );
        assert!(ok, "{lines:#?}");
        assert!(
            lines.iter().any(|l| l == "fine 4 failed 0 hung 0"),
            "{lines:#?}"
        );
    });
}
