//! `pkit run`: start the program in a group, forward signals, enforce the
//! timeout as timeout(1) does, tear the tree down, report.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use pkit::{CapturePolicy, Command, Error, Mechanism, Outcome, Stdio};

use crate::args::{KeepArg, RunArgs};
use crate::cgstats::RunCgroups;
use crate::exit::{signalled, WriteFailed, EXIT_KILLED, EXIT_TIMEOUT};
use crate::forward::{until, Forwarder, Run};
use crate::grace::{drain, Ending};
use crate::orphans::Orphans;
use crate::relay::{on_signal, Relays};
use crate::report::{kind_name, Kill, Report, Sink, Stream, SCHEMA};
use crate::signame;
use crate::summary::{messages, print_stats};
use crate::sys::{self, sig, Signals};
use crate::tty::Terminal;
use crate::EXIT_OWN_FAILURE;

/// The grace between --signal and SIGKILL when -k is not given.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// Each captured stream's bound when --capture-limit is not given.
pub const DEFAULT_CAPTURE_LIMIT: u64 = 16 << 20;

/// How pkit ends.
pub enum Exit {
    Code(u8),
    /// Windows: the program's own exit code, all 32 bits of it.
    #[cfg(windows)]
    Full(i32),
    /// End by this signal, as the program did.
    Reraise(i32),
}

