//! Review rv18: the FIFO open's give-up by signal (`sys/open_wait.rs`,
//! `sys/unix/open_interrupt.rs`), probed with real programs. Tests that
//! showed a fault and are not fixed here are `#[ignore]`d, each with what
//! it found.

mod common;

use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use common::*;
use pkit::{FileMode, MechanismChoice};

/// Makes a FIFO at `path` with `mode` (umask 022 leaves the modes used).
fn mkfifo(path: &std::path::Path, mode: libc::mode_t) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path of our own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), mode) }, 0, "mkfifo");
}

/// The threads of this process now in `open(2)` or `openat(2)` (x86_64:
/// 2 or 257, rustix takes `open`; aarch64: 56), read from
/// `/proc/self/task/*/syscall`.
fn threads_in_openat() -> Vec<i32> {
    let nrs: &[&str] = if cfg!(target_arch = "aarch64") {
        &["56 "]
    } else {
        &["2 ", "257 "]
    };
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("syscall"))
                .is_ok_and(|s| nrs.iter().any(|nr| s.starts_with(nr)))
        })
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect()
}

/// Set in the helper run of
/// [`a_sigurg_once_pkits_handler_is_in_does_not_fail_an_unbounded_fifo_start`].
const UNBOUNDED: &str = "PKIT_RV18_UNBOUNDED";

/// The helper's body (run as `nobody`, process groups): a give-up that
/// only a signal releases (a stdout FIFO of mode 0200: its reading end
/// can't be opened) installs pkit's SIGURG handler (no `SA_RESTART`);
/// then a start with no timeout or token waits on a stdin FIFO (the
/// plain `open` on the caller's thread, `open_wait.rs`), and the thread
/// in that open takes a SIGURG (as it may take one sent to the process:
/// `tgkill` to the thread in `openat`). Prints what happened.
fn unbounded_helper() {
    let dir = common::temp_path("rv18");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let out = dir.join("out");
    let inp = dir.join("in");
    mkfifo(&out, 0o200);
    mkfifo(&inp, 0o600);
    let gave_up = cmd(MechanismChoice::ProcessGroup, "true")
        .stdout_file(&out, FileMode::Truncate)
        .timeout(Duration::from_millis(500))
        .blocking()
        .output();
    // SAFETY: a sigaction(2) query into zeroed storage of our own.
    let (installed, restart) = unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGURG, std::ptr::null(), &mut now), 0);
        (
            now.sa_sigaction != libc::SIG_DFL && now.sa_sigaction != libc::SIG_IGN,
            now.sa_flags & libc::SA_RESTART != 0,
        )
    };
    let start = {
        let inp = inp.clone();
        std::thread::spawn(move || {
            cmd(MechanismChoice::ProcessGroup, "cat")
                .stdin_file(&inp)
                .blocking()
                .output()
        })
    };
    // The SIGURG, a few times (for a second, and until one went out: a
    // loaded machine may be slow to bring the thread to its open), to the
    // thread in its open.
    let began = Instant::now();
    let mut sent = 0;
    while began.elapsed() < Duration::from_secs(1)
        || (sent == 0 && began.elapsed() < Duration::from_secs(60))
    {
        for tid in threads_in_openat() {
            // SAFETY: tgkill(2) of a thread of this process, a signal
            // whose handler (pkit's) does nothing.
            unsafe {
                libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGURG);
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // A writer that writes a line and goes, for a start still waiting
    // (its non-blocking open fails while no reader is there: tried again
    // until the start's open is, or the start has ended).
    let began = Instant::now();
    while !start.is_finished() && began.elapsed() < Duration::from_secs(60) {
        if let Ok(mut w) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&inp)
        {
            use std::io::Write;
            let _ = w.write_all(b"written\n");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = start.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let unbounded = match &got {
        Ok(o) => format!("ok:{}", String::from_utf8_lossy(o.stdout()).trim()),
        Err(e) => format!("err:{e}"),
    };
    println!(
        "RV18 gave_up={} installed={installed} restart={restart} sent={} unbounded={unbounded}",
        gave_up.is_err(),
        sent > 0
    );
}

/// Once pkit has installed its SIGURG handler (a give-up that only a
/// signal could release: a FIFO its user may open one way only), a
/// SIGURG that a thread in the plain `open` of an unbounded FIFO start
/// takes (a start with no timeout or cancel token, or `spawn_detached`)
/// failed that start with "Interrupted system call": the open at
/// `open_wait.rs` (the `unbounded()` path) did not retry `EINTR`, which
/// `std::fs::File::open` does, and pkit's handler has no `SA_RESTART`.
/// Before the handler, SIGURG was ignored and the wait went on. Found by
/// rv18; fixed: that open retries `EINTR`. Run as `nobody` (root opens
/// a 0200 FIFO for reading all the same), process groups.
#[test]
fn a_sigurg_once_pkits_handler_is_in_does_not_fail_an_unbounded_fifo_start() {
    if std::env::var_os(UNBOUNDED).is_some() {
        unbounded_helper();
        return;
    }
    let Some(text) = as_nobody(
        "a_sigurg_once_pkits_handler_is_in_does_not_fail_an_unbounded_fifo_start",
        UNBOUNDED,
    ) else {
        return;
    };
    assert!(
        text.contains(
            "RV18 gave_up=true installed=true restart=false sent=true unbounded=ok:written"
        ),
        "{text}"
    );
}

/// Runs the test `name` of this binary again as `nobody` (process
/// groups) with `marker` set, between a suite's begin and end; its
/// stdout and stderr, once it succeeded; `None` when not root.
fn as_nobody(name: &'static str, marker: &str) -> Option<String> {
    // SAFETY: a plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        skipped(name, "needs root to run the helper as nobody");
        return None;
    }
    let mut out = None;
    in_suite(name, || {
        let run = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                name,
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(marker, "1")
            .env("PKIT_MECHANISM", "pgroup")
            .env("TMPDIR", "/tmp")
            .output()
            .unwrap();
        out = Some(run);
    });
    let out = out.unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    Some(text)
}

/// Set in the helper run of [`many_give_ups_by_signal_at_once_leave_nothing`].
const MANY: &str = "PKIT_RV18_MANY";

/// This process's open descriptors.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// What this process's descriptors name.
fn fd_targets() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .map(|e| {
            format!(
                "{:?}->{:?}",
                e.file_name(),
                std::fs::read_link(e.path()).unwrap_or_default()
            )
        })
        .collect()
}

