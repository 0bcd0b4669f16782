//! Unit tests of the guard with real processes.

use super::process::{event_field, join};
use super::start::start_with;
use super::sweep::{owner_of, stale, Judge, Lock, Owner};
use super::walk::for_each_pid;
use super::wire::*;
use crate::sys::linux::names::{self, Tag};
use std::io::BufRead;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Whether process `pid` is gone or a zombie (the guard, not our child,
/// may be left a zombie when this process is a pid namespace's init).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(t) => matches!(
            t[t.rfind(')').map_or(0, |i| i + 1)..]
                .split_whitespace()
                .next(),
            Some("Z" | "X")
        ),
    }
}

/// A `sleep` leading a process group of its own.
pub(super) fn sleeper() -> std::process::Child {
    std::process::Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .expect("sleep")
}

/// Whether process `pid` is gone (or a zombie) within 10 s.
pub(super) fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A process group whose leader has exited and been reaped while a
/// member (a `sleep`) lives on: returns the leader's pidfd (opened
/// before the reap), the pgid and the member's pid.
fn group_with_reaped_leader() -> (OwnedFd, i32, u32) {
    let (mut leader, pidfd, pgid, member) = group_of("sleep 300 & echo $!");
    leader.wait().expect("reap the leader");
    (pidfd, pgid, member)
}

/// A shell leading its own process group, running `script` (which
/// prints a member's pid first): the shell, its pidfd, the pgid and the
/// member's pid.
fn group_of(script: &str) -> (std::process::Child, OwnedFd, i32, u32) {
    let mut leader = std::process::Command::new("sh")
        .args(["-c", script])
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("sh");
    let pgid = leader.id() as i32;
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pgid).expect("pid"),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("pidfd");
    let mut line = String::new();
    std::io::BufReader::new(leader.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("member pid");
    let member: u32 = line.trim().parse().expect("a pid");
    (leader, pidfd, pgid, member)
}

/// Exact mode signals the group through the leader's `struct pid`: it
/// reaches the member even though the leader is reaped (and so would a
/// recycled number not be confused with it).
#[test]
fn exact_mode_reaches_a_group_whose_leader_was_reaped() {
    if !probe_exact_pgroup() {
        eprintln!("skipped: PIDFD_SIGNAL_PROCESS_GROUP needs Linux 6.9");
        return;
    }
    let (pidfd, pgid, member) = group_with_reaped_leader();
    let guard = start_with(true).expect("guard");
    guard
        .register_pgroup(pidfd.as_fd(), pgid, false)
        .expect("register");
    drop(guard); // the owner's end closes: the guard acts
    assert!(
        wait_gone(member),
        "the member of the guarded group survived"
    );
}

/// The by-number fallback refuses to signal once the leader is reaped:
/// it can no longer prove the number is still this group's.
#[test]
fn fallback_mode_never_signals_a_group_it_cannot_prove_is_ours() {
    let (pidfd, pgid, member) = group_with_reaped_leader();
    let guard = start_with(false).expect("guard");
    let guard_pid = guard.pid() as u32;
    guard
        .register_pgroup(pidfd.as_fd(), pgid, false)
        .expect("register");
    drop(guard);
    assert!(wait_gone(guard_pid), "the guard did not exit");
    let survived = !gone(member);
    let _ = std::process::Command::new("kill")
        .args(["-9", &member.to_string()])
        .status();
    assert!(
        survived,
        "the fallback signalled a group whose leader was reaped"
    );
}

/// Without `cgroup.kill` (kernels before 5.14) the guard freezes the
/// cgroup, kills each member and thaws it; then it removes the
/// directory and the extra (v1-style) directories registered with it.
#[test]
fn freeze_and_kill_fallback_empties_and_removes_the_cgroup() {
    fallback_kills_and_removes("");
}

/// The same with the member two sub-cgroups down (as a nested pkit would
/// place it) and a sub-directory in the extra directory: the kill covers
/// the subtree and the removal is depth-first.
#[test]
fn freeze_and_kill_fallback_covers_sub_cgroups() {
    fallback_kills_and_removes("a/b");
}

