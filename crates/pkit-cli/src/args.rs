//! The command line: flags, their help, and the checks clap can't express.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::{duration, signame, size};

const ROOT_EXAMPLES: &str = "\
Examples:
  pkit run -- make -j8                        nothing make starts outlives it
  pkit run --timeout 10m -k 30s -- ./build.sh like timeout -k 30s 10m ./build.sh
  pkit run --memory-max 2G --cpu 1.5 -- job   caps for the whole tree
  pkit run --stats -- cargo build             like /usr/bin/time -v, whole tree
  pkit run --json-fd 3 -- cmd 3>report.json   a machine-readable report
  pkit doctor                                 what containment this host has";

const RUN_EXAMPLES: &str = "\
Examples:
  pkit run --timeout 1m30s -- ./test.sh
      SIGTERM to the whole tree after 90 s, SIGKILL 10 s later if needed;
      exit 124 (137 if SIGKILL was needed).
  pkit run --timeout 5 -s INT -k 2 --preserve-status -- server
      as `timeout -s INT -k 2 --preserve-status 5 server`.
  pkit run --json --capture --capture-limit 1M -- make
      the report (with stdout/stderr) is the last line of pkit's stderr.
  pkit run --json-file run.json --stats -- cargo test
  pkit run -C /srv -E RUST_LOG=debug -i --nice 10 --rlimit NOFILE=1024 -- ./app
  pkit run --memory-max 512M --max-procs 64 -- make -j

Signals to pkit: INT, QUIT, HUP, WINCH, TSTP and CONT (what a terminal or job
control sends to a whole job) go to the whole tree; TERM, USR1, USR2 and ALRM
go to the program, as if sent to it (--foreground: all to the program). One
the terminal already delivered to a program in pkit's process group (Ctrl-C,
Ctrl-\\, a resize) is not sent twice and never ends the run: a REPL survives
Ctrl-C. Ctrl-Z stops the tree and pkit; `fg` continues both. A second TERM or
HUP (or INT/QUIT sent with kill) starts pkit's teardown: --signal to the
whole tree, SIGKILL after --kill-after; a third kills at once. With -k, the
first such signal also arms that SIGKILL, as in timeout(1). When the program
ends, what it left running gets --signal and the rest of the grace, then
SIGKILL. A signal ignored when pkit starts (nohup's HUP, a shell's `cmd &`
INT and QUIT) stays ignored: pkit neither forwards nor acts on it, and the
program inherits it ignored, as without pkit (`nohup pkit run job`
survives a hangup). Not SIGPIPE and SIGCHLD: the program always starts
with those at their default.

