//! The child's environment and working directory. The test process's own
//! environment is only read, never changed (tests run concurrently).

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use common::*;

fn lines(out: &pkit::Output) -> Vec<String> {
    out.stdout_str().lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn the_inherited_environment_arrives_whole_and_in_order() {
    let suite = begin("the_inherited_environment_arrives_whole_and_in_order").await;
    let mut want: Vec<u8> = Vec::new();
    for (k, v) in std::env::vars_os() {
        want.extend_from_slice(k.as_bytes());
        want.push(b'=');
        want.extend_from_slice(v.as_bytes());
        want.push(0);
    }
    for choice in mechanisms() {
        // `env -0`: values may hold newlines.
        let out = cmd(choice, "env").arg("-0").output().await.expect("env");
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(out.stdout()),
            String::from_utf8_lossy(&want),
            "{choice}"
        );
    }
    suite.end().await;
}

#[tokio::test]
async fn env_sets_variables_on_top_of_the_inherited_ones() {
    let suite = begin("env_sets_variables_on_top_of_the_inherited_ones").await;
    for choice in mechanisms() {
        let out = cmd(choice, "env")
            .env("PKIT_TEST_K", "V=1 with spaces")
            .envs([("PKIT_TEST_A", "1"), ("PKIT_TEST_B", "2")])
            .output()
            .await
            .expect("env");
        let got = lines(&out);
        for want in [
            "PKIT_TEST_K=V=1 with spaces",
            "PKIT_TEST_A=1",
            "PKIT_TEST_B=2",
        ] {
            assert!(
                got.iter().any(|l| l == want),
                "{choice}: {want} not in {got:?}"
            );
        }
        // Inherited variables are still there.
        let path = std::env::var("PATH").expect("PATH is set");
        assert!(got.contains(&format!("PATH={path}")), "{choice}");

        // A later value wins.
        let got = sh(choice, r#"printf %s "$PKIT_TEST_K""#)
            .env("PKIT_TEST_K", "first")
            .env("PKIT_TEST_K", "second")
            .run()
            .await
            .expect("sh");
        assert_eq!(got, "second");

        // Values need not be UTF-8.
        let out = sh(choice, r#"printf %s "$PKIT_TEST_RAW""#)
            .env("PKIT_TEST_RAW", OsStr::from_bytes(b"a\xffb"))
            .output()
            .await
            .expect("sh");
        assert_eq!(out.stdout(), b"a\xffb", "{choice}");
    }
    suite.end().await;
}

#[tokio::test]
async fn env_remove_hides_an_inherited_variable() {
    let suite = begin("env_remove_hides_an_inherited_variable").await;
    for choice in mechanisms() {
        // HOME and PATH are inherited from the test process (PATH always
        // is; HOME is added for the child when the test process lacks it).
        let base = if std::env::var_os("HOME").is_some() {
            cmd(choice, "env")
        } else {
            cmd(choice, "env").env("HOME", "/nonexistent")
        };
        let got = lines(&base.clone().output().await.expect("env"));
        assert!(
            got.iter().any(|l| l.starts_with("HOME=")),
            "{choice}: {got:?}"
        );
        let got = lines(&base.clone().env_remove("HOME").output().await.expect("env"));
        assert!(
            !got.iter().any(|l| l.starts_with("HOME=")),
            "{choice}: {got:?}"
        );
        assert!(
            got.iter().any(|l| l.starts_with("PATH=")),
            "{choice}: {got:?}"
        );

        // Without PATH, `env` is still found on the default search path.
        let got = lines(&base.env_remove("PATH").output().await.expect("env"));
        assert!(
            !got.iter().any(|l| l.starts_with("PATH=")),
            "{choice}: {got:?}"
        );

        // Removing, then setting again, sets.
        let got = cmd(choice, "env")
            .env_remove("PKIT_TEST_X")
            .env("PKIT_TEST_X", "back")
            .run()
            .await
            .expect("env");
        assert!(got.lines().any(|l| l == "PKIT_TEST_X=back"), "{choice}");
    }
    suite.end().await;
}

#[tokio::test]
async fn env_clear_leaves_only_what_is_set() {
    let suite = begin("env_clear_leaves_only_what_is_set").await;
    for choice in mechanisms() {
        // PATH is gone, so `env` is found on the default search path.
        let out = cmd(choice, "env")
            .env_clear()
            .env("ONLY", "1")
            .output()
            .await
            .expect("env");
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(out.stdout_str(), "ONLY=1\n", "{choice}");

        // Variables set before env_clear are kept too; removals are moot.
        let out = cmd(choice, "env")
            .env("BEFORE", "b")
            .env_remove("HOME")
            .env_clear()
            .env("AFTER", "a")
            .output()
            .await
            .expect("env");
        let mut got = lines(&out);
        got.sort();
        assert_eq!(got, ["AFTER=a", "BEFORE=b"], "{choice}");

        // Nothing at all.
        let out = cmd(choice, "env").env_clear().output().await.expect("env");
        assert!(
            out.success() && out.stdout().is_empty(),
            "{choice}: {out:?}"
        );
    }
    suite.end().await;
}

#[tokio::test]
async fn current_dir_sets_the_working_directory() {
    let suite = begin("current_dir_sets_the_working_directory").await;
    for choice in mechanisms() {
        let dir = TempPath::new("cwd");
        std::fs::create_dir(dir.path()).expect("mkdir");
        let want = dir.path().canonicalize().expect("canonical");
        let c = cmd(choice, "pwd").arg("-P").current_dir(dir.path());
        assert_eq!(c.get_current_dir(), Some(dir.path()));
        let got = c.run().await.expect("pwd");
        assert_eq!(got, want.to_str().unwrap(), "{choice}");

        // A relative program path is taken relative to our working
        // directory, not the child's (see tests/program_path.rs).
        let script = dir.path().join("hello.sh");
        write_file_externally(&script, "#!/bin/sh\necho hello from \"$(pwd -P)\"\n", 0o755);
        let err = cmd(choice, "./hello.sh")
            .current_dir(dir.path())
            .run()
            .await
            .expect_err("./hello.sh is not in our directory");
        assert!(err.is_not_found(), "{choice}: {err}");

        // Without current_dir, the child starts in ours.
        let ours = std::env::current_dir().unwrap().canonicalize().unwrap();
        let got = cmd(choice, "pwd").arg("-P").run().await.expect("pwd");
        assert_eq!(got, ours.to_str().unwrap(), "{choice}");
    }
    suite.end().await;
}

/// `env_remove` of an inherited variable named with a leading `=` (a raw
/// environ entry `=LEAD=1`, which `std::env::vars_os` names `=LEAD`) hides
/// it, as `std::process::Command::env_remove` does. Before: the name was
/// checked as one to set, and the spawn failed with InvalidInput. The test
/// process can't give itself such a variable (`set_var` refuses the name),
/// so it runs itself again with one (`equals_name_helper`).
#[test]
fn env_remove_hides_an_inherited_variable_named_with_a_leading_equals_sign() {
    in_suite(
        "env_remove_hides_an_inherited_variable_named_with_a_leading_equals_sign",
        || {
            let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args([
                    "equals_name_helper",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("=LEAD", "1")
                .env("PKIT_TEST_EQUALS_HELPER", "1")
                .output()
                .expect("helper");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{text}");
            assert!(text.contains("equals-helper-ran"), "{text}");
        },
    );
}

/// The helper of the test above: does nothing unless
/// `PKIT_TEST_EQUALS_HELPER` is set.
#[tokio::test]
async fn equals_name_helper() {
    if std::env::var_os("PKIT_TEST_EQUALS_HELPER").is_none() {
        return;
    }
    for choice in mechanisms() {
        let env0 = |c: pkit::Command| c.arg("-0");
        let has = |out: &pkit::Output| out.stdout().split(|&b| b == 0).any(|e| e == b"=LEAD=1");
        let out = env0(cmd(choice, "env")).output().await.expect("env");
        assert!(has(&out), "{choice}: not inherited");
        let out = env0(cmd(choice, "env").env_remove("=LEAD"))
            .output()
            .await
            .expect("env_remove of a name with a leading '='");
        assert!(!has(&out), "{choice}: not removed");
    }
    println!("equals-helper-ran");
}

/// The environment copy (one buffer for every `NAME=value`, issue 20)
/// with what could trip it: thousands of inherited variables, a long value,
/// empty values, names and values that are not UTF-8, and the changes a
/// command makes to such an environment (an inherited variable overridden
/// in place, one removed, a removal of one that is absent, new ones, empty
/// or not UTF-8). The test process can't give itself those variables
/// (tests run concurrently and only read the environment), so it runs
/// itself again with them (`odd_environment_helper`).
#[test]
fn an_odd_and_large_inherited_environment_arrives_whole() {
    in_suite(
        "an_odd_and_large_inherited_environment_arrives_whole",
        || {
            let mut child =
                std::process::Command::new(std::env::current_exe().expect("test binary"));
            child
                .args([
                    "odd_environment_helper",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("PKIT_TEST_ODD_HELPER", "1")
                .env("PKIT_ODD_EMPTY", "")
                .env(OsStr::from_bytes(b"PKIT_ODD_\xff\xfe"), "name not UTF-8")
                .env("PKIT_ODD_RAW", OsStr::from_bytes(b"\x80value\xc3("))
                .env("PKIT_ODD_LONG", "x".repeat(64 * 1024))
                .env("PKIT_ODD_OVERRIDE", "inherited");
            for i in 0..3000 {
                child.env(
                    format!("PKIT_ODD_{i}"),
                    format!("{i}={}", "v".repeat(i % 97)),
                );
            }
            let out = child.output().expect("helper");
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{text}");
            assert!(text.contains("odd-environment-helper-ran"), "{text}");
        },
    );
}

/// The helper of the test above: does nothing unless
/// `PKIT_TEST_ODD_HELPER` is set.
#[tokio::test]
async fn odd_environment_helper() {
    if std::env::var_os("PKIT_TEST_ODD_HELPER").is_none() {
        return;
    }
    let inherited = raw_env::inherited_entries();
    assert!(inherited.len() > 3000, "{} variables", inherited.len());
    let env0 = |out: &pkit::Output| raw_env::env0_entries(out);
    for choice in mechanisms() {
        // Twice: the second copy reserves what the first one measured.
        for round in 0..2 {
            let out = cmd(choice, "env").arg("-0").output().await.expect("env");
            assert!(
                env0(&out) == inherited,
                "{choice}, run {round}: not the same"
            );
        }

        let out = cmd(choice, "env")
            .arg("-0")
            .env("PKIT_ODD_OVERRIDE", "overridden")
            .env_remove("PKIT_ODD_7")
            .env_remove("PKIT_ODD_ABSENT")
            .env("PKIT_ODD_NEW_EMPTY", "")
            .env(
                OsStr::from_bytes(b"PKIT_ODD_NEW_\xff"),
                OsStr::from_bytes(b"\xfe"),
            )
            .output()
            .await
            .expect("env");
        let got = env0(&out);
        // The inherited ones in their order: the override in its place,
        // the removed one gone; then the new ones.
        let want: Vec<Vec<u8>> = inherited
            .iter()
            .filter(|e| !e.starts_with(b"PKIT_ODD_7="))
            .map(|e| match e.starts_with(b"PKIT_ODD_OVERRIDE=") {
                true => b"PKIT_ODD_OVERRIDE=overridden".to_vec(),
                false => e.clone(),
            })
            .collect();
        assert_eq!(got.len(), want.len() + 2, "{choice}");
        assert!(got[..want.len()] == want[..], "{choice}: inherited part");
        let mut new = got[want.len()..].to_vec();
        new.sort();
        assert_eq!(
            new,
            [
                b"PKIT_ODD_NEW_EMPTY=".to_vec(),
                b"PKIT_ODD_NEW_\xff=\xfe".to_vec()
            ],
            "{choice}"
        );

        // Cleared, then only these, with the odd bytes intact.
        let out = cmd(choice, "env")
            .arg("-0")
            .env_clear()
            .env("E", "")
            .env(OsStr::from_bytes(b"\xff"), OsStr::from_bytes(b"\x80=\x81"))
            .output()
            .await
            .expect("env");
        let mut got = env0(&out);
        got.sort();
        assert_eq!(
            got,
            [b"E=".to_vec(), b"\xff=\x80=\x81".to_vec()],
            "{choice}"
        );
    }
    println!("odd-environment-helper-ran");
}

/// Entries of the inherited environment that are not plain `NAME=value`
/// variables reach the child as `std::env::vars_os` reads them (what pkit
/// passed on when it copied the environment through `vars_os`, before it
/// read `environ` directly, issue 20): an entry without `=`, an empty one
/// and a lone `=` are left out; a repeated name is passed on every time,
/// in place; a name starting with `=` (`=N=v`, and `==`: `=` set to
/// nothing) is kept. A command's override or removal meets every copy of
/// a repeated name. No `Command` can give the test process such entries,
/// so it runs itself again through a raw `execve`
/// (`malformed_environment_helper`).
#[test]
fn malformed_and_repeated_inherited_entries_arrive_as_vars_os_reads_them() {
    in_suite(
        "malformed_and_repeated_inherited_entries_arrive_as_vars_os_reads_them",
        || {
            let envp = raw_env::odd_environment([], b"PKIT_TEST_MALFORMED_HELPER=1");
            raw_env::run_self_with_env(
                "malformed_environment_helper",
                envp,
                "malformed-helper-ran",
            );
        },
    );
}

/// The helper of the test above: does nothing unless
/// `PKIT_TEST_MALFORMED_HELPER` is set.
#[tokio::test]
async fn malformed_environment_helper() {
    if std::env::var_os("PKIT_TEST_MALFORMED_HELPER").is_none() {
        return;
    }
    let inherited = raw_env::inherited_entries();
    // What vars_os reads (so what the child must get).
    let has = |e: &[u8]| inherited.iter().any(|i| i == e);
    assert!(has(b"=PKIT_LEAD=x=y") && has(b"==") && has(b"PKIT_EQ_EMPTY="));
    assert!(!has(b"PKIT_MALFORMED_NO_EQUALS") && !has(b"") && !has(b"="));
    let dups = |env: &[Vec<u8>]| -> Vec<Vec<u8>> {
        env.iter()
            .filter(|e| e.starts_with(b"PKIT_DUP="))
            .cloned()
            .collect()
    };
    assert_eq!(
        dups(&inherited),
        [&b"PKIT_DUP=first"[..], b"PKIT_DUP=second", b"PKIT_DUP="]
    );
    let env0 = |out: &pkit::Output| raw_env::env0_entries(out);
    let show = |e: &[Vec<u8>]| -> Vec<String> {
        e.iter()
            .map(|e| String::from_utf8_lossy(e).into())
            .collect()
    };
    for choice in mechanisms() {
        let out = cmd(choice, "env").arg("-0").output().await.expect("env");
        let got = env0(&out);
        assert_eq!(show(&got), show(&inherited), "{choice}: inherited");

        // An override replaces every copy, in its place.
        let out = cmd(choice, "env")
            .arg("-0")
            .env("PKIT_DUP", "over")
            .output()
            .await
            .expect("env");
        let want: Vec<Vec<u8>> = inherited
            .iter()
            .map(|e| match e.starts_with(b"PKIT_DUP=") {
                true => b"PKIT_DUP=over".to_vec(),
                false => e.clone(),
            })
            .collect();
        assert_eq!(show(&env0(&out)), show(&want), "{choice}: override");

        // A removal removes every copy.
        let out = cmd(choice, "env")
            .arg("-0")
            .env_remove("PKIT_DUP")
            .output()
            .await
            .expect("env");
        let want: Vec<Vec<u8>> = inherited
            .iter()
            .filter(|e| !e.starts_with(b"PKIT_DUP="))
            .cloned()
            .collect();
        assert_eq!(show(&env0(&out)), show(&want), "{choice}: removal");

        // All at once, an allow-list, a cleared one (blocking runs).
        let all = inherited.clone();
        std::thread::spawn(move || raw_env::check_changes(choice, &all))
            .join()
            .expect("changes as expected");
    }
    println!("malformed-helper-ran");
}