/// `sink` is the report's destination, opened by `main` before anything
/// else (see there).
pub async fn main(args: RunArgs, sink: std::io::Result<Sink>) -> Exit {
    let began = Instant::now();
    let program = args.program().to_string_lossy().into_owned();
    let mut report = Report {
        schema: SCHEMA,
        program_base64: args
            .program()
            .to_str()
            .is_none()
            .then(|| crate::report::base64(args.program().as_encoded_bytes())),
        program,
        ..Report::default()
    };
    let mut sink = match sink {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pkit: cannot open the report's destination: {e}");
            return Exit::Code(EXIT_OWN_FAILURE);
        }
    };
    if let Err(msg) = crate::checks::check(&args) {
        eprintln!("pkit: {msg}");
        return error_end(&mut sink, report, began, &msg, "usage", EXIT_OWN_FAILURE);
    }
    for w in crate::checks::warnings(&args) {
        eprintln!("pkit: warning: {w}");
    }
    #[cfg(windows)]
    if args.pty {
        // The library has ConPTY sessions; relaying pkit's own console
        // into one (raw VT input, resizes) is not implemented.
        let e = Error::Unsupported {
            operation: "--pty",
            mechanism: Mechanism::JobObject,
            reason: "pkit run --pty is not implemented on Windows (it would relay this \
                     console's keys into the program's pseudo console)"
                .into(),
        };
        return fail(&args, &mut sink, report, began, &e);
    }
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("cannot receive signals: {e}");
            eprintln!("pkit: {msg}");
            return error_end(&mut sink, report, began, &msg, "io", EXIT_OWN_FAILURE);
        }
    };

    let group = match crate::checks::group(&args).build() {
        Ok(g) => g,
        // The --stats memory cgroup is a nicety: without it, rusage.
        Err(_) if args.stats && args.memory_max.is_none() => {
            match crate::checks::group_caps(&args).build() {
                Ok(g) => g,
                Err(e) => return fail(&args, &mut sink, report, began, &e),
            }
        }
        Err(e) => return fail(&args, &mut sink, report, began, &e),
    };
    report.mechanism = Some(group.mechanism().as_str());
    // Orphans of the run come to pkit, which reaps them (for --stats) and
    // kills any still alive at the end (under process groups, that catches
    // what left the group with setsid). Linux and FreeBSD.
    let subreaper = Orphans::adopt();
    if args.name.is_some() && group.mechanism() == Mechanism::ProcessGroup && !args.quiet {
        eprintln!("pkit: warning: --name has no effect: a process group has no name to carry it");
    }
    if group.mechanism() == Mechanism::ProcessGroup && !args.quiet && subreaper {
        eprintln!(
            "pkit: note: contained by a process group: a descendant that calls setsid(2) or \
             setpgid(2) (timeout(1), a `set -m` shell's jobs) leaves it; pkit, its subreaper, kills it once orphaned when the run ends, but it outlives \
             a SIGKILLed pkit (a cgroup would hold it; see `pkit doctor`)"
        );
    } else if group.mechanism() == Mechanism::ProcessGroup && !args.quiet {
        eprintln!(
            "pkit: note: contained by a process group: a descendant that calls setsid(2) or \
             setpgid(2) (timeout(1), a `set -m` shell's jobs) leaves it and outlives the run (pkit can be no subreaper here to catch it; see `pkit \
             doctor`)"
        );
    }
    let ids = match crate::checks::ids(&args) {
        Ok(ids) => ids,
        Err(msg) => {
            eprintln!("pkit: {msg}");
            return error_end(&mut sink, report, began, &msg, "usage", EXIT_OWN_FAILURE);
        }
    };
    // The group's creation may have reaped pkit's own helpers (the
    // owner-death guard's launcher, a run of pkit's executable): what
    // they used is not the program's, and is taken off below.
    let usage_before = args.stats.then(sys::children_usage).flatten();
    let mut proc = match start(&group, &args, &ids) {
        Ok(p) => p,
        Err(e) => {
            drop(group);
            return fail(&args, &mut sink, report, began, &e);
        }
    };
    let started = Instant::now();
    let pid = proc.pid();
    report.pid = Some(pid);
    let orphans = Orphans::new(pid, subreaper);
    let cgroups = RunCgroups::of_group(&group.description());
    // Under process groups, the program's group gets the terminal (if pkit
    // has it), and any read it tried before that is resumed.
    // A pty session has a terminal of its own; pkit's stays with pkit.
    let tty = if args.pty { None } else { Terminal::new(pid) };
    let relay = proc.pty().map(crate::pty::Relay::start);
    if tty.is_some() {
        let _ = group.signal_async(pkit::Signal::Cont).await;
    }

    let ended = std::cell::Cell::new(false);
    let fwd = Forwarder {
        group: &group,
        pid,
        foreground: args.foreground,
        verbose: args.verbose,
        // A signal the terminal sent to pkit's process group reached a
        // program in that group too.
        same_pgrp: sys::same_pgrp(pid),
        tty: tty.as_ref(),
        relay: relay.as_ref(),
        ended: &ended,
    };

    let term_signal = args.signal.unwrap_or(sig::SIGTERM);
    let grace = args.kill_after.unwrap_or(DEFAULT_GRACE);
    let timeout = args.timeout.filter(|t| !t.is_zero() && *t != Duration::MAX);
    let mut deadline = timeout.and_then(crate::forward::from_now);
    let mut st = Run::default();
    // A signal read once the program had ended, before its end was seen.
    let mut early = None;

    let mut look = tokio::time::interval(Duration::from_millis(100));
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The signals pkit sends on, in order, while the loop goes on.
    let mut relays = Relays::new(&fwd, &args, term_signal, grace);
    let wait = proc.wait();
    tokio::pin!(wait);
    let result = loop {
        tokio::select! {
            r = &mut wait => break r,
            done = relays.next() => relays.finished(done, &mut st),
            () = until(deadline) => {
                deadline = None;
                st.timed_out = true;
                if args.verbose {
                    eprintln!("pkit: timeout: sending {} to {}", signame::display(term_signal), fwd.target());
                }
                // After the relays asked for before it; the grace once it
                // went out. A stop that could not reach the tree is its
                // kill at once (Windows' usual case, a CTRL_BREAK without
                // a console): still a timeout's ending (124, as before),
                // not a SIGKILL after a grace.
                relays.timeout(&mut st);
                st.tree_ended |= !fwd.foreground;
            }
            () = until(st.kill_at) => {
                st.kill_at = None;
                // A kill asked for already (a third request's, still
                // waiting beside the queue for the cgroup's freeze) stays
                // the run's: the grace's end only adds its own SIGKILL.
                st.kill.get_or_insert(Kill::AfterGrace);
                if args.verbose {
                    eprintln!("pkit: still running after the grace: sending SIGKILL to the whole tree");
                }
                relays.kill();
            }
            // The terminal stops the program's group on Ctrl-Z (or a read
            // from the background): stop pkit too, as the shell expects of
            // its job; on `fg` or `bg` resume both. (With --pty, Ctrl-Z
            // is a byte for the program's own terminal, which does not stop
            // its session leader: its process group is orphaned, as POSIX
            // wants for a group no job-control shell can continue.)
            // pkit leading its session, or its shell gone, stops with
            // nothing: `Forwarder::program_stopped`.
            // (A program that sh started a command with vfork(2) is held,
            // not stopped, when Ctrl-Z stops that child before its exec:
            // `Forwarder::held_by_stopped_child`.) The look is a timer of
            // its own: other branches (a stream of SIGCHLDs) don't put it
            // off.
            _ = look.tick(), if tty.is_some() && relays.idle() => {
                let stopped = sys::state_of(pid) == Some('T');
                let by = stopped.then(|| sys::stop_signal(pid)).flatten();
                match by.or_else(|| fwd.held_by_stopped_child()) {
                    Some(by) => fwd.program_stopped(&mut st, Some(by)).await,
                    None if stopped => fwd.program_stopped(&mut st, None).await,
                    None => {
                        st.left_stopped = false;
                        st.terminal_wait = None;
                        st.stop_unknown = None;
                    }
                }
            }
            // What the loop reads after the program's end is the grace's
            // (had pkit seen the end first, it would have been read there);
            // acted on here after a second if that end is never seen.
            () = until(early.map(|(_, at)| at)) => {
                if let Some((r, _)) = early.take() {
                    on_signal(r, &args, &mut relays, &mut st, &mut report);
                }
            }
            r = signals.recv(), if early.is_none() && !relays.stopping() => match r {
                Ok(r) if r.signo == sig::SIGCHLD => orphans.reap_exited(),
                Ok(r) if sys::exited(pid) => {
                    early = Some((r, tokio::time::Instant::now() + Duration::from_secs(1)));
                }
                Ok(r) if r.signo == sig::SIGWINCH && relay.is_some() => {
                    relay.as_ref().map(crate::pty::Relay::follow_resize);
                }
                Ok(r) => on_signal(r, &args, &mut relays, &mut st, &mut report),
                Err(e) => {
                    eprintln!("pkit: cannot read signals: {e}");
                    break Err(Error::Io { context: "reading signals".into(), source: e });
                }
            },
        }
    };

    // What the loop asked to be sent goes out before the leftovers' ending
    // (to the tree: the program, reaped, has nothing more coming).
    ended.set(true);
    relays.finish(&mut st).await;
    drop(relays);

    // The guard is what would have ended the tree had pkit been SIGKILLed:
    // if it could not run, say so (the library logs it through tracing,
    // which the CLI does not print).
    if let Some(why) = pkit::host_containment().guard.error {
        eprintln!("pkit: warning: the run had no owner-death guard: {why}");
    }

    // The program has ended. What it left running gets the grace: the rest
    // of one already armed (timeout, teardown, -k), else the whole
    // --kill-after; then SIGKILL. It gets --signal now unless the whole
    // tree had it already (a request to end that -k armed went to the
    // program alone, as did a --foreground timeout's signal). The tree's figures are read
    // before the teardown removes its cgroups, and it is checked gone.
    let oom = args
        .memory_max
        .is_some()
        .then(|| cgroups.oom_kills())
        .flatten()
        .map(|n| n > 0);
    // Not counted (no descriptor free to list the tree with, say) is
    // unknown, never none: the tree still gets its ending.
    let leftovers = group.pids().ok().map(|p| p.len() as u64);
    if leftovers != Some(0) {
        let until = match st.kill_at {
            Some(at) if st.tree_ended => Some(Some(at)),
            armed => {
                if args.verbose {
                    eprintln!("pkit: the program ended; its leftovers get the grace");
                }
                let killed = Forwarder {
                    foreground: false,
                    ..fwd
                }
                .send_ending(term_signal)
                .await;
                // Killed at once, every one of them: no grace to wait out.
                report.leftovers_killed_at_once = killed;
                (!killed).then(|| armed.or_else(|| crate::forward::from_now(grace)))
            }
        };
        report.leftovers_killed = match until {
            Some(until) => {
                let ending = Ending {
                    signals: &mut signals,
                    first: early.take().map(|(r, _)| r),
                    received: &mut report.signals_received,
                    cut_short: &mut report.leftovers_cut_short,
                    quiet: args.quiet,
                };
                drain(&group, &orphans, until, ending).await
            }
            None => leftovers,
        };
    }
    let mut stats = args.stats.then(|| cgroups.read());
    // Windows: the job's own accounting covers every process that ran in
    // it (read before the teardown retires the job).
    #[cfg(windows)]
    if let (Some(s), Ok(job)) = (stats.as_mut(), group.stats()) {
        s.fill_from_job(&job);
    }
    drop(tty);
    drop(relay);
    let verified = group.close().await;
    let (escaped, none_left) = orphans.sweep();
    report.leftover_processes = leftovers;
    report.escaped_processes_killed = escaped;
    report.processes_left = (verified.is_ok() && none_left).then_some(0);
    if let Some(s) = stats.as_mut() {
        // The program, its group's leader, may still be an unreaped
        // zombie (the portable backend reaps it when its handle goes):
        // reaped now, so that its figures are in. (Its exit status was
        // read already.)
        #[cfg(unix)]
        sys::reap_if_exited(pid as i32);
        let usage = sys::children_usage().map(|u| match &usage_before {
            Some(before) => u.since(before, sys::own_peak_rss()),
            None => u,
        });
        s.fill_from(usage, subreaper);
    }
    report.duration_us = started.elapsed().as_micros() as u64;
    report.timed_out = st.timed_out;
    // A kill pkit asked for (a third request's, the grace's) is the run's
    // only if it ended the program: one that exited on its own before the
    // kill reached it (between the request and the kill's going out, or
    // the cgroup's freeze) was not killed, and its report says how it
    // ended, with no SIGKILL. Unix: a Windows job's termination leaves no
    // signal to tell it by.
    let kill = st.kill.filter(|_| match &result {
        Ok(out) if cfg!(unix) => matches!(out.outcome(), Outcome::Signalled(sig::SIGKILL)),
        _ => true,
    });
    report.killed_after_grace = kill == Some(Kill::AfterGrace);
    report.sigkill = kill.map(Kill::as_str);
    report.kill = kill;
    report.oom_killed = oom;

    let out = match result {
        Ok(out) => out,
        Err(e) => {
            report.duration_us = began.elapsed().as_micros() as u64;
            return fail(&args, &mut sink, report, began, &e);
        }
    };
    let exit = exit_for(&args, &st, out.outcome());
    // pkit's own output that could not be written: its status replaces
    // the program's (see `WriteFailed`).
    let mut lost = None;
    report.exit_status = match exit {
        Exit::Code(c) => c,
        // The report's status is a shell's `$?`: the low byte.
        #[cfg(windows)]
        Exit::Full(c) => (c & 0xff) as u8,
        Exit::Reraise(n) => signalled(n),
    };
    match out.outcome() {
        Outcome::Exited(c) => {
            report.outcome = "exited";
            report.exit_code = Some(c);
        }
        Outcome::Signalled(n) => {
            report.outcome = "signalled";
            report.signal = Some(n);
            report.signal_name = signame::name(n);
        }
        _ => report.outcome = "error",
    }
    if st.timed_out {
        report.outcome = "timed_out";
    }
    if args.capture {
        report.stdout = Some(Stream::new(
            out.stdout(),
            out.stdout_total_bytes(),
            out.stdout_truncated(),
        ));
        report.stderr = Some(Stream::new(
            out.stderr(),
            out.stderr_total_bytes(),
            out.stderr_truncated(),
        ));
        if !sink.is_some() {
            lost = print_captured(out.stdout(), out.stderr());
        }
    } else if let Some(e) = out.stdout_tee_error() {
        // --pty: the terminal's output, teed to stdout as it came.
        lost = Some(WriteFailed::copy("the program's output", e));
    }
    report.stats = stats;

    if !args.quiet {
        messages(&args, &report, &group, &verified);
    }
    if args.stats && !sink.is_some() {
        if let Some(s) = &report.stats {
            print_stats(s, report.duration_us);
        }
    }
    if let Err(e) = sink.write(&report) {
        lost = lost.or(Some(e));
    }
    match lost {
        Some(e) => {
            e.print();
            Exit::Code(e.status())
        }
        None => exit,
    }
}

