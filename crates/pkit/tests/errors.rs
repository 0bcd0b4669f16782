//! Typed errors for what can't be started, with messages that name the
//! program but never contain the arguments, an environment value (PATH
//! included) or the working directory.

mod common;

use common::*;
use pkit::{Error, ErrorKind};

/// Asserts that neither the message nor the debug form of `err` contains
/// the secret argument.
fn assert_no_secret(err: &Error) {
    let (display, debug) = (err.to_string(), format!("{err:?}"));
    assert!(!display.contains("SECRET"), "{display}");
    assert!(!debug.contains("SECRET"), "{debug}");
}

/// Runs `c` through every verb and returns the errors (all must fail).
async fn errors_of_every_verb(c: &pkit::Command) -> Vec<Error> {
    vec![
        c.output().await.map(|_| ()).unwrap_err(),
        c.run().await.map(|_| ()).unwrap_err(),
        c.exit_code().await.map(|_| ()).unwrap_err(),
        c.probe().await.map(|_| ()).unwrap_err(),
    ]
}

#[tokio::test]
async fn a_program_not_on_path_is_not_found() {
    let suite = begin("a_program_not_on_path_is_not_found").await;
    let path = std::env::var("PATH").expect("PATH is set");
    for choice in mechanisms() {
        let c = cmd(choice, "pkit-no-such-program").arg("SECRET-ARG");
        for err in errors_of_every_verb(&c).await {
            assert!(err.is_not_found(), "{choice}: {err:?}");
            assert_eq!(err.kind(), ErrorKind::NotFound);
            assert!(err.output().is_none());
            let msg = err.to_string();
            assert!(msg.starts_with("pkit-no-such-program: "), "{msg}");
            // The variable is named, its value is not (in the message or
            // the debug form).
            assert!(msg.contains("PATH"), "{msg}");
            assert!(!msg.contains(&path), "{msg}");
            assert!(!format!("{err:?}").contains(&path), "{err:?}");
            assert_no_secret(&err);
            match &err {
                Error::NotFound {
                    program,
                    path_searched,
                } => {
                    assert_eq!(program, "pkit-no-such-program");
                    assert!(path_searched);
                }
                other => panic!("{other:?}"),
            }
        }

        // The command's own PATH is the one searched (and not reported).
        let err = cmd(choice, "sh")
            .env("PATH", "/pkit-nonexistent-a:/SECRET-DIR")
            .arg("SECRET-ARG")
            .output()
            .await
            .expect_err("not on that PATH");
        assert!(err.is_not_found(), "{choice}: {err:?}");
        assert!(err.to_string().contains("PATH"), "{err}");
        assert!(!err.to_string().contains("pkit-nonexistent-a"), "{err}");
        assert_no_secret(&err);
    }
    suite.end().await;
}