/// Sixteen starts at once, each waiting on a stdout FIFO of mode 0200 of
/// its own (only a signal releases them: `nobody` can't open the reading
/// end), each given up by its timeout: all time out, no `pkit-fifo-open`
/// thread and no descriptor is left, and a second round does the same
/// (the handler installed once). Run as `nobody`, process groups.
#[test]
fn many_give_ups_by_signal_at_once_leave_nothing() {
    if std::env::var_os(MANY).is_some() {
        let dir = common::temp_path("rv18m");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        // A start first: what pkit keeps open from the first one on.
        cmd(MechanismChoice::ProcessGroup, "true")
            .blocking()
            .output()
            .unwrap();
        let fds = open_fds();
        let before = fd_targets();
        let mut timed_out = 0;
        for round in 0..2 {
            let starts: Vec<_> = (0..16)
                .map(|i| {
                    let out = dir.join(format!("out{round}-{i}"));
                    mkfifo(&out, 0o200);
                    std::thread::spawn(move || {
                        cmd(MechanismChoice::ProcessGroup, "true")
                            .stdout_file(&out, FileMode::Append)
                            .timeout(Duration::from_millis(300 + 20 * i))
                            .blocking()
                            .output()
                    })
                })
                .collect();
            for s in starts {
                timed_out += usize::from(s.join().unwrap().is_err());
            }
        }
        let until = Instant::now() + Duration::from_secs(5);
        while (open_threads() > 0 || open_fds() > fds) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&dir);
        let mut more = fd_targets();
        more.retain(|f| !before.contains(f));
        eprintln!("descriptors opened meanwhile: {more:?}");
        println!(
            "RV18 timed_out={timed_out} threads={} fds_more={}",
            open_threads(),
            open_fds().saturating_sub(fds)
        );
        return;
    }
    let Some(text) = as_nobody("many_give_ups_by_signal_at_once_leave_nothing", MANY) else {
        return;
    };
    assert!(
        text.contains("RV18 timed_out=32 threads=0 fds_more=0"),
        "{text}"
    );
}

