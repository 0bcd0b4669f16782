//! `pkit run`.

use std::io::Write;

use pkit::{CancelToken, Command, Error, Group, Outcome, Output, Stdio};
use serde::Serialize;
use tokio::signal::unix::{signal, SignalKind};

use crate::{RunArgs, EXIT_OWN_FAILURE};

const EXIT_TIMEOUT: u8 = 124;
const EXIT_NOT_EXECUTABLE: u8 = 126;
const EXIT_NOT_FOUND: u8 = 127;

/// The JSON printed by `--json`.
#[derive(Serialize)]
struct Report<'a> {
    program: &'a str,
    /// `exited(0)`, `signalled(SIGKILL)`, `timed out`, or `error`.
    outcome: String,
    exit_code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    duration_ms: f64,
    mechanism: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_time_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oom_killed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_kind: Option<String>,
}

pub async fn main(args: RunArgs) -> u8 {
    let program = args.program.to_string_lossy().into_owned();
    let (mut int, mut term, mut hup) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => {
            eprintln!("pkit: cannot install signal handlers");
            return EXIT_OWN_FAILURE;
        }
    };

    let token = CancelToken::new();
    let stdio = if args.capture {
        Stdio::Piped
    } else {
        Stdio::Inherit
    };
    let mut cmd = Command::new(&args.program)
        .args(&args.args)
        .stdout(stdio)
        .stderr(stdio)
        .cancel_token(&token);
    if !args.capture {
        cmd = cmd.stdin_inherit();
    }
    if let Some(t) = args.timeout {
        cmd = cmd.timeout(t);
    }
    if let Some(g) = args.grace {
        cmd = cmd.grace(g);
    }
    let mut builder = Group::builder();
    if let Some(m) = args.mechanism {
        builder = builder.mechanism(m.into());
    }
    if let Some(bytes) = args.memory_max {
        builder = builder.memory_max(bytes);
    }
    if let Some(n) = args.max_procs {
        builder = builder.max_processes(n);
    }
    if let Some(cores) = args.cpu {
        builder = builder.cpu_quota(cores);
    }
    let group = match builder.build() {
        Ok(g) => g,
        Err(e) => return fail(&args, &program, &e),
    };

    let run = group.output(&cmd);
    tokio::pin!(run);
    let mut caught: Option<u8> = None;
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            _ = int.recv(), if caught.is_none() => caught = Some(libc_sig::INT),
            _ = term.recv(), if caught.is_none() => caught = Some(libc_sig::TERM),
            _ = hup.recv(), if caught.is_none() => caught = Some(libc_sig::HUP),
        }
        // A signal: cancel, and keep polling the run so it tears the tree
        // down (and removes its container) before we exit.
        token.cancel();
    };

    // The guard is what would have ended the tree had pkit been SIGKILLed:
    // if it could not run, say so (the library logs it through tracing,
    // which the CLI does not print).
    if let Some(why) = pkit::host_containment().guard.error {
        eprintln!("pkit: warning: the run had no owner-death guard: {why}");
    }

    if let Some(sig) = caught {
        if args.json {
            print_json(&error_report(&program, "cancelled", "cancelled"));
        }
        return 128 + sig;
    }
    match result {
        Ok(out) => finish(&args, &out),
        Err(e) => fail(&args, &program, &e),
    }
}

/// Reports an error and picks the exit status.
fn fail(args: &RunArgs, program: &str, e: &Error) -> u8 {
    let code = match e {
        Error::NotFound { .. } => EXIT_NOT_FOUND,
        Error::NotExecutable { .. } => EXIT_NOT_EXECUTABLE,
        _ => EXIT_OWN_FAILURE,
    };
    if args.json {
        print_json(&error_report(
            program,
            &e.to_string(),
            &format!("{:?}", e.kind()),
        ));
    }
    eprintln!("pkit: {e}");
    code
}

/// Signal numbers as exit-status offsets (Linux values, as in `kill -l`).
mod libc_sig {
    pub const HUP: u8 = 1;
    pub const INT: u8 = 2;
    pub const TERM: u8 = 15;
}

fn finish(args: &RunArgs, out: &Output) -> u8 {
    let code = match out.outcome() {
        Outcome::Exited(c) => (c & 0xff) as u8,
        Outcome::Signalled(s) => 128u8.saturating_add(s as u8),
        Outcome::TimedOut => EXIT_TIMEOUT,
        _ => EXIT_OWN_FAILURE,
    };
    if args.json {
        print_json(&Report {
            program: out.program(),
            outcome: out.outcome().to_string(),
            exit_code: out.code(),
            signal: out.signal(),
            timed_out: out.timed_out(),
            duration_ms: out.duration().as_secs_f64() * 1e3,
            mechanism: Some(out.mechanism().as_str()),
            pid: Some(out.pid()),
            cpu_time_ms: args
                .stats
                .then(|| out.cpu_time().map(|d| d.as_secs_f64() * 1e3))
                .flatten(),
            peak_memory_bytes: args.stats.then(|| out.peak_memory_bytes()).flatten(),
            oom_killed: (args.stats || args.memory_max.is_some()).then(|| out.oom_killed()),
            stdout: args.capture.then(|| out.stdout_str().into_owned()),
            stderr: args.capture.then(|| out.stderr_str().into_owned()),
            error: None,
            error_kind: None,
        });
    } else if args.capture {
        let _ = std::io::stdout().write_all(out.stdout());
        let _ = std::io::stderr().write_all(out.stderr());
    }
    if args.stats && !args.json {
        let cpu = out.cpu_time().map_or("unknown".to_string(), |d| {
            format!("{:.3}s", d.as_secs_f64())
        });
        let mem = out.peak_memory_bytes().map_or("unknown".to_string(), |b| {
            format!("{:.1} MiB", b as f64 / 1048576.0)
        });
        eprintln!(
            "pkit: {} {} in {:.3}s, cpu {cpu}, peak memory {mem}{}",
            out.program(),
            out.outcome(),
            out.duration().as_secs_f64(),
            if out.oom_killed() { ", OOM-killed" } else { "" }
        );
    } else if out.oom_killed() && !args.json {
        eprintln!(
            "pkit: {} was killed by the OOM killer (memory cap)",
            out.program()
        );
    }
    if out.timed_out() && !args.json {
        eprintln!(
            "pkit: {} timed out after {:?}; its whole tree was torn down",
            out.program(),
            out.duration()
        );
    }
    code
}

fn error_report<'a>(program: &'a str, error: &str, kind: &str) -> Report<'a> {
    Report {
        program,
        outcome: "error".into(),
        exit_code: None,
        signal: None,
        timed_out: false,
        duration_ms: 0.0,
        mechanism: None,
        pid: None,
        cpu_time_ms: None,
        peak_memory_bytes: None,
        oom_killed: None,
        stdout: None,
        stderr: None,
        error: Some(error.into()),
        error_kind: Some(kind.into()),
    }
}

fn print_json(report: &Report<'_>) {
    let mut stdout = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut stdout, report);
    let _ = writeln!(stdout);
}
