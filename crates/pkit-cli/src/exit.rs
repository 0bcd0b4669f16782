//! The exit status of pkit's own failures, shared by every subcommand.

/// Exit status for pkit's own failures (bad usage, no container).
pub const EXIT_OWN_FAILURE: u8 = 125;
