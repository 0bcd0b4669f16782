//! `pkit supervise`: keep a program running across crashes, one line on
//! stderr per run that ended (or JSON lines with `--json`).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pkit::{
    ErrorKind, Outcome, Restart, StopReason, SupervisionOutcome, Supervisor, SupervisorEvent,
};

use crate::args::{RestartArg, SuperviseArgs};
use crate::exit::{signalled, EXIT_TIMEOUT};
use crate::orphans::{Orphans, Strays};
use crate::report::kind_name;
use crate::run::Exit;
use crate::{signame, EXIT_OWN_FAILURE};

/// How long a run has to pass its health check when `--health-timeout` is
/// not given.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

/// The supervisor of the program; with `script`, of `/bin/sh script
/// ARGS...` (see [`crate::script`]); `orphans`, when pkit is the runs'
/// subreaper, swept after each run.
fn supervisor(args: &SuperviseArgs, script: Option<&Path>, orphans: Option<Orphans>) -> Supervisor {
    let mut cmd = crate::script::command(args.program(), args.args(), script);
    // The program's output is the user's: passed through as it comes.
    cmd = if args.health_line.is_some() {
        // The readiness check reads the lines; a tee passes them on.
        cmd.stdout_tee(tokio::io::stdout())
            .stderr_tee(tokio::io::stderr())
    } else {
        cmd.stdout(pkit::Stdio::Inherit)
            .stderr(pkit::Stdio::Inherit)
    };
    if let Some(grace) = args.kill_after {
        cmd = cmd.grace(grace);
    }
    // Every run gets the descriptor limit pkit was given (pkit raised its
    // own at start), or the user's NOFILE.
    cmd = crate::checks::rlimits(cmd, &args.rlimit);
    let mut sup = Supervisor::new(cmd).restart(match args.restart {
        RestartArg::OnCrash => Restart::OnCrash,
        RestartArg::Always => Restart::Always,
        RestartArg::Never => Restart::Never,
    });
    if let Some(m) = args.mechanism {
        sup = sup.mechanism(m.into());
    }
    if let Some(n) = args.max_restarts {
        sup = sup.max_restarts(n);
    }
    if let Some((initial, factor)) = args.backoff {
        sup = sup.backoff(initial, factor);
    }
    if let Some(max) = args.max_backoff {
        sup = sup.max_backoff(max);
    }
    if let Some(pause) = args.storm_pause {
        sup = sup.storm_pause(pause);
    }
    if let Some(uptime) = args.reset_after {
        sup = sup.reset_after(uptime);
    }
    if let Some(orphans) = orphans {
        // Called after each run's group was closed and before anything
        // else starts: what left the run's process group (a `setsid`
        // daemon), orphaned to pkit, is killed with its run, as `pkit run`
        // kills it. It never stops the supervision. The sweep blocks the
        // (single-threaded) runtime while it waits: see `Orphans::sweep`.
        sup = sup.stop_when(move |_| {
            orphans.sweep();
            false
        });
    }
    // 0 is no bound, as for every duration of pkit's (`run --timeout 0`):
    // the run is waited for until it passes the check or ends.
    let timeout = match args.health_timeout.unwrap_or(DEFAULT_HEALTH_TIMEOUT) {
        d if d.is_zero() => Duration::MAX,
        d => d,
    };
    if let Some(pattern) = &args.health_line {
        let pattern = pattern.clone();
        // A pattern that is plain text is looked for as text: the same
        // answer, without running the regex engine over every byte (a
        // program's newline-free output comes as pieces of up to 1 MiB).
        let literal = is_literal(pattern.as_str()).then(|| pattern.as_str().to_string());
        sup = sup.ready_when_line(
            move |line| match &literal {
                Some(text) => line.contains(text.as_str()),
                None => pattern.is_match(line),
            },
            timeout,
        );
    }
    if let Some(addr) = args.health_port {
        sup = sup.ready_when_port(addr, timeout);
    }
    sup
}

/// The next exit of a child `exits` hears of; never, without it.
async fn child_exit(exits: &mut Option<crate::sys::ChildExits>) {
    match exits {
        Some(e) => e.recv().await,
        None => std::future::pending().await,
    }
}