/// Prints the captured output at the end of the run (no report to carry
/// it): stdout, then stderr, both tried; stdout's failure is returned. A
/// failure on stderr, where pkit would say it, changes nothing (as a
/// broken stderr changes no status elsewhere in pkit).
fn print_captured(stdout: &[u8], stderr: &[u8]) -> Option<WriteFailed> {
    let out = std::io::stdout().write_all(stdout);
    let out = out.and_then(|()| std::io::stdout().flush());
    let _ = std::io::stderr().write_all(stderr);
    out.err().map(|source| WriteFailed {
        what: "the captured stdout",
        source,
    })
}

fn exit_for(args: &RunArgs, st: &Run, outcome: Outcome) -> Exit {
    if st.timed_out {
        // As timeout(1): a program the timeout's SIGKILL ended (after the
        // grace, or `-s KILL` itself) gives 137, not 124.
        let sent_kill = st.kill.is_some() || args.signal == Some(sig::SIGKILL);
        if sent_kill && matches!(outcome, Outcome::Signalled(sig::SIGKILL)) {
            return Exit::Code(EXIT_KILLED);
        }
        if !args.preserve_status {
            return Exit::Code(EXIT_TIMEOUT);
        }
        return Exit::Code(match outcome {
            Outcome::Exited(c) => (c & 0xff) as u8,
            Outcome::Signalled(n) => signalled(n),
            _ => EXIT_OWN_FAILURE,
        });
    }
    match outcome {
        // A Windows exit code is 32 bits (an NTSTATUS such as
        // STATUS_CONTROL_C_EXIT after a break): passed on whole.
        #[cfg(windows)]
        Outcome::Exited(c) => Exit::Full(c),
        #[cfg(unix)]
        Outcome::Exited(c) => Exit::Code((c & 0xff) as u8),
        Outcome::Signalled(n) if args.no_reraise => Exit::Code(signalled(n)),
        Outcome::Signalled(n) => Exit::Reraise(n),
        _ => Exit::Code(EXIT_OWN_FAILURE),
    }
}

