//! `pkit`: run programs contained, so nothing they spawn outlives them.

// pkit's own printing never panics. std's `eprintln!` panics when the
// write fails, and a stream whose reader is gone (`pkit run job 2>&1 |
// head -1`) fails with EPIPE: pkit then ended with status 101 instead of
// the program's. This shadows std's for every module below (declared
// after it); what can't be written to stderr is dropped, as the program's
// own output to the same pipe is. pkit's output to stdout (the captured
// output, a report, `--pty`'s relay, `pkit doctor`'s findings) is written
// with its errors seen: one that can't be written is a failure
// (`exit::WriteFailed`), not dropped.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod args;
mod cgstats;
mod checks;
mod doctor;
mod duration;
mod env_arg;
mod events;
mod exit;
mod fgwatch;
mod forward;
mod grace;
mod json_line;
mod orphans;
mod pty;
mod raw_args;
mod relay;
mod report;
mod run;
mod script;
mod signame;
mod size;
mod summary;
mod supervise;
mod sys;
#[cfg_attr(windows, path = "termwatch_none.rs")]
mod termwatch;
mod testpause;
mod tty;
mod watcher;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Cmd};

pub use exit::EXIT_OWN_FAILURE;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(termwatch::ARG)) {
        return termwatch::main();
    }
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(fgwatch::ARG)) {
        return fgwatch::main();
    }
    if let Err(msg) = raw_args::check_raw(std::env::args_os().skip(1)) {
        eprintln!("pkit: {msg}");
        return ExitCode::from(EXIT_OWN_FAILURE);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_OWN_FAILURE)
            } else {
                ExitCode::SUCCESS // --help, --version
            };
        }
    };
    match cli.command {
        Cmd::Doctor { json } => doctor::main(json),
        Cmd::Supervise(args) => {
            // As for `run` (below): every run gets the original pair back
            // (`checks::rlimits`; without a trampoline `supervise::main`
            // gives pkit's own back and supervises again).
            #[cfg(target_os = "linux")]
            {
                sys::raise_nofile();
                sys::reserve_low();
            }
            if args.verbose {
                events::install(args.json);
            }
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let exit = rt.block_on(supervise::main(*args));
            drop(rt);
            finish(exit)
        }
        Cmd::Run(args) => {
            // Room for pkit's own ~20 descriptors under a small soft
            // RLIMIT_NOFILE: its soft limit goes up to the hard one, and the
            // program gets the original pair back (`checks::rlimits`;
            // the portable backend's trampoline applies it, and where there
            // is none `run::start` gives pkit's own back first). Opens
            // nothing, so it may come first.
            #[cfg(target_os = "linux")]
            sys::raise_nofile();
            // First, while pkit holds no descriptor of its own: an
            // inherited --json-fd N that is not open would otherwise be
            // found open once the signal pipe or the runtime took number
            // N, and the report written into (and that descriptor closed
            // under) pkit's own machinery.
            let sink = report::Sink::open(args.json, args.json_file.as_deref(), args.json_fd);
            // Likewise a --keep-fd N not inherited: pkit's own N would be
            // handed to the program.
            #[cfg(unix)]
            let args = {
                let mut args = args;
                args.keep_fd_not_inherited = args
                    .keep_fd
                    .iter()
                    .copied()
                    .find(|&fd| fd > 2 && !sys::fd_open(fd));
                args
            };
            // Then, before pkit opens anything of its own: its own
            // descriptors go above a small original limit, below which a
            // run that gets the limit by inheriting it finds room.
            #[cfg(target_os = "linux")]
            sys::reserve_low();
            if args.verbose {
                events::install(false);
            }
            // Before any thread exists, so every thread inherits the mask:
            // the caught signals are read with their sender from a signalfd
            // (Linux), or from a self-pipe their handler writes to in the one
            // thread that unblocks them (elsewhere, and for the portable
            // backend on Linux).
            if let Err(e) = sys::block_caught() {
                eprintln!("pkit: cannot block signals: {e}");
                return ExitCode::from(EXIT_OWN_FAILURE);
            }
            #[cfg(unix)]
            if sys::signal_pipe_wanted(args.mechanism.map(Into::into)) {
                if let Err(e) = sys::install_signal_pipe() {
                    eprintln!("pkit: cannot catch signals: {e}");
                    return ExitCode::from(EXIT_OWN_FAILURE);
                }
            }
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let exit = rt.block_on(run::main(*args, sink));
            drop(rt);
            finish(exit)
        }
    }
}

/// Ends `run` or `supervise` (their runtime dropped).
fn finish(exit: run::Exit) -> ExitCode {
    match exit {
        run::Exit::Code(c) => ExitCode::from(c),
        #[cfg(windows)]
        run::Exit::Full(c) => std::process::exit(c),
        run::Exit::Reraise(sig) => {
            sys::reraise(sig);
            // Still here (a signal whose default is to do nothing,
            // such as SIGWINCH): the shell's convention.
            ExitCode::from(exit::signalled(sig))
        }
    }
}

/// The single-threaded runtime `run` and `supervise` work in; when it
/// can't be made, says so and gives the exit code for it.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    // Tokio panics, rather than returning an error, when its signal driver
    // cannot make its socket pair (no descriptor left: `ulimit -n` of 6 to
    // 8). That is a start-up failure like the others: caught here, with
    // the panic's message kept off stderr (no thread but this one yet).
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let built = std::panic::catch_unwind(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    });
    std::panic::set_hook(hook);
    let built = built.unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("it panicked");
        Err(std::io::Error::other(plain(text)))
    });
    built.map_err(|e| {
        eprintln!("pkit: cannot start the async runtime: {e}");
        ExitCode::from(EXIT_OWN_FAILURE)
    })
}

/// A panic's text with an `io::Error` printed in its Debug form (tokio's
/// `failed to create UnixStream: Os { code: 24, kind: Uncategorized, ..
/// }`) given that error's plain message instead (`Too many open files (os
/// error 24)`); any other text as it is.
fn plain(text: &str) -> String {
    const OS: &str = "Os { code: ";
    if let Some(at) = text.find(OS) {
        let digits: String = text[at + OS.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(code) = digits.parse::<i32>() {
            let e = std::io::Error::from_raw_os_error(code);
            return format!("{}{e}", &text[..at]);
        }
    }
    text.to_owned()
}