/// Two starts wait on the same stdin FIFO, one with a short timeout,
/// one with a long one. The first one's give-up opens the FIFO's writing
/// end for an instant, which ends the *second* start's wait too: its
/// `cat` reads an end of file at once and the run succeeds with nothing
/// read, though nobody ever wrote and its own timeout is far off; the
/// line a writer sends later goes nowhere. The docs say a reader or
/// writer of the FIFO "elsewhere" may see that instant; here it is pkit's
/// own other start. Found by rv18 (LOW; kept by design: the give-up opens
/// the other end first because that needs no signal handler; a give-up
/// that signalled its own thread first would leave the other start
/// alone). `stdout_file`'s docs now say that another start of this
/// process waiting on the same FIFO is released too (end of file, broken
/// pipe).
#[test]
#[ignore = "rv18 LOW, by design (documented in stdout_file): one start's FIFO give-up also ends another start's wait on the same FIFO (reads EOF)"]
fn a_give_up_leaves_another_start_on_the_same_fifo_waiting() {
    in_suite(
        "a_give_up_leaves_another_start_on_the_same_fifo_waiting",
        || {
            for choice in mechanisms() {
                let dir = TempPath::new("rv18-two");
                std::fs::create_dir(dir.path()).unwrap();
                let path = dir.path().join("in");
                mkfifo(&path, 0o600);
                let spawn = |timeout: u64| {
                    let path = path.clone();
                    std::thread::spawn(move || {
                        cmd(choice, "cat")
                            .stdin_file(&path)
                            .timeout(Duration::from_secs(timeout))
                            .blocking()
                            .output()
                    })
                };
                let short = spawn(1);
                let long = spawn(30);
                let short = short.join().unwrap();
                // Long after the short one gave up, a writer comes.
                std::thread::sleep(Duration::from_millis(500));
                let long_done_early = long.is_finished();
                {
                    use std::io::Write;
                    // Blocks until a reader is there (the long start's
                    // child); nonblocking would fail with none.
                    let writer = {
                        let path = path.clone();
                        std::thread::spawn(move || {
                            if let Ok(mut w) = std::fs::OpenOptions::new()
                                .write(true)
                                .custom_flags(libc::O_NONBLOCK)
                                .open(&path)
                            {
                                let _ = w.write_all(b"written\n");
                            }
                        })
                    };
                    writer.join().unwrap();
                }
                let long = long.join().unwrap();
                let _ = std::fs::remove_dir_all(dir.path());
                assert!(short.is_err(), "{choice}: the short start timed out");
                let long = long.expect("the long start");
                assert!(
                    !long_done_early && long.stdout() == b"written\n",
                    "{choice}: the long start ended early={long_done_early}, read {:?}",
                    String::from_utf8_lossy(long.stdout())
                );
            }
        },
    );
}

/// Set in the helper run of
/// [`a_process_sigurg_an_application_takes_by_signalfd_is_not_stolen`].
const SIGNALFD: &str = "PKIT_RV18_SIGNALFD";