#[tokio::test]
async fn a_missing_path_is_not_found() {
    let suite = begin("a_missing_path_is_not_found").await;
    for choice in mechanisms() {
        let missing = TempPath::new("missing-program");
        let program = missing.as_str().to_owned();
        let err = cmd(choice, &program)
            .arg("SECRET-ARG")
            .output()
            .await
            .expect_err("missing");
        assert!(err.is_not_found(), "{choice}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&program), "{msg}");
        assert!(
            !msg.contains("PATH"),
            "no PATH is searched for a path: {msg}"
        );
        assert!(
            matches!(
                err,
                Error::NotFound {
                    path_searched: false,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_no_secret(&err);

        // A path that can't be followed to a file: under a regular file
        // (ENOTDIR), through a symbolic link that points at itself (ELOOP).
        let dir = TempPath::new("unreachable");
        std::fs::create_dir(dir.path()).expect("mkdir");
        let file = dir.path().join("file");
        std::fs::write(&file, "").expect("write");
        let looped = dir.path().join("loop");
        std::os::unix::fs::symlink(&looped, &looped).expect("symlink");
        for path in [file.join("program"), looped.clone()] {
            let program = path.to_str().unwrap().to_owned();
            let err = cmd(choice, &program)
                .output()
                .await
                .expect_err("unreachable");
            assert!(
                matches!(&err, Error::NotFound { path_searched: false, program: p } if *p == program),
                "{choice}: {program}: {err:?}"
            );
        }
        // The program is there but its interpreter's path loops: not
        // missing, a start that failed with the errno (ELOOP).
        let script = dir.path().join("script");
        std::fs::write(&script, format!("#!{}\n", looped.display())).expect("write");
        let mut perms = std::fs::metadata(&script).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).expect("chmod");
        let err = cmd(choice, script.to_str().unwrap())
            .output()
            .await
            .expect_err("interpreter loops");
        assert!(
            matches!(&err, Error::Spawn { source, .. } if source.raw_os_error() == Some(libc::ELOOP)),
            "{choice}: {err:?}"
        );

        // A relative path in a directory that lacks it.
        let err = cmd(choice, "./pkit-no-such-program")
            .current_dir("/")
            .output()
            .await
            .expect_err("missing");
        assert!(err.is_not_found(), "{choice}: {err:?}");
    }
    suite.end().await;
}

#[tokio::test]
async fn what_cannot_be_executed_is_not_executable() {
    let suite = begin("what_cannot_be_executed_is_not_executable").await;
    for choice in mechanisms() {
        let dir = TempPath::new("noexec");
        std::fs::create_dir(dir.path()).expect("mkdir");

        // A file without any exec bit, given as a path (root included:
        // root may execute a file only if some exec bit is set).
        let file = dir.path().join("not-executable");
        std::fs::write(&file, "#!/bin/sh\necho SECRET-RAN\n").expect("write");
        let name = file.to_str().unwrap().to_owned();
        let err = cmd(choice, &name)
            .arg("SECRET-ARG")
            .output()
            .await
            .expect_err("no exec bit");
        assert_eq!(err.kind(), ErrorKind::NotExecutable, "{choice}: {err:?}");
        assert!(err.to_string().contains(&name), "{err}");
        assert_no_secret(&err);
        match &err {
            Error::NotExecutable { program, path } => {
                assert_eq!(program, &name);
                assert_eq!(path, &file);
            }
            other => panic!("{other:?}"),
        }

        // The same file found on PATH.
        let err = cmd(choice, "not-executable")
            .env("PATH", dir.path())
            .output()
            .await
            .expect_err("no exec bit");
        assert_eq!(err.kind(), ErrorKind::NotExecutable, "{choice}: {err:?}");
        assert!(err.to_string().starts_with("not-executable: "), "{err}");

        // A directory given as a path.
        let err = cmd(choice, dir.as_str())
            .output()
            .await
            .expect_err("a directory");
        assert_eq!(err.kind(), ErrorKind::NotExecutable, "{choice}: {err:?}");

        // Executable bits but no valid format: refused by execve itself.
        let garbage = dir.path().join("garbage");
        write_file_externally(&garbage, "\u{1}\u{2}\u{3} this is no program\n", 0o755);
        let err = cmd(choice, garbage.to_str().unwrap())
            .arg("SECRET-ARG")
            .output()
            .await
            .expect_err("bad format");
        assert_eq!(err.kind(), ErrorKind::NotExecutable, "{choice}: {err:?}");
        assert_no_secret(&err);
    }
    suite.end().await;
}

#[tokio::test]
async fn an_unusable_working_directory_is_typed_and_not_echoed() {
    let suite = begin("an_unusable_working_directory_is_typed_and_not_echoed").await;
    for choice in mechanisms() {
        let missing = TempPath::new("missing-dir");
        let err = cmd(choice, "pwd")
            .arg("SECRET-ARG")
            .current_dir(missing.path())
            .output()
            .await
            .expect_err("missing dir");
        assert_eq!(err.kind(), ErrorKind::CurrentDir, "{choice}: {err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("pwd: "), "{msg}");
        // Messages never carry working directories: the caller has it.
        assert!(!msg.contains(missing.as_str()), "{msg}");
        assert!(msg.contains("working directory"), "{msg}");
        assert_no_secret(&err);
        match &err {
            Error::CurrentDir { program, dir, .. } => {
                assert_eq!(program, "pwd");
                assert_eq!(dir, missing.path());
            }
            other => panic!("{other:?}"),
        }

        // A file is not a directory.
        std::fs::write(missing.path(), "").expect("write");
        let err = cmd(choice, "pwd")
            .current_dir(missing.path())
            .run()
            .await
            .expect_err("a file");
        assert_eq!(err.kind(), ErrorKind::CurrentDir, "{choice}: {err:?}");
        assert!(!err.to_string().contains(missing.as_str()), "{err}");
    }
    suite.end().await;
}

#[tokio::test]
async fn invalid_input_is_refused_without_echoing_it() {
    let suite = begin("invalid_input_is_refused_without_echoing_it").await;
    for choice in mechanisms() {
        let err = cmd(choice, "echo")
            .arg("SECRET-ARG\0tail")
            .output()
            .await
            .expect_err("NUL in an argument");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}: {err:?}");
        assert_no_secret(&err);

        let err = cmd(choice, "env")
            .env("PKIT_TEST", "SECRET-VALUE\0")
            .output()
            .await
            .expect_err("NUL in a value");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}: {err:?}");
        assert_no_secret(&err);

        let err = cmd(choice, "env")
            .env("PKIT=SECRET", "x")
            .output()
            .await
            .expect_err("= in a name");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}: {err:?}");
        assert_no_secret(&err);

        let err = cmd(choice, "").output().await.expect_err("empty program");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}: {err:?}");
    }
    suite.end().await;
}

/// A NUL byte in the working directory is the caller's string no OS can
/// take, as one in the program, an argument or a variable: invalid input
/// (it was `CurrentDir`, whose source said `InvalidInput`), through every
/// verb, `start` and a pipeline's stage, without echoing the directory.
#[tokio::test]
async fn a_nul_in_the_working_directory_is_invalid_input_as_the_other_strings() {
    let suite = begin("a_nul_in_the_working_directory_is_invalid_input_as_the_other_strings").await;
    for choice in mechanisms() {
        let c = cmd(choice, "pwd").current_dir("/tmp/SECRET-DIR\0x");
        let mut errs = errors_of_every_verb(&c).await;
        errs.push(group(choice).start(&c).map(drop).expect_err("start"));
        for err in &errs {
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}: {err:?}");
            assert!(
                err.to_string()
                    .contains("the working directory contains a NUL byte"),
                "{choice}: {err}"
            );
            assert_no_secret(err);
        }
        let err = pkit::Pipe::new([cmd(choice, "true"), c.clone()])
            .mechanism(choice)
            .output()
            .await
            .expect_err("a stage");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}: {err:?}");
        assert!(err.to_string().contains("pipeline stage 2 ("), "{err}");
        assert_no_secret(&err);
    }
    suite.end().await;
}

#[tokio::test]
async fn failures_to_start_leave_nothing_behind() {
    let suite = begin("failures_to_start_leave_nothing_behind").await;
    for choice in mechanisms() {
        // Each failed start still created a group, which must be removed
        // (checked by `end`).
        for _ in 0..10 {
            let _ = cmd(choice, "pkit-no-such-program").output().await;
            let _ = cmd(choice, "true")
                .current_dir("/pkit-nonexistent")
                .output()
                .await;
        }
    }
    suite.end().await;
}
