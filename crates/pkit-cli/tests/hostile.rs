//! `pkit run` given what a hostile or merely unusual caller gives it: odd
//! environments, odd arguments, signals at bad moments, programs that
//! misbehave. Each case names what went wrong before its fix, if anything.
// Unix only: these run the Linux CLI (signals, /proc); Windows has
// tests/windows.rs.
#![cfg(unix)]

use std::os::unix::ffi::OsStrExt;
use std::process::Stdio;

mod common;

use common::*;

/// An inherited variable whose name begins with `=` (a raw environ entry
/// `=LEAD=1`: `std::env::vars_os` names it `=LEAD`; cmd.exe's `=C:=C:\dir`
/// variables look the same on Windows) is passed on as it came, as
/// `std::process::Command` does. Before: every spawn failed with "an
/// environment variable name is empty or contains '='", so pkit ran
/// nothing at all in such an environment.
#[test]
fn an_inherited_variable_named_with_a_leading_equals_sign_is_passed_on() {
    for m in mechanisms() {
        let out = pkit()
            .args(["run", "-q", "--mechanism", m, "--", "env", "-0"])
            .env("=LEAD", "1")
            .env("PKIT_TEST_ODD", "a=b")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{m}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vars: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
        for want in [&b"=LEAD=1"[..], b"PKIT_TEST_ODD=a=b"] {
            assert!(
                vars.contains(&want),
                "{m}: {:?} not in the child's environment",
                std::ffi::OsStr::from_bytes(want)
            );
        }
    }
    // A name pkit is asked to set is still checked.
    let out = pkit()
        .args(["run", "-q", "-E", "=X=1", "--", "true"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
}

/// A run starts one owner-death guard: the one its mechanism uses. Before,
/// `--mechanism portable` started the Linux guard too (a second process,
/// and a second run of the executable), because creating any group that
/// had no cgroup registration to release still asked for that guard.
#[test]
fn a_run_starts_only_the_guard_its_mechanism_uses() {
    for m in mechanisms() {
        let tag = format!("{}-guards-{m}", std::process::id());
        let file = pid_file();
        let mut child = pkit()
            .args(["run", "-q", "--mechanism", m, "--", "sh", "-c"])
            .arg(format!("echo $$ > {}; exec sleep 300", file.display()))
            .env("PKIT_TEST_TAG", &tag)
            .stdin(Stdio::null())
            .spawn()
            .map(Started::new)
            .unwrap();
        let pids = read_pids(&file, 1);
        // The guards start before the program; give a slow second one time
        // to show.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let guards = guards_tagged(&tag);
        kill(child.id(), libc::SIGTERM);
        child.wait().unwrap();
        let _ = std::fs::remove_file(&file);
        assert_all_gone(&pids);
        assert_eq!(guards.len(), 1, "{m}: guards {guards:?}");
    }
}

/// A pkit run by the dynamic loader itself (`ld.so /path/to/pkit run ...`,
/// as some bundlers and wrappers start programs) runs only the program it
/// was given. Before: on the portable backend the group's first process
/// was started as `/proc/self/exe`, which then names the loader, not pkit;
/// the loader ran the program's first argument as a program (here
/// `/bin/touch <marker>`) and only then was the real program started.
#[cfg(target_os = "linux")]
#[test]
fn a_pkit_started_by_the_dynamic_loader_runs_only_its_program() {
    let Some(loader) = [
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/ld-linux-aarch64.so.1",
        "/lib/ld-linux-armhf.so.3",
        "/lib64/ld64.so.2",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists()) else {
        eprintln!("skipped: no known glibc dynamic loader here");
        return;
    };
    for m in mechanisms() {
        let marker = common::temp_path(&format!("ldso-{m}"));
        let _ = std::fs::remove_file(&marker);
        let out = std::process::Command::new(loader)
            .arg(env!("CARGO_BIN_EXE_pkit"))
            .args([
                "run",
                "-q",
                "--mechanism",
                m,
                "--",
                "/bin/echo",
                "/bin/touch",
            ])
            .arg(&marker)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let ran = marker.exists();
        let _ = std::fs::remove_file(&marker);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{m}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.stdout,
            format!("/bin/touch {}\n", marker.display()).into_bytes(),
            "{m}"
        );
        assert!(
            !ran,
            "{m}: the loader ran /bin/touch, which nobody asked for"
        );
    }
}

/// `--stats` without a cgroup (rusage of reaped children) gives the
/// program's figures, not those of pkit's own helpers. Before, under
/// process groups the peak was the owner-death guard's launcher's (~7 MiB
/// here, for `true`: it shares pkit's memory, as a vfork-started program
/// does until its exec, and the kernel counts that memory's peak in
/// theirs), its CPU was added in, and under the portable backend the
/// program, its group's unreaped leader, was not counted at all (a 64 MiB
/// program reported the launcher's 7 MiB).
#[test]
fn stats_under_process_groups_are_the_programs_not_pkits_helpers() {
    let big = "b = bytearray(64 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1";
    for m in mechanisms().into_iter().filter(|&m| m != "cgroup") {
        let out = run(&[
            "run",
            "-q",
            "--json",
            "--stats",
            "--mechanism",
            m,
            "--",
            "python3",
            "-c",
            big,
        ]);
        assert_eq!(out.status.code(), Some(0), "{m}: {out:?}");
        let s = report(&out)["stats"].clone();
        assert_eq!(s["cpu_source"], "rusage", "{m}: {s}");
        assert!(
            s["peak_memory_bytes"].as_u64().unwrap_or(0) >= 64 << 20,
            "{m}: {s}"
        );
        // `true` peaks below the helpers: unknown then, never theirs.
        let out = run(&[
            "run",
            "-q",
            "--json",
            "--stats",
            "--mechanism",
            m,
            "--",
            "true",
        ]);
        let s = report(&out)["stats"].clone();
        assert!(
            s["peak_memory_bytes"].as_u64().is_none_or(|p| p < 4 << 20),
            "{m}: {s}"
        );
    }
}

/// Signals ignored when pkit starts (`nohup` ignores SIGHUP; a
/// non-interactive shell's `cmd &` ignores SIGINT and SIGQUIT) stay
/// ignored in the program, and a hangup ends neither pkit nor the
/// program, under every mechanism. Before, the portable backend's signal
/// receiver (the self-pipe macOS and the BSDs always use) installed its
/// handler over the inherited SIG_IGN, so the program started with those
/// signals at their default and `nohup pkit run ...` died of the hangup
/// (pkit too, re-raising it); the Linux signalfd path kept them ignored.
#[test]
fn signals_ignored_at_start_stay_ignored_in_the_program() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    for m in mechanisms() {
        let mut cmd = pkit();
        cmd.args(["run", "-q", "--mechanism", m, "--", "sh", "-c"])
            .arg("grep '^SigIgn' /proc/self/status; exec sleep 30")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        // SAFETY: signal(2) in the forked child before exec, as nohup does.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map(Started::new).unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mask = line
            .split_whitespace()
            .nth(1)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or_else(|| panic!("{m}: {line:?}"));
        let hup_int = (1 << (libc::SIGHUP - 1)) | (1 << (libc::SIGINT - 1));
        assert_eq!(
            mask & hup_int,
            hup_int,
            "{m}: SIGHUP and SIGINT are ignored in the program: {line:?}"
        );
        // A hangup: nobody dies of it.
        kill(child.id(), libc::SIGHUP);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let early = child.try_wait().unwrap();
        kill(child.id(), libc::SIGTERM);
        let status = child.wait().unwrap();
        assert!(
            early.is_none(),
            "{m}: pkit ended on an ignored SIGHUP: {early:?}"
        );
        assert_ne!(status.code(), Some(0), "{m}: ended by the SIGTERM");
    }
}