/// An application that blocks SIGURG in every thread and takes it from a
/// `signalfd` (started with it blocked: every thread inherits that mask).
/// While a bounded start waits on a stdin FIFO, a SIGURG is sent to the
/// process, five times: the application's `signalfd` should read each.
/// The `pkit-fifo-open` thread unblocked SIGURG for itself
/// (`open_interrupt::accept_in_this_thread`, from its first instant, given
/// up or not), so the kernel handed a process-directed SIGURG to that
/// thread, the one thread that did not block it: it was discarded there
/// (its default action, or pkit's handler), and the `signalfd` mostly
/// read nothing. Found by rv18 (LOW: only SIGURG, only while a bounded
/// FIFO open waits, only for an application that takes SIGURG
/// synchronously); fixed: the thread keeps the mask it inherits, and one
/// that blocks SIGURG is never signalled (the give-up opens the other end,
/// as here, or leaves the thread: see
/// [`a_give_up_nothing_can_release_returns_and_leaves_its_thread`]).
#[test]
fn a_process_sigurg_an_application_takes_by_signalfd_is_not_stolen() {
    if std::env::var_os(SIGNALFD).is_some() {
        signalfd_helper();
        return;
    }
    in_suite(
        "a_process_sigurg_an_application_takes_by_signalfd_is_not_stolen",
        || {
            use std::os::unix::process::CommandExt;
            let mut helper = std::process::Command::new(std::env::current_exe().unwrap());
            helper
                .args([
                    "--exact",
                    "a_process_sigurg_an_application_takes_by_signalfd_is_not_stolen",
                    "--include-ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(SIGNALFD, "1")
                .env("PKIT_MECHANISM", "pgroup");
            // SAFETY: pthread_sigmask(3) in the forked child before its
            // exec, on storage of its own (async-signal-safe calls).
            unsafe {
                helper.pre_exec(|| {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, libc::SIGURG);
                    libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                    Ok(())
                });
            }
            let out = helper.output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{text}");
            assert!(text.contains("RV18 read=5 of 5"), "{text}");
        },
    );
}

/// The body of the helper run (SIGURG blocked in every thread).
fn signalfd_helper() {
    // SAFETY: signalfd(2) on a set of our own; the descriptor is ours.
    let sfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGURG);
        let mut now: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut now);
        assert_eq!(libc::sigismember(&now, libc::SIGURG), 1, "SIGURG blocked");
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    };
    assert!(sfd >= 0);
    let dir = TempPath::new("rv18-sfd");
    std::fs::create_dir(dir.path()).unwrap();
    let mut read = 0;
    for i in 0..5 {
        let path = dir.path().join(format!("in{i}"));
        mkfifo(&path, 0o600);
        let start = {
            let path = path.clone();
            std::thread::spawn(move || {
                cmd(MechanismChoice::ProcessGroup, "cat")
                    .stdin_file(&path)
                    .timeout(Duration::from_millis(1500))
                    .blocking()
                    .output()
            })
        };
        let until = Instant::now() + Duration::from_secs(5);
        while open_threads() == 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(100));
        // From another process, as a SIGURG comes (sent by this thread,
        // the signal would be there for its own signalfd read at once).
        let sent = std::process::Command::new("kill")
            .args(["-URG", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let mut pfd = libc::pollfd {
            fd: sfd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut info = [0u8; 128];
        // SAFETY: poll(2) and read(2) on our signalfd into our buffer.
        let got = unsafe {
            libc::poll(&mut pfd, 1, 500);
            libc::read(sfd, info.as_mut_ptr().cast(), info.len()) > 0
        };
        read += usize::from(got);
        let _ = start.join().unwrap();
    }
    println!("RV18 read={read} of 5");
}

/// Set in the helper run of
/// [`a_give_up_nothing_can_release_returns_and_leaves_its_thread`].
const NOTHING: &str = "PKIT_RV18_NOTHING";

/// Gives up a start on a fresh stdout FIFO of mode 0200 in `dir` (only a
/// signal releases it, run as `nobody`) with a 300 ms timeout: whether it
/// failed with an `Error::Io` whose source timed out, and how long it took.
fn times_out_0200(dir: &std::path::Path, name: &str) -> (bool, Duration) {
    let out = dir.join(name);
    mkfifo(&out, 0o200);
    let began = Instant::now();
    let got = cmd(MechanismChoice::ProcessGroup, "true")
        .stdout_file(&out, FileMode::Append)
        .timeout(Duration::from_millis(300))
        .blocking()
        .output();
    let took = began.elapsed();
    let timed_out = got.is_err_and(|e| {
        e.kind() == pkit::ErrorKind::Io
            && std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    });
    (timed_out, took)
}

/// A give-up nothing can release: the FIFO's other end can't be opened
/// (mode 0200, run as `nobody`) and the signal can't be used, first
/// because the starting thread blocks SIGURG (the waiting thread inherits
/// that mask and is not signalled: pkit's handler is not even installed),
/// then because the application has a SIGURG handler of its own. Each
/// start fails as timed out and leaves its thread, as documented. Before
/// rv18's fixes the first was released by the signal (the thread unblocked
/// SIGURG for itself), and the second went on trying for its full release
/// wait (2 s) past the timeout (300 ms) before it returned; now it returns
/// as soon as both ways have failed (the durations are printed, not
/// asserted). Last, the application puts SIGURG back to its default: the
/// next give-up installs pkit's handler and releases its thread (whether
/// the handler can be installed is looked at again each time; it was
/// once per process before). Run as `nobody`, process groups.
#[test]
fn a_give_up_nothing_can_release_returns_and_leaves_its_thread() {
    if std::env::var_os(NOTHING).is_some() {
        let dir = common::temp_path("rv18n");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let (blocked, blocked_took) = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                // SAFETY: pthread_sigmask(3) of this thread only, on a set
                // of our own.
                unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, libc::SIGURG);
                    libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                }
                times_out_0200(&dir, "blocked")
            })
            .join()
            .unwrap()
        };
        let blocked_left = open_threads();
        let default_kept = sigurg_now() == libc::SIG_DFL;
        let mine = app_sigurg as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: sigaction(2) of this helper: a handler that does
        // nothing, an emptied mask, SA_RESTART.
        unsafe {
            let mut a: libc::sigaction = std::mem::zeroed();
            a.sa_sigaction = mine;
            a.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut a.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGURG, &a, std::ptr::null_mut()), 0);
        }
        let (handler, handler_took) = times_out_0200(&dir, "handler");
        let handler_left = open_threads();
        let kept = sigurg_now() == mine;
        // The application puts SIGURG back to its default: the next
        // give-up installs pkit's handler and releases its thread.
        // SAFETY: sigaction(2) of this helper back to the default action.
        unsafe {
            let mut a: libc::sigaction = std::mem::zeroed();
            a.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut a.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGURG, &a, std::ptr::null_mut()), 0);
        }
        let (later, _) = times_out_0200(&dir, "later");
        // The released thread ends after the give-up returned (its open
        // fails, then it exits): polled for, up to 10 s (a loaded machine
        // once took longer than the look right after the return).
        let until = Instant::now() + Duration::from_secs(10);
        let mut later_left = open_threads();
        while later_left != handler_left && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
            later_left = open_threads();
        }
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("RV18 with SIGURG blocked the give-up took {blocked_took:?}, under the application's handler {handler_took:?} (timeout 300ms)");
        println!(
            "RV18 blocked={blocked} blocked_left={blocked_left} default_kept={default_kept} handler={handler} handler_left={handler_left} kept={kept} later={later} later_released={}",
            later_left == handler_left
        );
        return;
    }
    let Some(text) = as_nobody(
        "a_give_up_nothing_can_release_returns_and_leaves_its_thread",
        NOTHING,
    ) else {
        return;
    };
    eprintln!("{text}");
    assert!(
        text.contains("RV18 blocked=true blocked_left=1 default_kept=true handler=true handler_left=2 kept=true later=true later_released=true"),
        "{text}"
    );
}

