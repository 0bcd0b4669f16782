//! Runs the test binary itself again with an environment no `Command` can
//! give it (an entry without `=`, an empty one, a repeated name), through
//! a raw `execve`: for the tests of how pkit reads the inherited
//! environment (tests/env.rs, tests/env_unlocked.rs).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;

/// A C string of `b` (which holds no NUL).
pub fn c_string(b: &[u8]) -> CString {
    CString::new(b).expect("no NUL")
}

/// The entries the environment tests give their helper: `PKIT_DUP=first`,
/// this process's variables, then `extra`, then the odd entries (no `=`,
/// empty, a lone `=`, names starting with `=`, the repeated `PKIT_DUP`),
/// and last `marker` (the variable that tells the helper to run).
pub fn odd_environment(extra: impl IntoIterator<Item = Vec<u8>>, marker: &[u8]) -> Vec<CString> {
    let mut envp = vec![c_string(b"PKIT_DUP=first")];
    envp.extend(
        std::env::vars_os().map(|(k, v)| c_string(&[k.as_bytes(), b"=", v.as_bytes()].concat())),
    );
    envp.extend(extra.into_iter().map(|e| c_string(&e)));
    for odd in [
        &b"PKIT_MALFORMED_NO_EQUALS"[..],
        b"",
        b"=",
        b"=PKIT_LEAD=x=y",
        b"==",
        b"PKIT_DUP=second",
        b"PKIT_EQ_EMPTY=",
        b"PKIT_DUP=",
        marker,
    ] {
        envp.push(c_string(odd));
    }
    envp
}

/// Runs this test binary's test `helper` alone with exactly `envp` as its
/// environment; panics unless it succeeds and printed `ran` (so a helper
/// that returned early, its marker missing, fails the caller). Returns its
/// stdout and stderr.
pub fn run_self_with_env(helper: &str, envp: Vec<CString>, ran: &str) -> String {
    let exe = std::env::current_exe().expect("test binary");
    let path = c_string(exe.as_os_str().as_bytes());
    let argv: Vec<CString> = [
        exe.as_os_str().as_bytes(),
        helper.as_bytes(),
        b"--exact",
        b"--nocapture",
        b"--test-threads=1",
    ]
    .iter()
    .map(|a| c_string(a))
    .collect();
    // Addresses (plain numbers, so the closure is `Send`), made before the
    // fork: the child only reads them.
    let addrs = |v: &[CString]| -> Vec<usize> {
        v.iter()
            .map(|s| s.as_ptr() as usize)
            .chain(std::iter::once(0))
            .collect()
    };
    let (argv_addrs, envp_addrs) = (addrs(&argv), addrs(&envp));
    let mut cmd = std::process::Command::new(&exe);
    // SAFETY: runs in the forked child before its exec: only execve
    // (async-signal-safe) on vectors made before the fork, kept alive by
    // the closure (`argv`, `envp`, `path` moved in).
    unsafe {
        cmd.pre_exec(move || {
            let _keep = (&argv, &envp);
            libc::execve(
                path.as_ptr(),
                argv_addrs.as_ptr().cast(),
                envp_addrs.as_ptr().cast(),
            );
            Err(std::io::Error::last_os_error())
        });
    }
    let out = cmd.output().expect("helper");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(ran), "{text}");
    text
}

/// This process's environment as `vars_os` reads it, each entry as
/// `NAME=value` bytes: what a child that inherits it must get.
pub fn inherited_entries() -> Vec<Vec<u8>> {
    std::env::vars_os()
        .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
        .collect()
}

/// The entries `env -0` printed (each NUL-terminated); asserts the run
/// succeeded and its output ended with a NUL.
pub fn env0_entries(out: &pkit::Output) -> Vec<Vec<u8>> {
    assert!(out.success(), "{out:?}");
    let mut got: Vec<Vec<u8>> = out
        .stdout()
        .split(|&b| b == 0)
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(got.pop().as_deref(), Some(&b""[..]), "not NUL-terminated");
    got
}
