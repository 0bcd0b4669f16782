//! How pkit reads the environment a child inherits: by default a copy
//! made under std's environment lock (`std::env::vars_os`), sound against
//! a `std::env::set_var` on another thread, as std's and tokio's `Command`
//! are; or, once a program opts in with [`read_environment_unlocked`],
//! straight from the C library's `environ` (issue 20).

use std::sync::atomic::{AtomicBool, Ordering};

/// Set (never cleared) by [`read_environment_unlocked`].
static UNLOCKED: AtomicBool = AtomicBool::new(false);

/// From now on, pkit reads the environment a child inherits straight from
/// the C library's `environ`, as `getenv` does, without std's environment
/// lock and without a copy per variable. Process-wide and one-way.
///
/// By default pkit copies this process's environment for every child that
/// inherits it through `std::env::vars_os`, under std's environment lock:
/// a `std::env::set_var` or `remove_var` on another thread (safe calls in
/// edition 2021) then waits, and every start stays sound, as with
/// `std::process::Command`. That copy makes two strings per variable.
/// After this call pkit copies each `NAME=value` entry directly into one
/// reused buffer instead: on this crate's benchmark host, a spawn-wait of
/// `/bin/true` with 39 variables makes 100 heap allocations before and 17
/// after, about 10 µs less CPU per run (`pkit-bench --probe-runs N
/// --count-allocs`, with and without `--unlocked-env`). The entries are
/// read as `vars_os` reads them (one without `=` is not passed on, a
/// repeated name is); a command's `env`, `env_remove`, `env_clear` and
/// `inherit_env` apply as before, to the entries read the same way (no
/// string per variable either: a spawn-wait of `/bin/true` with two
/// variables set, 105 allocations by default, 22 after this call). The
/// portable mechanism's held image also reads the owner's loader
/// variables this way, and the owner-death guards their environment.
///
/// On Windows this has no effect: there a child that inherits the
/// environment is handed the parent's block by the operating system, and
/// pkit reads no environment of its own to start it, so there is nothing
/// unlocked to read.
///
/// # Safety
///
/// From this call on, no thread may change this process's environment —
/// `std::env::set_var` or `remove_var`, the C library's `setenv`,
/// `putenv` or `unsetenv`, or anything calling them — while any thread may
/// start a process through pkit. pkit then reads `environ` while a change
/// could reallocate and free it: a start could fail, hand the child a
/// half-written environment, or crash the process. Call it once the
/// program's environment is set up, before it starts threads (or while
/// no other thread can touch the environment).
///
/// # Example
///
/// ```
/// fn main() -> pkit::Result<()> {
///     // The environment set up first...
///     std::env::set_var("MY_APP_MODE", "fast");
///     // SAFETY: no thread changes the environment from here on.
///     unsafe { pkit::read_environment_unlocked() };
///
///     # #[cfg(unix)]
///     let out = pkit::Command::new("sh")
///         .args(["-c", "echo \"$MY_APP_MODE\""])
///         .blocking()
///         .run()?;
///     # #[cfg(unix)]
///     assert_eq!(out, "fast");
///     Ok(())
/// }
/// ```
pub unsafe fn read_environment_unlocked() {
    UNLOCKED.store(true, Ordering::Release);
}

/// Whether [`read_environment_unlocked`] was called (its caller's promise
/// holds from then on: the Acquire pairs with its Release).
pub(crate) fn unlocked() -> bool {
    UNLOCKED.load(Ordering::Acquire)
}
