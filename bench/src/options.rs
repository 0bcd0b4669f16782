//! spawn-wait of `/bin/true` with many spawn options set, from a big
//! parent: the options are applied by the child between pkit's vfork-class
//! clone and `exec`, so they must cost no fork of the parent's address space
//! (issue 16's 8 GiB row "with options set"). Compared in the same rounds
//! with plain `std::process` (the row's baseline), plain pkit, and
//! `std::process` with an empty `pre_exec` hook: std has no API for umask,
//! rlimits, nice, CPU affinity or I/O priority, and a hook (its only way to
//! apply them) makes it fork the parent.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Instant;

use crate::stats::Scenario;

/// Eleven options, everything pkit applies in the child but `setsid`
/// (timed in rows of its own: see BENCHMARKS.md).
pub fn with_options(cmd: pkit::Command) -> pkit::Command {
    cmd.umask(0o027)
        .rlimit(pkit::Resource::Nofile, 512, 512)
        .rlimit(pkit::Resource::Core, 0, 0)
        // Applied (a system call each), but to what the child would have
        // anyway: a lower priority or one CPU would measure the load on
        // this shared machine, not the spawn.
        .priority(0)
        .io_priority(pkit::IoClass::BestEffort, 4)
        .cpu_affinity(0..cpu_count())
        .arg0("renamed-true")
        .inherit_env(["PATH", "HOME"])
        .stdout_file("/dev/null", pkit::FileMode::Append)
        .stderr_file("/dev/null", pkit::FileMode::Append)
        .keep_fds([(2, 7)])
}

/// This machine's CPU count, asked once: `available_parallelism` reads
/// `/proc/self/cgroup` and the cgroup's CPU quota files (21 system calls
/// here), which were timed in every run of the two rows with options
/// until the twenty-ninth pass: the bench's own work, not the spawn's.
pub fn cpu_count() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `setsid` is refused under process groups (the child would leave its
/// group): only where the cgroup mechanism holds the child.
/// Asked once: `host_containment()` probes the host (about 0.15 ms), which
/// the timed rows must not include.
pub fn setsid_ok() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| pkit::host_containment().mechanism == Some(pkit::Mechanism::CgroupV2))
}

pub fn scenario(name: &'static str) -> Scenario {
    setsid_ok();
    cpu_count();
    Scenario::new(name)
        .with("std::process", || async {
            let t = Instant::now();
            let st = std::process::Command::new("/bin/true")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
            t.elapsed().into()
        })
        .with("pkit", || async {
            let t = Instant::now();
            let code = pkit::Command::new("/bin/true")
                .stdout(pkit::Stdio::Null)
                .stderr(pkit::Stdio::Null)
                .exit_code()
                .await
                .unwrap();
            assert_eq!(code, 0);
            t.elapsed().into()
        })
        .with("pkit, 11 spawn options", || async {
            let t = Instant::now();
            let code = with_options(pkit::Command::new("/bin/true"))
                .exit_code()
                .await
                .unwrap();
            assert_eq!(code, 0);
            t.elapsed().into()
        })
        .with("pkit, the 11 and setsid", || async {
            let t = Instant::now();
            let mut cmd = with_options(pkit::Command::new("/bin/true"));
            if setsid_ok() {
                cmd = cmd.setsid();
            }
            assert_eq!(cmd.exit_code().await.unwrap(), 0);
            t.elapsed().into()
        })
        .with("pkit, setsid alone", || async {
            let t = Instant::now();
            let mut cmd = pkit::Command::new("/bin/true")
                .stdout(pkit::Stdio::Null)
                .stderr(pkit::Stdio::Null);
            if setsid_ok() {
                cmd = cmd.setsid();
            }
            assert_eq!(cmd.exit_code().await.unwrap(), 0);
            t.elapsed().into()
        })
        .with("std::process + empty pre_exec (forks)", || async {
            let t = Instant::now();
            let mut cmd = std::process::Command::new("/bin/true");
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
            // SAFETY: the hook does nothing (no allocation, no lock).
            unsafe {
                cmd.pre_exec(|| Ok(()));
            }
            assert!(cmd.status().unwrap().success());
            t.elapsed().into()
        })
}
