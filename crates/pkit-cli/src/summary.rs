//! The end-of-run lines on stderr.

use std::io::Write;

use pkit::{Group, Mechanism};

use crate::args::RunArgs;
use crate::cgstats::TreeStats;
use crate::report::Report;

/// The end-of-run lines on stderr: what happened and what was verified.
pub fn messages(args: &RunArgs, report: &Report, group: &Group, verified: &pkit::Result<()>) {
    // The program as the lines show it: control characters escaped.
    let program = pkit::escape_controls(&report.program);
    let container = match group.mechanism() {
        Mechanism::CgroupV2 => "the cgroup",
        _ => "the process group",
    };
    // Unknown (the tree could not be listed) is said so, never 0.
    let left = report.leftover_processes;
    let escaped = report.escaped_processes_killed.unwrap_or(0);
    let mut check = match (verified, report.processes_left) {
        (Ok(()), Some(0)) => format!("0 processes left in {container}"),
        (Ok(()), _) => {
            format!("{container} is empty, but a process that left it could not be ended")
        }
        (Err(e), _) => format!("could not verify that {container} is empty: {e}"),
    };
    if escaped > 0 {
        check.push_str(&format!(
            "; {escaped} process{} that had left it (setsid) killed as pkit's orphan{}",
            if escaped == 1 { "" } else { "es" },
            if escaped == 1 { "" } else { "s" },
        ));
    }
    if report.timed_out {
        eprintln!(
            "pkit: {program} timed out after {:.3}s{}; {check}",
            report.duration_us as f64 / 1e6,
            match report.kill {
                Some(k) => format!("; {}", k.describe()),
                None => String::new(),
            }
        );
    } else if left != Some(0) || escaped > 0 || args.verbose || report.processes_left.is_none() {
        let how = match report.leftovers_killed {
            _ if report.leftovers_killed_at_once => {
                ", killed at once (the ending signal could not reach them all)"
            }
            Some(0) => " ended in the grace",
            Some(n) => &match report.leftovers_cut_short {
                Some(s) => format!(
                    " ended: {n} killed at once when {} to pkit cut the grace short",
                    crate::signame::display(s)
                ),
                None => format!(" ended: {n} needed SIGKILL after the grace"),
            },
            None if left == Some(0) => "",
            // Not counted after the grace began (listing failed): the
            // tree was killed then.
            None => ", killed",
        };
        let left = match left {
            Some(n) => format!("{n} leftover process{}", if n == 1 { "" } else { "es" }),
            None => "an unknown number of leftover processes (they could not be listed)".into(),
        };
        eprintln!("pkit: {program} ended; {left}{how}; {check}");
    }
    if report.oom_killed == Some(true) {
        eprintln!("pkit: {program} was killed by the OOM killer (memory cap)");
    }
}

pub fn print_stats(s: &TreeStats, duration_us: u64) {
    let secs = |us: Option<u64>| us.map_or("unknown".into(), |u| format!("{:.3}", u as f64 / 1e6));
    let num = |n: Option<u64>| n.map_or("unknown".into(), |n| n.to_string());
    let src = |s: Option<&'static str>| s.unwrap_or("unavailable");
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "pkit: stats for {}:",
        if s.whole_tree() {
            "the whole tree"
        } else if s.partial() {
            "the program and the descendants it reaped (rusage; pkit can be no subreaper here, \
             so orphaned descendants are not counted)"
        } else {
            "every reaped descendant (rusage; pkit reaps orphans as their subreaper)"
        }
    );
    let _ = writeln!(e, "\tUser time (seconds): {}", secs(s.user_cpu_us));
    let _ = writeln!(e, "\tSystem time (seconds): {}", secs(s.system_cpu_us));
    let _ = writeln!(
        e,
        "\tElapsed (wall clock) time (seconds): {}",
        secs(Some(duration_us))
    );
    let _ = writeln!(
        e,
        "\tPeak memory (kbytes): {}",
        num(s.peak_memory_bytes.map(|b| b / 1024))
    );
    let _ = writeln!(
        e,
        "\tMajor (requiring I/O) page faults: {}",
        num(s.major_faults)
    );
    let _ = writeln!(
        e,
        "\tMinor (reclaiming a frame) page faults: {}",
        num(s.minor_faults)
    );
    let _ = writeln!(
        e,
        "\tVoluntary context switches: {}",
        num(s.voluntary_context_switches)
    );
    let _ = writeln!(
        e,
        "\tInvoluntary context switches: {}",
        num(s.involuntary_context_switches)
    );
    let _ = writeln!(e, "\tI/O read (bytes): {}", num(s.io_read_bytes));
    let _ = writeln!(e, "\tI/O written (bytes): {}", num(s.io_write_bytes));
    let _ = writeln!(
        e,
        "\tSources: cpu {}; memory {}; faults {}; context switches {}; I/O {}",
        src(s.cpu_source),
        src(s.memory_source),
        src(s.faults_source),
        src(s.context_switches_source),
        src(s.io_source)
    );
}