/// Starts the program; a script without a `#!` line is run by `/bin/sh`
/// (see [`crate::script`]).
fn start(
    group: &pkit::Group,
    args: &RunArgs,
    ids: &crate::checks::Ids,
) -> pkit::Result<pkit::RunningProcess> {
    match start_restoring(group, args, ids, None) {
        Err(e) => match crate::script::fallback(&e, ids.uid.is_some() || ids.gid.is_some()) {
            Some(path) => start_restoring(group, args, ids, Some(&path)),
            None => Err(e),
        },
        ok => ok,
    }
}

/// Starts the program with the descriptor limit pkit was given restored
/// in it (`sys::original_nofile`). The portable backend applies that in
/// its trampoline; where it has none, the start is refused
/// (`Unsupported`) before anything runs: pkit then gives its own raised
/// limit back and starts the program without the restore, so that it
/// inherits the original pair. The user's own options that need the
/// trampoline are refused again, as they would have been.
fn start_restoring(
    group: &pkit::Group,
    args: &RunArgs,
    ids: &crate::checks::Ids,
    script: Option<&Path>,
) -> pkit::Result<pkit::RunningProcess> {
    let restoring = crate::checks::restores_nofile(&args.rlimit);
    match group.start(&command(args, ids, script)) {
        Err(e) if crate::checks::start_again_unrestored(&e, restoring) => {
            group.start(&command(args, ids, script))
        }
        other => other,
    }
}

