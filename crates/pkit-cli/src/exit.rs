//! pkit's own exit statuses, shared by every subcommand. Any other status
//! is the program's: its code, or 128+N when signal N killed it.

/// Exit status for pkit's own failures (bad usage, no container).
pub const EXIT_OWN_FAILURE: u8 = 125;

/// `pkit run`: the timeout fired (as timeout(1)). `pkit supervise`: the
/// last run failed its health check — it never became healthy, whether
/// pkit killed it when `--health-timeout` ran out or it ended first (even
/// with code 0), so a supervisor that gave up on it never reports success.
pub const EXIT_TIMEOUT: u8 = 124;

/// The program exists but could not be executed.
pub const EXIT_NOT_EXECUTABLE: u8 = 126;

/// The program was not found.
pub const EXIT_NOT_FOUND: u8 = 127;

/// `pkit run`: the timeout's SIGKILL ended the program (after
/// `--kill-after`, or `-s KILL` itself), as timeout(1).
pub const EXIT_KILLED: u8 = signalled(9);

/// The status a shell shows for a program killed by signal `sig`: 128+N.
pub const fn signalled(sig: i32) -> u8 {
    128u8.saturating_add(sig as u8)
}
