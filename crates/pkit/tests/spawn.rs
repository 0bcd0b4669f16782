//! The spawner's behaviour (not its speed): typed exec errors, a clean
//! signal state in the child, placement at birth, no inherited fds, and no
//! deadlock against a busy allocator. Both mechanisms.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pkit::{Command, ErrorKind, Group, MechanismChoice, Placement, SystemRunner};

fn on(m: MechanismChoice, cmd: Command) -> Command {
    cmd.runner(Arc::new(SystemRunner::with_mechanism(m)))
}

fn temp(name: &str) -> std::path::PathBuf {
    common::temp_path(&format!("spawn-{name}"))
}

/// Runs `cmd`, expecting a start failure. A script written just now can
/// still be open for writing in a sibling test's child between its clone and
/// its exec (every process that spawns has this race), and `execve` then
/// says ETXTBSY; that is retried, anything else is returned.
async fn start_failure(cmd: Command) -> pkit::Error {
    for _ in 0..200 {
        let err = cmd.output().await.unwrap_err();
        let busy = matches!(&err, pkit::Error::Spawn { source, .. }
            if source.raw_os_error() == Some(libc::ETXTBSY));
        if !busy {
            return err;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{cmd:?}: still ETXTBSY after 2 s");
}

#[tokio::test]
async fn exec_failures_are_typed_errors() {
    use std::os::unix::fs::PermissionsExt;
    let suite = common::begin("exec_failures_are_typed_errors").await;
    for m in common::mechanisms() {
        // execve itself fails: an interpreter that doesn't exist (ENOENT)
        // is a start failure naming the interpreter, not a missing
        // program (the script is there)...
        let script = temp(&format!("no-interp-{m}"));
        std::fs::write(&script, "#!/nonexistent/interpreter -x\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = start_failure(on(m, Command::new(&script))).await;
        assert_eq!(err.kind(), ErrorKind::Spawn, "{m}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("interpreter /nonexistent/interpreter "),
            "{m}: {msg}"
        );
        assert!(!msg.contains("-x"), "{m}: {msg}");
        // ...and so is one found on PATH.
        let name = script.file_name().unwrap().to_str().unwrap().to_owned();
        let err = start_failure(on(
            m,
            Command::new(&name).env("PATH", script.parent().unwrap()),
        ))
        .await;
        assert_eq!(err.kind(), ErrorKind::Spawn, "{m}: {err}");
        // ...and a file the kernel can't execute (ENOEXEC).
        std::fs::write(&script, [0x7f, b'E', b'L', b'F', 0, 0, 0, 0]).unwrap();
        let err = start_failure(on(m, Command::new(&script))).await;
        assert_eq!(err.kind(), ErrorKind::NotExecutable, "{m}: {err}");
        std::fs::remove_file(&script).unwrap();
    }
    suite.end().await;
}

/// The `Sig*` masks of a freshly exec'd program, from its own status file.
async fn signal_state(m: MechanismChoice) -> (u64, u64, u64) {
    let out = on(m, Command::new("cat").arg("/proc/self/status"))
        .output()
        .await
        .unwrap();
    let text = out.stdout_str().into_owned();
    let mask = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap()
    };
    (mask("SigBlk:"), mask("SigIgn:"), mask("SigCgt:"))
}

#[tokio::test(flavor = "current_thread")]
async fn the_child_starts_with_a_clean_signal_state() {
    let suite = common::begin("the_child_starts_with_a_clean_signal_state").await;
    // A handler in this process (tokio installs one for SIGUSR1), a signal
    // blocked in the spawning thread, and SIGPIPE ignored (Rust does that).
    let _usr1 =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).unwrap();
    // SAFETY: plain libc calls on local sigset values for this thread.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        // An ignored signal stays ignored across spawn and exec, as with
        // posix_spawn (that is how nohup works). SIGWINCH: harmless to
        // ignore in this test process.
        libc::signal(libc::SIGWINCH, libc::SIG_IGN);
    }
    for m in common::mechanisms() {
        let (blocked, ignored, caught) = signal_state(m).await;
        assert_ne!(
            ignored & (1 << (libc::SIGWINCH - 1)),
            0,
            "{m}: an inherited ignore is kept"
        );
        assert_eq!(blocked, 0, "{m}: no signal blocked");
        assert_eq!(caught, 0, "{m}: no handler survives exec anyway");
        assert_eq!(
            ignored & (1 << (libc::SIGPIPE - 1)),
            0,
            "{m}: SIGPIPE back to default"
        );
        assert_eq!(
            ignored & (1 << (libc::SIGUSR1 - 1)),
            0,
            "{m}: a handled signal is default"
        );
    }
    suite.end().await;
}