/// The program's command; with `script`, `/bin/sh script ARGS...`.
fn command(args: &RunArgs, ids: &crate::checks::Ids, script: Option<&Path>) -> Command {
    let mut cmd = crate::script::command(args.program(), args.args(), script);
    if args.pty {
        let (rows, cols) = crate::pty::size();
        cmd = cmd.pty(rows, cols);
        if args.capture {
            let keep = match args.capture_keep {
                Some(KeepArg::Tail) => CapturePolicy::KeepTail,
                _ => CapturePolicy::KeepHead,
            };
            let limit = args.capture_limit.unwrap_or(DEFAULT_CAPTURE_LIMIT);
            cmd = cmd.capture_limit(usize::try_from(limit).unwrap_or(usize::MAX), keep);
        } else {
            // Straight through to pkit's stdout, nothing kept.
            cmd = cmd
                .stdout_tee(tokio::io::stdout())
                .capture_limit(0, CapturePolicy::KeepHead);
        }
    } else if args.capture {
        let keep = match args.capture_keep {
            Some(KeepArg::Tail) => CapturePolicy::KeepTail,
            _ => CapturePolicy::KeepHead,
        };
        let limit = args.capture_limit.unwrap_or(DEFAULT_CAPTURE_LIMIT);
        cmd = cmd
            .stdout(Stdio::Piped)
            .stderr(Stdio::Piped)
            .capture_limit(usize::try_from(limit).unwrap_or(usize::MAX), keep);
    } else {
        cmd = cmd.stdout(Stdio::Inherit).stderr(Stdio::Inherit);
    }
    if !args.pty {
        cmd = cmd.stdin_inherit();
    }
    if args.env_clear {
        cmd = cmd.env_clear();
    }
    for (k, v) in &args.env {
        cmd = cmd.env(k, v);
    }
    if let Some(dir) = &args.chdir {
        cmd = cmd.current_dir(dir);
    }
    crate::checks::spawn_options(cmd, args, ids)
}

/// Reports a library error and picks the exit status.
fn fail(args: &RunArgs, sink: &mut Sink, report: Report, began: Instant, e: &Error) -> Exit {
    let code = crate::exit::start_failure(e);
    let msg = crate::checks::explain(args, e);
    eprintln!("pkit: {msg}");
    error_end(sink, report, began, &msg, kind_name(e.kind()), code)
}

fn error_end(
    sink: &mut Sink,
    mut report: Report,
    began: Instant,
    msg: &str,
    kind: &'static str,
    code: u8,
) -> Exit {
    report.outcome = "error";
    report.error = Some(msg.to_string());
    report.error_kind = Some(kind);
    report.exit_status = code;
    if report.duration_us == 0 {
        report.duration_us = began.elapsed().as_micros() as u64;
    }
    // Already a failure with its own status: a report that can't be
    // written is said, and changes nothing.
    if let Err(e) = sink.write(&report) {
        e.print();
    }
    Exit::Code(code)
}