/// Started with almost no descriptors (`ulimit -n` of 4 to 16), `pkit run`
/// and `pkit supervise` either run the program or say they cannot, with
/// pkit's own exit status (125); they never panic. Before: with 6 to 8
/// descriptors, Tokio's signal set-up panicked while the runtime was built
/// (exit 101, a backtrace instead of an error).
#[test]
fn too_few_descriptors_is_a_start_failure_not_a_panic() {
    let bin = env!("CARGO_BIN_EXE_pkit");
    let mut cases: Vec<Vec<&str>> = mechanisms()
        .into_iter()
        .map(|m| vec!["run", "-q", "--mechanism", m, "--", "true"])
        .collect();
    cases.push(vec!["supervise", "--max-restarts", "0", "--", "true"]);
    for case in &cases {
        for n in 4..=16 {
            // (3 leaves the dynamic loader none for the C library.)
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(bin)
                .args(case)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            let code = out.status.code();
            assert!(
                !err.contains("panicked") && matches!(code, Some(0) | Some(125)),
                "{case:?} with ulimit -n {n}: {code:?} {err}"
            );
            if code == Some(125) {
                assert!(err.starts_with("pkit: "), "{case:?} ulimit -n {n}: {err}");
            }
        }
    }
}

/// Run with almost no descriptors free (`ulimit -n` 12 to 24), a program
/// that leaves a process behind under a process group (either backend):
/// the run ends (0, or 125 where it could not start) and the process it
/// left is gone. Before: with 12 to 15 descriptors the close found none
/// free to list `/proc` with and retried until its deadline; now `/proc` is
/// kept open from the group's creation. No duration is asserted here (the
/// house rule): that a close with no descriptor free lists and succeeds is
/// tested as an effect in the library's `tests/pgroup_no_descriptors.rs`.
#[test]
fn a_run_with_no_descriptor_free_ends_and_leaves_nothing() {
    let bin = env!("CARGO_BIN_EXE_pkit");
    for m in mechanisms().into_iter().filter(|&m| m != "cgroup") {
        let mut ran = 0;
        for n in 12..=24 {
            let file = pid_file();
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(bin)
                .args(["run", "-q", "--mechanism", m, "--", "sh", "-c"])
                .arg(format!("sleep 300 & echo $! > {}", file.display()))
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            let left: Option<i32> = std::fs::read_to_string(&file)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let _ = std::fs::remove_file(&file);
            if let Some(pid) = left {
                assert_all_gone(&[pid]);
                ran += 1;
            }
            assert!(
                matches!(out.status.code(), Some(0) | Some(125)),
                "{m} with ulimit -n {n}: {:?} {err}",
                out.status
            );
        }
        assert!(ran > 0, "{m}: no limit from 12 to 24 let the program start");
    }
}