/// Set in the helper run of [`tokio_sigurg_after_pkits_handler`].
const TOKIO: &str = "PKIT_RV18_TOKIO";

/// Gives up a start on a fresh stdout FIFO of mode 0200 in `dir` (only a
/// signal releases it, run as `nobody`): whether it timed out.
fn give_up_0200(dir: &std::path::Path, name: &str) -> bool {
    let out = dir.join(name);
    mkfifo(&out, 0o200);
    cmd(MechanismChoice::ProcessGroup, "true")
        .stdout_file(&out, FileMode::Append)
        .timeout(Duration::from_millis(300))
        .blocking()
        .output()
        .is_err()
}

/// An application that listens for SIGURG with `tokio::signal` after
/// pkit installed its handler: Tokio's registration chains to pkit's
/// handler, and a SIGURG sent to the process reaches the application's
/// stream; from then on a give-up that only a signal releases leaves its
/// thread, as documented (pkit's handler is no longer SIGURG's). Run as
/// `nobody`, process groups. (Passes: no fault; it pins the documented
/// behaviour.)
#[test]
fn tokio_sigurg_after_pkits_handler() {
    if std::env::var_os(TOKIO).is_some() {
        let dir = common::temp_path("rv18t");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let first = give_up_0200(&dir, "a");
        let first_left = open_threads();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let heard = rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut urg = signal(SignalKind::from_raw(libc::SIGURG)).unwrap();
            let sent = tokio::task::spawn_blocking(|| {
                std::process::Command::new("kill")
                    .args(["-URG", &std::process::id().to_string()])
                    .status()
                    .unwrap()
            })
            .await
            .unwrap();
            assert!(sent.success());
            tokio::time::timeout(Duration::from_secs(5), urg.recv())
                .await
                .is_ok()
        });
        let began = Instant::now();
        let second = give_up_0200(&dir, "b");
        let second_took = began.elapsed();
        let second_left = open_threads();
        // Not asserted: a give-up nothing can release returns as soon as
        // both ways have failed (before rv18's fix it went on trying for
        // RELEASE_FOR, 2 s, past the timeout, 300 ms).
        eprintln!("RV18 the second give-up took {second_took:?}");
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "RV18 first={first} first_left={first_left} heard={heard} second={second} second_left={second_left}"
        );
        return;
    }
    let Some(text) = as_nobody("tokio_sigurg_after_pkits_handler", TOKIO) else {
        return;
    };
    assert!(
        text.contains("RV18 first=true first_left=0 heard=true second=true second_left=1"),
        "{text}"
    );
}