Exit status: the program's own code; 124 on timeout (the program's status
with --preserve-status); 137 when the timeout's SIGKILL ended it (after
--kill-after, or -s KILL); a
program killed by a signal makes pkit end by the same signal (as
timeout(1); --no-reraise exits 128+N instead); 125 pkit failed (bad usage,
no container, a refused cap, the process could not be made); 126 the
program was found but could not be run (no permission, a directory, a
binary the kernel can't run, its #! interpreter missing, an argument list
too long, any other exec failure; an executable file with neither #! nor
an ELF header is run by /bin/sh, as timeout(1) does, but not
with --uid/--gid); 127 not found (nothing at its path or in PATH; a path that
can't be followed, ELOOP or ENAMETOOLONG, included); 141 when pkit's own
output (the stdout --capture prints at the end, a report to a --json-file
or --json-fd, --pty's relay of the program's terminal to stdout) could not
be written because its reader went away (EPIPE, as a shell shows a writer
SIGPIPE killed), 125 when it could not be written for another reason (a
full disk): either replaces the program's status, and pkit says so on
stderr (a failed write to stderr itself changes nothing). (A stdout closed
when pkit starts, `>&-`, is /dev/null to it: Rust's runtime opens that in
its place.)

Sizes: K, M, G, T are powers of 1024 (512M); KB, MB, GB, TB powers of 1000;
at most 8 EiB - 1 byte (9223372036854775807), the kernel's largest memory cap.
Durations: 10 (seconds), 1.5, 1e3, 500ms, 2m, 1h, 1d, 1m30s; 0 = no timeout;
inf, or anything too long to count (1e300), is forever, as in timeout(1);
anything else above 0 is at least 1 ns. Out-of-range numbers (NaN,
negatives, --cpu 1e300, --max-procs 0) are refused with status 125.
File descriptors above 2 are closed in the program unless --keep-fd.";

#[derive(Parser)]
#[command(
    name = "pkit",
    version,
    about = "Run programs so that nothing they spawn outlives them.",
    after_help = ROOT_EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run a program in a kill-on-drop container and mirror its exit status.
    ///
    /// A drop-in for timeout(1) (same flags and exit statuses), systemd-run
    /// --scope (caps, a cgroup for the whole tree) and /usr/bin/time
    /// (--stats), with a JSON report.
    #[command(after_help = RUN_EXAMPLES)]
    Run(Box<RunArgs>),
    /// Keep a program running: restart it when it crashes, with backoff.
    ///
    /// Each run is contained as with `pkit run` (its whole tree is gone
    /// before the next starts). A crash is any run that is not a clean
    /// exit 0, or that fails its health check. One line on stderr per run
    /// that ended (--json: one JSON object per event). TERM, INT, HUP or
    /// QUIT to pkit stop it: the run gets SIGTERM, then SIGKILL after 10 s
    /// or -k (a second signal: SIGKILL at once). USR1, USR2, ALRM and WINCH
    /// are passed on to the current run's program.
    #[command(after_help = SUPERVISE_EXAMPLES)]
    Supervise(Box<SuperviseArgs>),
    /// Say what containment this host offers, and why. Exits 0 when new
    /// groups get a mechanism, 125 (after the findings) when creating one
    /// fails here, as under a bad PKIT_MECHANISM or PKIT_CLONE3.
    Doctor {
        /// Print one JSON object instead of prose.
        #[arg(long)]
        json: bool,
    },
}

const SUPERVISE_EXAMPLES: &str = "\
Examples:
  pkit supervise -- ./worker
      restart on crash: after 1 s, 2 s, 4 s... up to 30 s.
  pkit supervise --restart always --max-restarts 5 --backoff 500ms,1.5 -- ./job
  pkit supervise --health-line 'listening on [0-9]+' --health-timeout 10s -- ./server
      a run that prints no line matching the regular expression within 10 s
      is killed and counts as a crash (the match may be anywhere in the line:
      anchor it with ^ and $).
  pkit supervise --health-port 127.0.0.1:8080 --storm-pause 5m -- ./server

Exit status: 0 after a clean last run or a stop by signal; 124 when the
last run failed its health check (pkit killed it, or it ended first, even
with code 0); else the last run's: its code, or, when signal N killed its
program (a second signal's SIGKILL too), pkit ends by the same signal, as
`pkit run` (--no-reraise exits 128+N instead); 126/127 when it could not
start; 125 pkit failed. The --json \"stopped\" event carries it as
exit_status (128+N for signal N).

TERM, INT, HUP or QUIT stop the supervision; USR1, USR2, ALRM and WINCH go
to the current run's program (as `pkit run` passes them on; between runs,
and once the program has exited, they are dropped). A signal ignored when
pkit starts (as HUP under nohup) stays ignored, by pkit and by the program.";