/// At a low descriptor limit (`ulimit -n` 12 to 24), in every mechanism,
/// a program that leaves a process behind: the process is gone when the
/// run ends, the run never waits out a grace its ending signal could not
/// start, and the summary never counts the leftovers as 0 when it could
/// not count them. Before, under cgroup v2: at 19 descriptors the SIGTERM
/// could not reach the cgroup's members (listing and freezing them needs
/// several descriptors) and the run waited the whole grace for nothing,
/// SIGKILL coming only after it; at 12 to 18 the members could not be
/// listed at all, and the summary said "0 leftover processes".
///
/// The grace is 120 s, and a run that takes more than 60 s fails: no
/// measure of speed (a loaded machine ends such a run in well under a
/// second, and 60 s is far beyond any scheduling delay), only the
/// difference between a run that waited the grace and one that did not.
#[test]
fn a_run_at_the_descriptor_limit_never_waits_a_grace_for_nothing() {
    let bin = env!("CARGO_BIN_EXE_pkit");
    for m in mechanisms() {
        let mut ran = 0;
        for n in 12..=24 {
            let file = pid_file();
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(bin)
                .args(["run", "-k", "120", "--mechanism", m, "--", "sh", "-c"])
                .arg(format!("sleep 300 & echo $! > {}", file.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map(Started::new)
                .unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                if std::time::Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    if let Some(pid) = read_pid(&file) {
                        kill(pid as u32, libc::SIGKILL);
                    }
                    let _ = std::fs::remove_file(&file);
                    panic!("{m} with ulimit -n {n}: still running after 60 s of a 120 s grace");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            };
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            let left = read_pid(&file);
            let _ = std::fs::remove_file(&file);
            if let Some(pid) = left {
                assert_all_gone(&[pid]);
                // The sleep ran when the program ended: it was a leftover.
                assert!(
                    !err.contains(" 0 leftover processes"),
                    "{m} with ulimit -n {n}: {err}"
                );
                ran += 1;
            }
            assert!(
                matches!(status.code(), Some(0) | Some(125)),
                "{m} with ulimit -n {n}: {status:?} {err}"
            );
        }
        assert!(ran > 0, "{m}: no limit from 12 to 24 let the program start");
    }
}

/// The pid a test program wrote to `file`, if it got to.
fn read_pid(file: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}