#[tokio::test]
async fn the_child_is_in_its_cgroup_from_birth() {
    let suite = common::begin("the_child_is_in_its_cgroup_from_birth").await;
    let g = Group::builder()
        .mechanism(MechanismChoice::Cgroup)
        .build()
        .unwrap();
    let dir = g
        .description()
        .strip_prefix("cgroup v2 at ")
        .and_then(|d| d.split(';').next())
        .map(std::path::PathBuf::from)
        .unwrap();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    // The rung in force is the one reported: clone3 unless PKIT_CLONE3=off
    // (CI runs this file both ways), then the child joins before exec.
    match (std::env::var("PKIT_CLONE3").as_deref(), g.placement()) {
        (Ok("off"), Placement::JoinBeforeExec { reason }) => {
            assert!(reason.contains("PKIT_CLONE3"), "{reason}")
        }
        (Ok("off"), other) => panic!("PKIT_CLONE3=off, yet {other:?}"),
        (_, placement) => assert_eq!(placement, Placement::Clone3IntoCgroup),
    }
    // The child forks at once; its child reports where it is.
    let mut first = g
        .start(
            &Command::new("sh").args(["-c", "cat /proc/self/cgroup; grep '^0::' /proc/$$/cgroup"]),
        )
        .unwrap();
    let out = first.wait().await.unwrap();
    let text = out.stdout_str();
    let v2: Vec<&str> = text.lines().filter(|l| l.starts_with("0::")).collect();
    assert_eq!(v2.len(), 2, "{text}");
    // The group's first started process lives in the group's own
    // directory (later ones in sub-cgroups of it).
    assert!(
        v2.iter().all(|l| l.ends_with(&format!("/{name}"))),
        "{text} (want {name})"
    );
    // A later one lives in its own sub-cgroup of the group's, from birth.
    let mut p = g
        .start(
            &Command::new("sh").args(["-c", "cat /proc/self/cgroup; grep '^0::' /proc/$$/cgroup"]),
        )
        .unwrap();
    let out = p.wait().await.unwrap();
    let text = out.stdout_str();
    let v2: Vec<&str> = text.lines().filter(|l| l.starts_with("0::")).collect();
    assert_eq!(v2.len(), 2, "{text}");
    let leaf = v2[0].rsplit('/').next().unwrap();
    assert!(leaf.starts_with('p'), "{text}");
    assert!(
        v2.iter().all(|l| l.ends_with(&format!("/{name}/{leaf}"))),
        "{text} (want {name}/{leaf})"
    );
    g.close().await.unwrap();
    drop((first, p));
    suite.end().await;
}

#[tokio::test]
async fn stray_descriptors_are_not_inherited() {
    let suite = common::begin("stray_descriptors_are_not_inherited").await;
    // An fd opened without close-on-exec, as a careless library might.
    // SAFETY: dup of our own open stdin... of /dev/null; the new fd is owned below.
    let raw = unsafe {
        let base = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        assert!(base >= 0);
        let high = libc::fcntl(base, libc::F_DUPFD, 50);
        libc::close(base);
        high
    };
    assert!(raw >= 50);
    // SAFETY: `raw` is a fresh fd nothing else owns.
    let stray = unsafe { OwnedFd::from_raw_fd(raw) };
    for m in common::mechanisms() {
        let out = on(m, Command::new("ls").arg("/proc/self/fd"))
            .output()
            .await
            .unwrap();
        let fds: Vec<i32> = out
            .stdout_str()
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        assert!(!fds.contains(&stray.as_raw_fd()), "{m}: inherited {fds:?}");
        assert!(
            fds.iter().all(|&fd| fd <= 3),
            "{m}: only stdio and ls's own: {fds:?}"
        );
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawning_while_another_thread_hammers_the_allocator() {
    let suite = common::begin("spawning_while_another_thread_hammers_the_allocator").await;
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let hammer = std::thread::spawn(move || {
        let mut keep = Vec::new();
        while !s.load(Ordering::Relaxed) {
            keep.push(vec![7u8; 4096]);
            if keep.len() > 256 {
                keep.clear();
            }
        }
    });
    for m in common::mechanisms() {
        let run = async {
            for _ in 0..200 {
                assert_eq!(on(m, Command::new("true")).exit_code().await.unwrap(), 0);
            }
        };
        tokio::time::timeout(Duration::from_secs(120), run)
            .await
            .expect("no deadlock");
    }
    stop.store(true, Ordering::Relaxed);
    hammer.join().unwrap();
    suite.end().await;
}