#[derive(clap::Args)]
pub struct SuperviseArgs {
    /// When to start the program again.
    #[arg(long, value_enum, default_value = "on-crash")]
    pub restart: RestartArg,
    /// At most N restarts; then pkit ends with the last run's status (124
    /// when it failed its health check).
    #[arg(long, value_name = "N")]
    pub max_restarts: Option<u32>,
    /// The first pause after a crash, and its factor per further crash
    /// [default: 1s,2].
    #[arg(long, value_name = "DUR[,FACTOR]", value_parser = crate::duration::parse_backoff,
          allow_hyphen_values = true)]
    pub backoff: Option<(Duration, f64)>,
    /// The longest pause [default: 30s].
    #[arg(long, value_parser = duration::parse, value_name = "DUR",
          allow_hyphen_values = true)]
    pub max_backoff: Option<Duration>,
    /// A run up at least DUR resets the backoff and the storm count.
    #[arg(long, value_parser = duration::parse, value_name = "DUR",
          allow_hyphen_values = true)]
    pub reset_after: Option<Duration>,
    /// After 5 crashes within 10 s, pause DUR instead of the backoff.
    #[arg(long, value_parser = duration::parse, value_name = "DUR",
          allow_hyphen_values = true)]
    pub storm_pause: Option<Duration>,
    /// Healthy once a line of stdout or stderr matches REGEX (anywhere in
    /// the line; `^`/`$` anchor it). Syntax: the `regex` crate's, without
    /// Unicode classes (`\d` is ASCII digits).
    #[arg(long, value_name = "REGEX", conflicts_with = "health_port", value_parser = parse_regex)]
    pub health_line: Option<regex_lite::Regex>,
    /// Healthy once a TCP connection to ADDR (127.0.0.1:8080) succeeds.
    #[arg(long, value_name = "ADDR")]
    pub health_port: Option<std::net::SocketAddr>,
    /// How long a run has to become healthy [default: 30s; 0 or inf: no
    /// bound, the run waited for until it passes or ends].
    #[arg(long, value_parser = duration::parse, value_name = "DUR",
          allow_hyphen_values = true)]
    pub health_timeout: Option<Duration>,
    /// On a stop (TERM, INT or HUP to pkit), send SIGKILL if the run's tree
    /// still runs DUR after SIGTERM, as `pkit run -k` [default: 10s; 0:
    /// SIGKILL at once].
    #[arg(short = 'k', long, visible_alias = "grace", value_parser = duration::parse,
          value_name = "DUR", allow_hyphen_values = true)]
    pub kill_after: Option<Duration>,
    /// Containment mechanism (default: PKIT_MECHANISM, else auto).
    #[arg(long, value_enum)]
    pub mechanism: Option<MechanismArg>,
    /// Set a resource limit for every run, as `pkit run --rlimit`:
    /// NOFILE=1024, CORE=0, AS=2G:4G, CPU=unlimited (repeatable).
    #[arg(long, value_name = "RES=SOFT[:HARD]", value_parser = parse_rlimit)]
    pub rlimit: Vec<(pkit::Resource, u64, Option<u64>)>,
    /// One JSON object per event on stderr instead of text lines.
    #[arg(long)]
    pub json: bool,
    /// No text lines on stderr (errors still are).
    #[arg(short = 'q', long, conflicts_with = "json")]
    pub quiet: bool,
    /// Also print pkit's lifecycle events (process started and finished,
    /// timeouts, restarts, storm pauses…) on stderr, one line each (with
    /// --json, one JSON object each, "event": "log").
    #[arg(short = 'v', long, conflicts_with = "quiet")]
    pub verbose: bool,
    /// When the last run's program was killed by signal N, exit 128+N
    /// instead of ending pkit by the same signal (as `pkit run`).
    #[arg(long)]
    pub no_reraise: bool,
    /// The program to run, then its arguments: everything from PROGRAM on
    /// is the program's, even what looks like an option of pkit's (as with
    /// timeout(1) and env(1)).
    #[arg(
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        value_names = ["PROGRAM", "ARGS"]
    )]
    pub command: Vec<OsString>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RestartArg {
    OnCrash,
    Always,
    Never,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Send --signal to the whole tree after DUR (0: no timeout).
    #[arg(long, value_parser = duration::parse, value_name = "DUR", allow_hyphen_values = true)]
    pub timeout: Option<Duration>,
    /// The signal for the timeout and for pkit's teardown [default: TERM].
    #[arg(short = 's', long, value_parser = signame::parse, value_name = "SIG")]
    pub signal: Option<i32>,
    /// Send SIGKILL if the tree still runs DUR after --signal (also after a
    /// forwarded TERM/HUP, as timeout(1)) [default for the timeout, the
    /// teardown and the program's leftovers: 10s; 0: SIGKILL at once].
    #[arg(short = 'k', long, visible_alias = "grace", value_parser = duration::parse,
          value_name = "DUR", allow_hyphen_values = true)]
    pub kill_after: Option<Duration>,
    /// On timeout, exit with the program's status instead of 124.
    #[arg(long)]
    pub preserve_status: bool,
    /// Forward signals, and send the timeout's signal, to the program only,
    /// not to the whole tree (the tree still ends when the program does).
    #[arg(long)]
    pub foreground: bool,
    /// Run the program on a pseudo-terminal of its own (not on Windows),
    /// for programs that behave differently without one: its output goes
    /// to pkit's stdout, pkit's stdin is typed into it (pkit's terminal in
    /// raw mode meanwhile; at the end of stdin, the end-of-file character),
    /// and its size follows pkit's terminal (24x80 without one). pkit's
    /// terminal gets its settings back at the end, while pkit is stopped,
    /// and even if pkit is killed.
    #[arg(long)]
    pub pty: bool,
    /// Say on stderr each signal pkit sends, and what teardown verified;
    /// and print pkit's lifecycle events (process started, finished, timed
    /// out, group closed…), one line each.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// No notes or end-of-run messages on stderr (errors still are).
    #[arg(short = 'q', long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// When the program is killed by signal N, exit 128+N instead of
    /// ending pkit by the same signal.
    #[arg(long)]
    pub no_reraise: bool,
    /// Name the run's cgroup pkit-<pid>.<ns>.<start>-<n>-NAME (1 to 64 of A-Z a-z 0-9 .
    /// _ -), as /proc/<pid>/cgroup of the program shows. A process group has
    /// nothing to name: a warning says so.
    // The doc comment is --help text (clap prints it as written), not
    // Markdown: its <pid> and <n> are not HTML tags.
    #[allow(rustdoc::invalid_html_tags)]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Containment mechanism (default: PKIT_MECHANISM, else auto). `cgroup`
    /// refuses to run without one.
    #[arg(long, value_enum)]
    pub mechanism: Option<MechanismArg>,
    /// Write the JSON report (schema 1) as the last line of stderr.
    #[arg(long, conflicts_with_all = ["json_file", "json_fd"])]
    pub json: bool,
    /// Write the JSON report to PATH, as the shell's `>PATH` would: created
    /// (mode 0666 less the umask) or truncated, following a symbolic link
    /// (so /dev/stderr works).
    #[arg(long, value_name = "PATH", conflicts_with = "json_fd")]
    pub json_file: Option<PathBuf>,
    /// Write the JSON report to inherited file descriptor N (3 or more).
    #[arg(long, value_name = "N")]
    pub json_fd: Option<i32>,
    /// Capture stdout and stderr (stdin is left alone): into the report,
    /// or printed at the end without one.
    #[arg(long)]
    pub capture: bool,
    /// With --capture, keep at most SIZE of each stream [default: 16M].
    #[arg(long, value_parser = size::parse, value_name = "SIZE", requires = "capture")]
    pub capture_limit: Option<u64>,
    /// With --capture, which end of a stream over the limit is kept.
    #[arg(long, value_enum, value_name = "END", requires = "capture")]
    pub capture_keep: Option<KeepArg>,
    /// Report CPU (user, system), peak memory, faults, context switches and
    /// I/O for the whole tree (in the report, or on stderr like time -v).
    #[arg(long)]
    pub stats: bool,
    /// Cap the whole tree's memory (512M, 2G; swap included where the host
    /// caps it).
    #[arg(long, value_parser = size::parse, value_name = "SIZE")]
    pub memory_max: Option<u64>,
    /// Throttle the tree above this much memory (cgroup v2 memory.high; as
    /// systemd's MemoryHigh=). Refused where the host can't.
    #[arg(long, value_parser = size::parse, value_name = "SIZE")]
    pub memory_high: Option<u64>,
    /// Cap the tree's swap (0: none; cgroup v2 memory.swap.max, as
    /// systemd's MemorySwapMax=). Refused where the host can't.
    #[arg(long, value_parser = size::parse_or_zero, value_name = "SIZE")]
    pub memory_swap_max: Option<u64>,
    /// Run the tree only on these CPUs: 0-3, 0,2 (a cpuset; as taskset -c
    /// or systemd's AllowedCPUs=).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Cap the number of live processes (and threads) in the tree (1 to
    /// 4194304, Linux's most pids).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=MAX_PROCS))]
    pub max_procs: Option<u64>,
    /// Cap the tree's CPU use, in cores (0.5 = half a core; 0.01 to
    /// 175921860, the kernel's largest quota).
    #[arg(long, value_name = "CORES", allow_hyphen_values = true, value_parser = parse_cpu)]
    pub cpu: Option<f64>,
    /// Run the program in DIR. A relative PROGRAM path is pkit's working
    /// directory's, not DIR's (unlike `env -C`).
    #[arg(short = 'C', long, value_name = "DIR")]
    pub chdir: Option<PathBuf>,
    /// Set an environment variable for the program (repeatable).
    // A value that starts with '-' is still this option's (never taken for
    // an option, whose refusal would quote it: it may be a secret).
    #[arg(short = 'E', long = "env", value_name = "K=V", allow_hyphen_values = true,
          value_parser = crate::env_arg::EnvParser)]
    pub env: Vec<(OsString, OsString)>,
    /// Start the program with an empty environment (then -E adds to it).
    #[arg(short = 'i', long)]
    pub env_clear: bool,
    /// Run the program at this niceness (-20 to 19; as nice -n).
    #[arg(long, value_name = "N", allow_hyphen_values = true,
          value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub nice: Option<i32>,
    /// Set a resource limit for the program, as prlimit: NOFILE=1024,
    /// CORE=0, AS=2G:4G, CPU=unlimited (repeatable).
    #[arg(long, value_name = "RES=SOFT[:HARD]", value_parser = parse_rlimit)]
    pub rlimit: Vec<(pkit::Resource, u64, Option<u64>)>,
    /// Make the program the leader of a new session (no controlling
    /// terminal). Needs the cgroup mechanism, which still contains it.
    #[arg(long)]
    pub setsid: bool,
    /// Run the program as this user (name or number; as root). Without
    /// --gid, its primary group, and no other groups.
    #[arg(long, value_name = "USER")]
    pub uid: Option<String>,
    /// Run the program with this group (name or number; as root).
    #[arg(long, value_name = "GROUP")]
    pub gid: Option<String>,
    /// Pass file descriptor N (3 or more) to the program as N, for the
    /// `3<file` habit (repeatable). Others above 2 are closed.
    #[arg(long = "keep-fd", value_name = "N")]
    pub keep_fd: Vec<i32>,
    /// The first --keep-fd that was not open when pkit started (set by
    /// `main` before pkit opens descriptors of its own, which could get
    /// that number).
    #[arg(skip)]
    pub keep_fd_not_inherited: Option<i32>,
    /// The program to run, then its arguments: everything from PROGRAM on
    /// is the program's, even what looks like an option of pkit's (as with
    /// timeout(1) and env(1)).
    #[arg(
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        value_names = ["PROGRAM", "ARGS"]
    )]
    pub command: Vec<OsString>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MechanismArg {
    /// A cgroup v2 subtree where one can be made, else a process group.
    Auto,
    /// A cgroup v2 subtree, or refuse to run.
    Cgroup,
    /// A POSIX process group, even where a cgroup could be made.
    Pgroup,
    /// A process group run by the portable Unix backend (the one macOS and
    /// the BSDs use), for trying that code on Linux.
    Portable,
}

