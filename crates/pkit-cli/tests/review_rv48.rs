#![cfg(target_os = "linux")]
//! rv48: a hostile review of the twelfth session's merges (CLI half:
//! flake9's `Terminal::give_back_to_job`, which takes a SIGTTIN or
//! SIGTTOU to pkit, while its program holds the terminal pkit handed it,
//! for another process of pkit's job asking for the terminal). Run in the
//! three passes (unset, `PKIT_MECHANISM=pgroup`, `PKIT_MECHANISM=portable`);
//! the terminal's cases run the process-group mechanisms of the pass (under
//! cgroup v2 the program shares pkit's group and nothing is handed over).
//!
//! Probes that held: a SIGTTIN or SIGTTOU a user sends (`kill -TTIN` to
//! pkit, `kill -TTOU` to pkit's whole job) while the program holds the
//! terminal is no read of another stage: it still stops the job, as it
//! did before flake9 (the kernel's are told by `si_code`, on the signalfd
//! and the portable self-pipe alike)
//! ([`a_users_ttin_or_ttou_still_stops_the_job`]).

mod common;

use common::{at_once, drive, process_group_mechanisms, Reap};

const PKIT: &str = env!("CARGO_BIN_EXE_pkit");

/// `pkit run -- sh -c '...; exec sleep 100'` alone in its job, the
/// program handed the terminal; then `kill -<sig>` from a process outside
/// the job, to pkit itself (`to_group`: to pkit's whole process group, as
/// the kernel sends its own): the job's shell sees the job stopped.
fn user_stop(m: &str, sig: &str, to_group: bool) {
    let pids = Reap::new(&format!("rv48-user-{sig}"));
    let job = format!(
        "exec {PKIT} run -q --mechanism {m} -- sh -c 'echo $$ >> {p}; exec sleep 100'",
        p = pids.path()
    );
    let kill = if to_group { "os.killpg" } else { "os.kill" };
    let driver = format!(
        r#"
    _, st = os.waitpid(job, os.WUNTRACED)
    print("stopped=%d;" % os.WIFSTOPPED(st), flush=True)
    os.killpg(job, signal.SIGKILL)
    os._exit(0)
read_job()
wait_handed("{p}")
{kill}(job, signal.{sig})
read_until(b"stopped=1;", 1, 30)
os.waitpid(pid, 0)
sys.stdout.write("ok\n")
"#,
        p = pids.path()
    );
    let text = drive(&job, &driver);
    assert!(
        text.ends_with("ok\n"),
        "{m}: a user's {sig} (to {}) did not stop the job: {text}",
        if to_group { "pkit's group" } else { "pkit" }
    );
}

#[test]
fn a_users_ttin_or_ttou_still_stops_the_job() {
    let cases: Vec<(&str, &str, bool)> = process_group_mechanisms()
        .into_iter()
        .flat_map(|m| [(m, "SIGTTIN", false), (m, "SIGTTOU", true)])
        .collect();
    at_once(cases, |(m, sig, to_group)| user_stop(m, sig, to_group));
}