/// Set in the helper run of [`pkit_never_replaces_an_applications_sigurg_handler`].
const SWAP: &str = "PKIT_RV18_SWAP";

/// The application's SIGURG handler in the helper run: does nothing.
extern "C" fn app_sigurg(_: libc::c_int) {}

/// SIGURG's handler now.
fn sigurg_now() -> libc::sighandler_t {
    // SAFETY: a sigaction(2) query into zeroed storage of our own.
    unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGURG, std::ptr::null(), &mut now);
        now.sa_sigaction
    }
}

/// An application with its own SIGURG handler: pkit's first give-up that
/// needs a signal (`open_interrupt::installed`) installs its handler and
/// only then looks at what it replaced, putting the application's back:
/// for that instant SIGURG's handler is pkit's, and a SIGURG sent then
/// runs pkit's handler instead of the application's (lost to it); an
/// application thread installing a handler in that instant has it
/// overwritten by the restore. A thread that watches SIGURG's handler
/// saw pkit's (at the first try, mostly). Found by rv18 (LOW: one
/// instant per process, once); fixed: SIGURG's handler is looked at
/// first (`sigaction(SIGURG, NULL, &old)`) and pkit's installed only
/// over the default or an ignore. Run as `nobody` (a 0200 FIFO: only a
/// signal releases it), process groups; tried in five processes.
#[test]
fn pkit_never_replaces_an_applications_sigurg_handler() {
    if std::env::var_os(SWAP).is_some() {
        let mine = app_sigurg as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: sigaction(2) of this helper: a handler that does
        // nothing, an emptied mask, SA_RESTART.
        unsafe {
            let mut a: libc::sigaction = std::mem::zeroed();
            a.sa_sigaction = mine;
            a.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut a.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGURG, &a, std::ptr::null_mut()), 0);
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen_other = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if sigurg_now() != mine {
                        seen_other += 1;
                    }
                }
                seen_other
            })
        };
        let dir = common::temp_path("rv18s");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let timed_out = give_up_0200(&dir, "a");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let seen = watcher.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "RV18 timed_out={timed_out} kept={} swapped={}",
            sigurg_now() == mine,
            seen > 0
        );
        return;
    }
    for _ in 0..5 {
        let Some(text) = as_nobody("pkit_never_replaces_an_applications_sigurg_handler", SWAP)
        else {
            return;
        };
        assert!(text.contains("RV18 timed_out=true kept=true"), "{text}");
        assert!(text.contains("swapped=false"), "{text}");
    }
}