/// At `at`, when the strays are looked at again; never, without it.
async fn look_again(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Whether the runs are contained by process groups, which a `setsid`
/// descendant leaves: asked as each run's group is made.
fn process_groups(args: &SuperviseArgs) -> bool {
    let mut builder = pkit::Group::builder();
    if let Some(m) = args.mechanism {
        builder = builder.mechanism(m.into());
    }
    builder
        .build()
        .is_ok_and(|g| g.mechanism() == pkit::Mechanism::ProcessGroup)
}

/// Whether `pattern` has none of the characters a regular expression
/// gives a meaning (those `regex_lite::escape` escapes): it matches where
/// its text occurs.
fn is_literal(pattern: &str) -> bool {
    !pattern.contains(|c| r"\.+*?()|[]{}^$#&-~".contains(c))
}

pub async fn main(args: SuperviseArgs) -> Exit {
    let Ok(mut stops) = crate::sys::StopRequests::new() else {
        eprintln!("pkit: cannot receive signals");
        return Exit::Code(EXIT_OWN_FAILURE);
    };
    // Cancelled by a second signal: cuts the stop's grace short.
    let kill_now = pkit::CancelToken::new();
    let mut say = Say {
        json: args.json,
        quiet: args.quiet,
        ended: None,
        running: None,
        stopping: false,
        unhealthy: false,
    };
    // Under process groups, the runs' orphans come to pkit, which reaps
    // them and kills what is left of each run after it (a descendant that
    // left the run's group with setsid), as `pkit run` does. (A cgroup
    // holds them all.) Linux and FreeBSD.
    let orphans = (process_groups(&args) && Orphans::adopt()).then(Orphans::of_runs);
    // Heard only with `orphans`: reaped as they exit.
    let mut exits = orphans.map(|_| crate::sys::ChildExits::new());
    // The runs started and not ended (their programs are the library's to
    // reap: the orphan sweep leaves them), the zombies seen and left so
    // far, and when to look again.
    let mut programs = HashSet::new();
    let mut strays = Strays::default();
    let mut again = None;
    // Set once the program turned out to be a script without a `#!` line:
    // then it is supervised as `/bin/sh script`, as `pkit run` runs it.
    let mut script: Option<PathBuf> = None;
    let result = loop {
        // Whether the runs restore the descriptor limit pkit was given
        // (false again once pkit gave its own back, below).
        let restoring = crate::checks::restores_nofile(&args.rlimit);
        let mut handle = supervisor(&args, script.as_deref(), orphans)
            .cancel_token(&kill_now)
            .start();
        if say.stopping {
            // A stop came while the first start was being refused and
            // tried again (below): the stop wins, nothing more starts.
            handle.request_stop();
        }
        // A start refused as not executable, or (restoring) as
        // unsupported, held back until the supervision says why it ended:
        // when that was the first start of a script /bin/sh runs, or of a
        // program whose limit the mechanism can't restore (started again
        // without the restore), it is not reported (as `pkit run` reports
        // no such first try).
        let mut held = None;
        loop {
            tokio::select! {
                event = handle.next_event() => match event {
                    Some(SupervisorEvent::Stopped(_)) | None => break,
                    Some(event @ SupervisorEvent::SpawnFailed { kind, .. })
                        if (kind == ErrorKind::NotExecutable && script.is_none())
                            || (kind == ErrorKind::Unsupported && restoring) =>
                    {
                        if let Some(earlier) = held.replace(event) {
                            say.event(&earlier);
                        }
                    }
                    Some(event) => {
                        match event {
                            // One run at a time: an earlier run's pid
                            // (its exit event lost to a full buffer) goes.
                            SupervisorEvent::Started { pid, .. } => {
                                programs.clear();
                                programs.insert(pid);
                            }
                            SupervisorEvent::Exited { pid, .. } => {
                                programs.remove(&pid);
                            }
                            _ => {}
                        }
                        if let Some(earlier) = held.take() {
                            say.event(&earlier);
                        }
                        say.event(&event);
                    }
                },
                // The orphans that exited while a run goes on, looked at
                // as they exit and again once a zombie left lingered.
                () = child_exit(&mut exits) => {
                    again = orphans.and_then(|o| o.reap_exited_strays(&programs, &mut strays));
                }
                () = look_again(again) => {
                    again = orphans.and_then(|o| o.reap_exited_strays(&programs, &mut strays));
                }
                heard = stops.recv() => {
                    if crate::sys::for_the_program(heard) {
                        // USR1, USR2, ALRM, WINCH: the current run's
                        // program's (a log reopen, a reload), as `pkit
                        // run` passes them on; between runs, nobody's.
                        forward(&handle, heard, &args);
                        continue;
                    }
                    if !say.stopping {
                        // A graceful stop: the run gets SIGTERM and its grace
                        // (which ends in SIGKILL). The events go on: the
                        // stopped run's exit, then the end.
                        say.stopping = true;
                        handle.request_stop();
                        continue;
                    }
                    // A second signal meanwhile kills the tree at once.
                    if !kill_now.is_cancelled() && !args.quiet && !args.json {
                        eprintln!(
                            "pkit: second {}: killing the run now",
                            signame::display(heard)
                        );
                    }
                    kill_now.cancel();
                }
            }
        }
        let result = handle.wait().await;
        if let Some(event) = held {
            // The first run's start failed: nothing ran yet.
            let first = match &result {
                Ok(o) if o.stopped == StopReason::CannotStart && o.restarts == 0 => {
                    o.final_error.as_ref()
                }
                _ => None,
            };
            // Tried again even after a stop came: the next supervision is
            // stopped before it starts anything (above), and reports the
            // stop, not this first try.
            if let Some(e) = first {
                if let Some(path) = crate::script::fallback(e, false) {
                    script = Some(path);
                    continue;
                }
                // No trampoline to restore the limit in (the portable
                // backend's): the supervision starts again with pkit's own
                // limit given back, which every run then inherits. A later
                // run's refusal (the trampoline broke meanwhile) ends the
                // supervision as any start that can't succeed.
                if crate::checks::start_again_unrestored(e, restoring) {
                    continue;
                }
            }
            say.event(&event);
        }
        break result;
    };
    // After the last run (one a stop or cancel ended is not followed by
    // the sweep in `supervisor`).
    if let Some(orphans) = &orphans {
        orphans.sweep();
    }
    match result {
        Ok(outcome) => {
            let code = status(&outcome);
            say.end(&outcome, code);
            // A last run killed by signal N ends pkit by N, as `pkit run`
            // does (a parent shell sees "killed"), unless --no-reraise.
            match last_signal(&outcome) {
                Some(sig) if !args.no_reraise => Exit::Reraise(sig),
                _ => Exit::Code(code),
            }
        }
        Err(e) => {
            eprintln!("pkit: {e}");
            Exit::Code(EXIT_OWN_FAILURE)
        }
    }
}

/// Sends `sig` to the current run's program (none between runs); says
/// so with `--verbose`. The library signals the run it has going, through
/// its own record of the process: never a pid from an event, which may
/// have been reaped (and handed on) before its `Exited` event is read.
fn forward(handle: &pkit::SupervisorHandle, sig: i32, args: &SuperviseArgs) {
    let name = signame::display(sig);
    match handle.signal_program(pkit::Signal::Raw(sig)) {
        Ok(Some(pid)) if args.verbose && !args.json => {
            eprintln!("pkit: {name} passed on to the program (pid {pid})")
        }
        Err(e) if !args.quiet && !args.json => {
            eprintln!("pkit: {name} could not be passed on to the program: {e}")
        }
        Ok(None) if args.verbose && !args.json => {
            eprintln!("pkit: {name} dropped: the program is not running")
        }
        _ => {}
    }
}

/// The signal that killed the last run's program, when that is what
/// [`status`] reports (128+N): neither a requested stop nor a failed
/// health check.
fn last_signal(outcome: &SupervisionOutcome) -> Option<i32> {
    if outcome.stopped == StopReason::StopRequested || outcome.final_unhealthy {
        return None;
    }
    match outcome.final_output.as_ref()?.outcome() {
        Outcome::Signalled(sig) => Some(sig),
        _ => None,
    }
}

/// pkit's exit status: 0 after a requested stop or a clean last run;
/// [`EXIT_TIMEOUT`] when the last run failed its health check (so a
/// supervisor that gave up on it never reports success); else the last
/// run's (as `pkit run`), or 125-127 when it could not start.
fn status(outcome: &SupervisionOutcome) -> u8 {
    if outcome.stopped == StopReason::StopRequested {
        return 0;
    }
    if outcome.final_unhealthy {
        return EXIT_TIMEOUT;
    }
    if let Some(out) = &outcome.final_output {
        return match out.outcome() {
            Outcome::Exited(code) => code as u8,
            Outcome::Signalled(sig) => signalled(sig),
            _ => EXIT_TIMEOUT,
        };
    }
    outcome
        .final_error
        .as_ref()
        .map_or(0, crate::exit::start_failure)
}

/// The stderr reporter: in text, one line per ended run (with what comes
/// next); in JSON, one object per event.
struct Say {
    json: bool,
    quiet: bool,
    /// The text line of the last ended run, waiting for what comes next.
    ended: Option<String>,
    /// The pid of the run started and not reported ended yet.
    running: Option<u32>,
    /// pkit asked for a stop (a signal came): a run that ends now without
    /// crashing was stopped by pkit.
    stopping: bool,
    /// The running run failed its health check (pkit kills it).
    unhealthy: bool,
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Exited(code) => format!("exited with code {code}"),
        Outcome::Signalled(sig) => format!("killed by {}", signame::display(*sig)),
        _ => "timed out".into(),
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

impl Say {
    fn json_line(&self, value: serde_json::Value) {
        let mut err = std::io::stderr().lock();
        // One write, the line feed included (as the events' lines).
        if let Ok(mut line) = crate::json_line::to_line(&value) {
            line.push(b'\n');
            // A line of its own after a run's unfinished last line, where
            // pkit can tell (`report::stderr_mid_line`).
            if crate::report::stderr_mid_line() == Some(true) {
                line.insert(0, b'\n');
            }
            let _ = err.write_all(&line);
        }
    }

    fn event(&mut self, event: &SupervisorEvent) {
        use serde_json::json;
        match event {
            SupervisorEvent::Started { pid, .. } => {
                self.running = Some(*pid);
                self.unhealthy = false;
            }
            SupervisorEvent::Unhealthy { .. } => self.unhealthy = true,
            SupervisorEvent::Exited { .. } => self.running = None,
            _ => {}
        }
        if self.json {
            let v = match event {
                SupervisorEvent::Started { run, pid } => {
                    json!({"event": "started", "run": run, "pid": pid})
                }
                SupervisorEvent::Ready { pid } => json!({"event": "ready", "pid": pid}),
                SupervisorEvent::Unhealthy { pid } => json!({"event": "unhealthy", "pid": pid}),
                SupervisorEvent::Exited {
                    pid,
                    outcome,
                    crashed,
                } => json!({
                    "event": "exited", "pid": pid, "crashed": crashed,
                    "stopped_by_pkit": self.stopping && !crashed,
                    "exit_code": match outcome { Outcome::Exited(c) => Some(*c), _ => None },
                    "signal": match outcome { Outcome::Signalled(s) => Some(*s), _ => None },
                }),
                SupervisorEvent::SpawnFailed { kind, message } => json!({
                    "event": "spawn_failed", "error_kind": kind_name(*kind), "message": message,
                }),
                SupervisorEvent::BackingOff(d) => json!({"event": "backoff", "secs": secs(*d)}),
                SupervisorEvent::StormPause(d) => {
                    json!({"event": "storm_pause", "secs": secs(*d)})
                }
                _ => return,
            };
            self.json_line(v);
            return;
        }
        match event {
            SupervisorEvent::Started { run, pid } => {
                self.ended = Some(format!("run {run} (pid {pid})"));
            }
            SupervisorEvent::Unhealthy { .. } => {
                if let Some(line) = &mut self.ended {
                    line.push_str(" failed its health check,");
                }
            }
            SupervisorEvent::Exited {
                outcome, crashed, ..
            } => {
                let run = self.ended.take().unwrap_or_else(|| "run".into());
                // How the run really ended: on its own (a crash, or clean),
                // by pkit's stop (its SIGTERM, or the SIGKILL of a second
                // signal or the grace's end), which is no crash, or by
                // pkit's SIGKILL after it failed its health check (a crash
                // for the restart policy, as the JSON's "crashed" says, but
                // not the program's doing). A run that failed its check by
                // ending first ended on its own: a crash.
                let killed_unhealthy = self.unhealthy
                    && matches!(outcome, Outcome::Signalled(s) if signame::name(*s) == Some("SIGKILL"));
                let what = if killed_unhealthy {
                    "stopped by pkit: unhealthy"
                } else if *crashed {
                    "crash"
                } else if self.stopping {
                    "stopped by pkit"
                } else {
                    "clean"
                };
                self.ended = Some(format!("{run} {} ({what})", outcome_text(outcome)));
            }
            SupervisorEvent::SpawnFailed { kind, message } => {
                // Why, as `pkit run` says it.
                self.ended = Some(format!(
                    "a run could not start ({}): {message}",
                    kind_name(*kind)
                ));
            }
            SupervisorEvent::BackingOff(d) => self.next(&format!("restart in {:.3}s", secs(*d))),
            SupervisorEvent::StormPause(d) => {
                self.next(&format!("crash storm: pausing {:.3}s", secs(*d)))
            }
            _ => {}
        }
    }

    /// Prints the last ended run with what comes next.
    fn next(&mut self, then: &str) {
        if let Some(line) = self.ended.take() {
            if !self.quiet {
                eprintln!("pkit: {line}; {then}");
            }
        }
    }

    fn end(&mut self, outcome: &SupervisionOutcome, code: u8) {
        // Every run's exit comes as an event before the end; should one
        // not have (the event buffer overflowed), it is reported from the
        // outcome.
        if let (Some(pid), Some(out)) = (self.running, &outcome.final_output) {
            self.unhealthy |= outcome.final_unhealthy;
            self.event(&SupervisorEvent::Exited {
                pid,
                outcome: out.outcome(),
                crashed: outcome.final_crashed,
            });
        }
        let reason = match outcome.stopped {
            StopReason::PolicySatisfied => "policy_satisfied",
            StopReason::ByPredicate => "by_predicate",
            StopReason::RestartsExhausted => "restarts_exhausted",
            StopReason::Cancelled => "cancelled",
            StopReason::StopRequested => "stop_requested",
            StopReason::CannotStart => "cannot_start",
            _ => "other",
        };
        if self.json {
            self.json_line(serde_json::json!({
                "event": "stopped", "reason": reason, "restarts": outcome.restarts,
                "exit_status": code,
            }));
        } else {
            let then = format!(
                "stopping: {} after {} restarts",
                outcome.stopped, outcome.restarts
            );
            if self.ended.is_some() {
                self.next(&then);
            } else if !self.quiet {
                eprintln!("pkit: {then}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_literal;

    /// A pattern taken for text finds what the regular expression finds;
    /// one with any character regex_lite gives a meaning stays a regex.
    #[test]
    fn plain_text_patterns_match_as_the_regex_does() {
        let lines = ["listening on 8080", "ready", "", "a b", "Listening", "x.y"];
        for pattern in ["listening on", "ready", "", "a b", "8080", "on 80"] {
            assert!(is_literal(pattern), "{pattern:?}");
            let re = regex_lite::Regex::new(pattern).unwrap();
            for line in lines {
                assert_eq!(
                    line.contains(pattern),
                    re.is_match(line),
                    "{pattern:?} {line:?}"
                );
            }
        }
        for pattern in [
            "x.y",
            "^ready",
            "ready$",
            "a|b",
            "(?i)ready",
            r"\d+",
            "[a]",
            "a-b",
        ] {
            assert!(!is_literal(pattern), "{pattern:?}");
        }
    }
}
