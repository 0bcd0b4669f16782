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

/// The name of an entry as `vars_os` parts it: up to its first `=` after
/// the first byte.
fn name_of(entry: &[u8]) -> &[u8] {
    let at = entry[1..]
        .iter()
        .position(|&b| b == b'=')
        .expect("a variable");
    &entry[..=at]
}

/// What `env -0` sees, run by `choice` from a process whose environment is
/// [`odd_environment`]'s (`inherited`: what `vars_os` reads of it), for
/// commands that change it in several ways at once: overrides (of every
/// copy of a repeated name, in place), removals (of a repeated name, of
/// names starting with `=`, of absent ones), new variables (empty, not
/// UTF-8) after the inherited ones by name; an `inherit_env` allow-list
/// with an override; `env_clear` with new variables. Blocking runs: call
/// it off any runtime's thread.
pub fn check_changes(choice: pkit::MechanismChoice, inherited: &[Vec<u8>]) {
    use std::ffi::OsStr;
    let env0 = |c: pkit::Command| -> Vec<String> {
        let out = c.arg("-0").blocking().output().expect("env");
        env0_entries(&out)
            .iter()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect()
    };
    let show = |e: Vec<Vec<u8>>| -> Vec<String> {
        e.iter()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect()
    };
    let has = |name: &[u8]| inherited.iter().any(|e| name_of(e) == name);
    assert!(has(b"PKIT_DUP") && has(b"=PKIT_LEAD") && has(b"=") && has(b"PKIT_EQ_EMPTY"));

    let got = env0(
        super::cmd(choice, "env")
            .env("PKIT_DUP", "over")
            .env("PKIT_EQ_EMPTY", "now set")
            .env_remove("=PKIT_LEAD")
            .env_remove("=")
            .env_remove("PKIT_MALFORMED_NO_EQUALS")
            .env_remove("PKIT_ABSENT")
            .env("PKIT_NEW_EMPTY", "")
            .env(
                OsStr::from_bytes(b"PKIT_NEW_\xff"),
                OsStr::from_bytes(b"\xfe="),
            ),
    );
    let mut want: Vec<Vec<u8>> = inherited
        .iter()
        .filter_map(|e| match name_of(e) {
            b"=PKIT_LEAD" | b"=" => None,
            b"PKIT_DUP" => Some(b"PKIT_DUP=over".to_vec()),
            b"PKIT_EQ_EMPTY" => Some(b"PKIT_EQ_EMPTY=now set".to_vec()),
            _ => Some(e.clone()),
        })
        .collect();
    want.push(b"PKIT_NEW_EMPTY=".to_vec());
    want.push(b"PKIT_NEW_\xff=\xfe=".to_vec());
    assert_eq!(got, show(want), "{choice}: changes");

    let got = env0(
        super::cmd(choice, "env")
            .inherit_env(["PKIT_DUP", "=PKIT_LEAD", "PATH", "PKIT_ABSENT"])
            .env("PKIT_DUP", "over")
            .env("PKIT_NEW", "new"),
    );
    let mut want: Vec<Vec<u8>> = inherited
        .iter()
        .filter_map(|e| match name_of(e) {
            b"PKIT_DUP" => Some(b"PKIT_DUP=over".to_vec()),
            b"=PKIT_LEAD" | b"PATH" => Some(e.clone()),
            _ => None,
        })
        .collect();
    want.push(b"PKIT_NEW=new".to_vec());
    assert_eq!(got, show(want), "{choice}: allow-list");

    let got = env0(
        super::cmd(choice, "env")
            .env_clear()
            .env("PKIT_DUP", "only")
            .env("E", "")
            .env_remove("PATH"),
    );
    assert_eq!(got, ["E=", "PKIT_DUP=only"], "{choice}: cleared");
}
