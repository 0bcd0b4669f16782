//! `pkit`: run programs contained, so nothing they spawn outlives them.

mod doctor;
mod duration;
mod run;
mod size;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit status for pkit's own failures (bad usage, no container).
pub const EXIT_OWN_FAILURE: u8 = 125;

#[derive(Parser)]
#[command(
    name = "pkit",
    version,
    about = "Run programs so that nothing they spawn outlives them."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a program in a kill-on-drop container and mirror its exit status.
    ///
    /// Exit status: the program's own code; 124 on timeout; 128+N when it
    /// was killed by signal N; 127 when it was not found; 126 when it is
    /// not executable; 125 when pkit itself failed. SIGINT, SIGTERM or
    /// SIGHUP to pkit tears the whole tree down and exits 130, 143 or 129.
    Run(RunArgs),
    /// Say what containment this host offers, and why.
    Doctor {
        /// Print one JSON object instead of prose.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Tear the whole tree down after this long (500ms, 2s, 1m).
    #[arg(long, value_parser = duration::parse, value_name = "DUR")]
    timeout: Option<Duration>,
    /// On timeout, send SIGTERM and wait this long before SIGKILL.
    #[arg(long, value_parser = duration::parse, value_name = "DUR")]
    grace: Option<Duration>,
    /// Containment mechanism (default: PKIT_MECHANISM, else auto).
    #[arg(long, value_enum)]
    mechanism: Option<MechanismArg>,
    /// Print one JSON object describing the run on stdout at the end.
    #[arg(long)]
    json: bool,
    /// Capture stdout and stderr instead of passing them through (they are
    /// included in the JSON, or printed at the end without --json).
    #[arg(long)]
    capture: bool,
    /// Cap the whole tree's memory (bytes, or with K, M, G, T: 512M, 2G).
    #[arg(long, value_parser = size::parse, value_name = "SIZE")]
    memory_max: Option<u64>,
    /// Cap the number of live processes in the tree.
    #[arg(long, value_name = "N")]
    max_procs: Option<u64>,
    /// Cap the tree's CPU use, in cores (0.5 = half a core).
    #[arg(long, value_name = "CORES")]
    cpu: Option<f64>,
    /// Report CPU time and peak memory (in the JSON, or one line on stderr).
    #[arg(long)]
    stats: bool,
    /// The program to run.
    #[arg(required = true, value_name = "PROGRAM")]
    program: OsString,
    /// Its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

#[derive(Clone, Copy, ValueEnum)]
enum MechanismArg {
    Auto,
    Cgroup,
    Pgroup,
}

impl From<MechanismArg> for pkit::MechanismChoice {
    fn from(m: MechanismArg) -> Self {
        match m {
            MechanismArg::Auto => pkit::MechanismChoice::Auto,
            MechanismArg::Cgroup => pkit::MechanismChoice::Cgroup,
            MechanismArg::Pgroup => pkit::MechanismChoice::ProcessGroup,
        }
    }
}

fn main() -> ExitCode {
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
        Cmd::Run(args) => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("pkit: cannot start the async runtime: {e}");
                    return ExitCode::from(EXIT_OWN_FAILURE);
                }
            };
            ExitCode::from(rt.block_on(run::main(args)))
        }
    }
}