impl From<MechanismArg> for pkit::MechanismChoice {
    fn from(m: MechanismArg) -> Self {
        match m {
            MechanismArg::Auto => pkit::MechanismChoice::Auto,
            MechanismArg::Cgroup => pkit::MechanismChoice::Cgroup,
            MechanismArg::Pgroup => pkit::MechanismChoice::ProcessGroup,
            MechanismArg::Portable => pkit::MechanismChoice::Portable,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KeepArg {
    Head,
    Tail,
}

/// The most processes `--max-procs` takes: Linux's `PID_MAX_LIMIT`, past
/// which `pids.max` refuses a number (no system runs more anyway).
const MAX_PROCS: u64 = 4_194_304;

/// The fewest and most cores `--cpu` takes: the kernel's smallest CPU
/// quota (1 ms per 100 ms period) and its largest (2^44 - 1 µs per
/// period, whole cores).
const CPU_CORES: (f64, f64) = (0.01, 175_921_860.0);

/// `--cpu CORES`: a plain decimal number of cores within [`CPU_CORES`].
/// Refused at parse time, quoting the text as given: NaN, infinities,
/// negatives, zero, and values the kernel can't take (1e300 would
/// otherwise be echoed back with 300 digits).
fn parse_cpu(text: &str) -> Result<f64, String> {
    let cores: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of cores (try 0.5, 2 or 1.5)"))?;
    let (min, max) = CPU_CORES;
    if !cores.is_finite() || cores <= 0.0 {
        return Err(format!(
            "{text:?}: the number of cores must be positive and finite"
        ));
    }
    if !(min..=max).contains(&cores) {
        return Err(format!(
            "{text:?} is out of range: from {min} (the kernel's smallest quota) to {max} cores"
        ));
    }
    Ok(cores)
}

/// `RES=SOFT[:HARD]`; values are numbers, sizes (`2G`) or `unlimited`.
fn parse_rlimit(text: &str) -> Result<(pkit::Resource, u64, Option<u64>), String> {
    let (res, values) = text
        .split_once('=')
        .ok_or("expected RES=SOFT[:HARD], e.g. NOFILE=1024 or CORE=0")?;
    let res: pkit::Resource = res.parse().map_err(|e: pkit::Error| match e {
        pkit::Error::InvalidInput(why) => why,
        e => e.to_string(),
    })?;
    let value = |v: &str| -> Result<u64, String> {
        let v = v.trim();
        if v.eq_ignore_ascii_case("unlimited") || v.eq_ignore_ascii_case("infinity") {
            return Ok(u64::MAX);
        }
        match v.parse::<u64>() {
            Ok(n) => Ok(n),
            Err(_) => size::parse(v),
        }
    };
    match values.split_once(':') {
        // Refused here, with its reason, rather than by every start (a
        // supervision would name only the refusal's kind).
        Some((soft, hard)) => match (value(soft)?, value(hard)?) {
            (soft, hard) if soft > hard => {
                let text = |v: u64| match v {
                    u64::MAX => "unlimited".to_string(),
                    v => v.to_string(),
                };
                Err(format!(
                    "the soft limit {} is above the hard one {}",
                    text(soft),
                    text(hard)
                ))
            }
            (soft, hard) => Ok((res, soft, Some(hard))),
        },
        None => Ok((res, value(values)?, None)),
    }
}

/// A `--health-line` pattern, refused at parse time when it does not compile.
fn parse_regex(pattern: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::Regex::new(pattern).map_err(|e| format!("not a regular expression: {e}"))
}

/// The program and its arguments, split from the one positional that holds
/// them both (clap makes a value that follows PROGRAM the program's only
/// when both are one trailing positional).
macro_rules! program_and_args {
    ($($t:ty),*) => {$(
        impl $t {
            /// The program to run.
            pub fn program(&self) -> &OsString {
                &self.command[0]
            }

            /// Its arguments.
            pub fn args(&self) -> &[OsString] {
                &self.command[1..]
            }
        }
    )*};
}
program_and_args!(RunArgs, SuperviseArgs);