fn fallback_kills_and_removes(sub: &str) {
    let Ok(host) = crate::sys::linux::host::cgroup_host() else {
        eprintln!("skipped: no cgroup v2 here");
        return;
    };
    let name = |n: u32| {
        host.parent_dir
            .join(format!("pkit-{}-{}", std::process::id(), 900_000 + n))
    };
    let (dir, extra) = (name(1), name(2));
    if std::fs::create_dir(&dir).is_err() {
        eprintln!("skipped: cannot create cgroups here");
        return;
    }
    std::fs::create_dir(&extra).expect("extra dir");
    let home = dir.join(sub);
    std::fs::create_dir_all(&home).expect("sub-cgroups");
    std::fs::create_dir_all(extra.join(sub)).expect("extra sub-directories");
    // The shell forks its member only once it is in the cgroup.
    let mut sleeper = std::process::Command::new("sh")
        .args(["-c", "read go; sleep 300 & echo $!; wait"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sh");
    std::fs::write(home.join("cgroup.procs"), sleeper.id().to_string()).expect("join");
    std::io::Write::write_all(&mut sleeper.stdin.take().expect("stdin"), b"go\n").expect("go");
    let mut line = String::new();
    std::io::BufReader::new(sleeper.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("member pid");
    let member: u32 = line.trim().parse().expect("a pid");
    let guard = start_with(false).expect("guard");
    guard
        .register_cgroup(&dir, false, std::slice::from_ref(&extra), ino(&dir))
        .expect("register");
    drop(guard);
    let killed = wait_gone(member);
    let status = sleeper.wait().expect("reap");
    let deadline = Instant::now() + Duration::from_secs(10);
    while (dir.exists() || extra.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = (dir.exists(), extra.exists());
    for d in [&dir, &extra] {
        if !sub.is_empty() {
            let _ = std::fs::remove_dir(d.join(sub));
            let _ = std::fs::remove_dir(d.join("a"));
        }
        let _ = std::fs::remove_dir(d);
    }
    if !killed {
        let _ = std::process::Command::new("kill")
            .args(["-9", &member.to_string()])
            .status();
    }
    assert!(killed, "the member survived");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(left, (false, false), "directories left behind");
}

/// The fallback does kill the group while its leader is unreaped.
#[test]
fn fallback_mode_kills_a_group_with_an_unreaped_leader() {
    let (mut leader, pidfd, pgid, member) = group_of("sleep 300 & echo $!; wait");
    let guard = start_with(false).expect("guard");
    guard
        .register_pgroup(pidfd.as_fd(), pgid, false)
        .expect("register");
    drop(guard);
    let killed = wait_gone(member);
    let status = leader.wait().expect("reap");
    assert!(killed, "the member survived");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the leader was killed"
    );
}

#[test]
fn owner_names() {
    let legacy = |pid| Some(Owner { pid, tag: None });
    let tagged = |pid, ns, start| {
        Some(Owner {
            pid,
            tag: Some(Tag { ns, start }),
        })
    };
    // An older pkit's names: the pid alone.
    assert_eq!(owner_of(b"pkit-123-4"), legacy(123));
    assert_eq!(owner_of(b"pkit-123-"), None);
    assert_eq!(owner_of(b"pkit--4"), None);
    assert_eq!(owner_of(b"pkit-12x-4"), None);
    assert_eq!(owner_of(b"other-1-2"), None);
    // A named group's directory: the name is ignored, dashes and all.
    assert_eq!(owner_of(b"pkit-123-4-web"), legacy(123));
    assert_eq!(owner_of(b"pkit-123-4-web-1.x"), legacy(123));
    assert_eq!(owner_of(b"pkit-123-4-"), None);
    assert_eq!(owner_of(b"pkit-123--web"), None);
    assert_eq!(owner_of(b"pkit-123-4x-web"), None);
    // Names with the pid namespace and start time.
    assert_eq!(
        owner_of(b"pkit-123.4026531836.987-4"),
        tagged(123, 4026531836, 987)
    );
    assert_eq!(
        owner_of(b"pkit-123.4026531836.987-4-web-1.x"),
        tagged(123, 4026531836, 987)
    );
    assert_eq!(owner_of(b"pkit-123.4026531836-4"), None);
    assert_eq!(owner_of(b"pkit-123.4026531836.987.5-4"), None);
    assert_eq!(owner_of(b"pkit-123..987-4"), None);
    assert_eq!(owner_of(b"pkit-.1.2-4"), None);
    assert_eq!(owner_of(b"pkit-123.1.2x-4"), None);
    assert_eq!(owner_of(b"pkit-123.1.2-"), None);
    assert_eq!(owner_of(b"pkit-99999999999.1.2-4"), None);
    // This process's own part parses back to itself.
    let own = format!("pkit-{}-7-x", names::own());
    assert_eq!(owner_of(own.as_bytes()), Some(names::own()));
}

/// The sweep's decision for one directory: too young, locked by a live
/// owner (in any pid namespace), or of a live owner (an older pkit's name:
/// a live pid; a name with the pid namespace: that pid and start time, in
/// ours): kept; else removed under an exclusive lock.
#[test]
fn sweep_decision() {
    use rustix::fs::{flock, FlockOperation, Mode, OFlags};
    let mut dead = std::process::Command::new("true").spawn().expect("true");
    let dead_pid = dead.id();
    dead.wait().expect("wait");
    let dead = Owner {
        pid: dead_pid,
        tag: None,
    };
    let judge = Judge::here();
    let dir = std::env::temp_dir().join(format!("pkit-sweep-decision-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("a directory");
    std::fs::write(dir.join("cgroup.procs"), b"").expect("a procs file");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let open = |p: &Path| {
        rustix::fs::open(p, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).expect("open")
    };
    // A lock this test expects to get may be held a moment longer by a
    // copy of our descriptor in a child another test of this binary is
    // starting (cloned, not yet at its exec; or a forked portable guard
    // not yet past closing what it inherited): asked again until then.
    let eventually = |what: &str, mut take: Box<dyn FnMut() -> bool + '_>| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !take() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    for (lock, target) in [
        (Lock::Dir, dir.clone()),
        (Lock::Procs, dir.join("cgroup.procs")),
    ] {
        // Old enough, unlocked, its owner dead: stale, and locked for us.
        let mut held = None;
        eventually(
            &format!("{lock:?}: a dead owner's directory"),
            Box::new(|| {
                held = stale(&dir, dead, &judge, lock, now + 61, 60);
                held.is_some()
            }),
        );
        // While we hold it, another sweeper can't take it.
        assert!(
            stale(&dir, dead, &judge, lock, now + 61, 60).is_none(),
            "{lock:?}"
        );
        drop(held);
        // Made less than a minute ago: kept, whoever the owner.
        assert!(
            stale(&dir, dead, &judge, lock, now, 60).is_none(),
            "{lock:?}: young"
        );
        // A live owner's shared lock keeps it, though its pid looks dead.
        let owner = open(&target);
        eventually(
            &format!("{lock:?}: a shared lock"),
            Box::new(|| flock(&owner, FlockOperation::NonBlockingLockShared).is_ok()),
        );
        assert!(
            stale(&dir, dead, &judge, lock, now + 61, 60).is_none(),
            "{lock:?}: locked"
        );
        drop(owner);
        eventually(
            &format!("{lock:?}: released"),
            Box::new(|| stale(&dir, dead, &judge, lock, now + 61, 60).is_some()),
        );
        // A live pid that started before the directory was made: kept.
        let me = Owner {
            pid: std::process::id(),
            tag: None,
        };
        assert!(
            stale(&dir, me, &judge, lock, now + 61, 60).is_none(),
            "{lock:?}: live pid"
        );
        // Names with a pid namespace and start time (see `names.rs`).
        let Some(tag) = names::own().tag.filter(|_| names::proc_is_own()) else {
            continue;
        };
        let owner = |pid, ns, start| Owner {
            pid,
            tag: Some(Tag { ns, start }),
        };
        // This process, named exactly: kept.
        assert!(
            stale(&dir, names::own(), &judge, lock, now + 61, 60).is_none(),
            "{lock:?}: our own name"
        );
        // Our pid with another start time: a dead owner whose pid we were
        // given. Stale.
        let earlier = owner(std::process::id(), tag.ns, tag.start.wrapping_sub(1));
        let mut held = None;
        eventually(
            &format!("{lock:?}: our pid, another start"),
            Box::new(|| {
                held = stale(&dir, earlier, &judge, lock, now + 61, 60);
                held.is_some()
            }),
        );
        drop(held);
        // A dead pid of our namespace: stale.
        let gone = owner(dead_pid, tag.ns, tag.start);
        eventually(
            &format!("{lock:?}: a dead pid of our namespace"),
            Box::new(|| stale(&dir, gone, &judge, lock, now + 61, 60).is_some()),
        );
        // Our very pid and start time, of another pid namespace: the pid
        // says nothing here; unlocked, it is stale...
        let foreign = owner(std::process::id(), tag.ns.wrapping_add(1), tag.start);
        eventually(
            &format!("{lock:?}: another namespace's"),
            Box::new(|| stale(&dir, foreign, &judge, lock, now + 61, 60).is_some()),
        );
        // ...and locked by its live owner, kept.
        let holder = open(&target);
        eventually(
            &format!("{lock:?}: another namespace's lock"),
            Box::new(|| flock(&holder, FlockOperation::NonBlockingLockShared).is_ok()),
        );
        assert!(
            stale(&dir, foreign, &judge, lock, now + 61, 60).is_none(),
            "{lock:?}: another namespace's, locked"
        );
        drop(holder);
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn events_parse() {
    let text = b"populated 1\nfrozen 0\n";
    assert_eq!(event_field(text, b"populated"), Some(true));
    assert_eq!(event_field(text, b"frozen"), Some(false));
    assert_eq!(event_field(text, b"nothing"), None);
}

#[test]
fn joins_paths() {
    let mut dir = [0u8; PATH_LEN];
    dir[..4].copy_from_slice(b"/a/b");
    let mut out = [0u8; PATH_LEN + 32];
    assert!(join(&dir, b"cgroup.kill", &mut out));
    assert_eq!(&out[..17], b"/a/b/cgroup.kill\0");
}

#[test]
fn lists_pids() {
    let mut seen = Vec::new();
    for_each_pid(b"12\n345\n6", true, &mut |p| seen.push(p));
    assert_eq!(seen, [12, 345, 6]);
    seen.clear();
    // A list cut short: the last number may be partial.
    for_each_pid(b"12\n345\n6", false, &mut |p| seen.push(p));
    assert_eq!(seen, [12, 345]);
}

/// A forked portable guard keeps none of the owner's descriptors, however
/// high their number (it closed only those below 65536 before).
#[test]
fn a_forked_portable_guard_closes_descriptors_above_65536() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    use std::os::fd::AsRawFd;
    const HIGH: i32 = 66_000;
    // Raising this process's descriptor limit harms no other test (None
    // is unlimited).
    let old = getrlimit(Resource::Nofile);
    let want = old.current.map(|cur| cur.max(HIGH as u64 + 1));
    let max = want.zip(old.maximum).map(|(w, m)| w.max(m));
    let raised = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: want,
            maximum: max,
        },
    )
    .is_ok();
    if !raised {
        eprintln!("SKIPPED a_forked_portable_guard_closes_descriptors_above_65536: RLIMIT_NOFILE can't be raised above {HIGH} here");
        return;
    }
    let file = std::fs::File::open("/dev/null").unwrap();
    let high = rustix::io::fcntl_dupfd_cloexec(&file, HIGH).expect("F_DUPFD_CLOEXEC");
    assert_eq!(high.as_raw_fd(), HIGH);
    let g = super::portable::start_forked(TABLE_CAP, "test".into()).expect("a forked guard");
    let held = Path::new(&format!("/proc/{}/fd/{HIGH}", g.pid)).exists();
    let guard_pid = g.pid as u32;
    drop(g);
    drop(high);
    assert!(wait_gone(guard_pid), "the guard exits at end of file");
    assert!(!held, "the forked guard kept descriptor {HIGH}");
}

/// A directory's inode number (a registration of an existing directory).
fn ino(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(std::fs::metadata(dir).expect("the directory").ino())
}
