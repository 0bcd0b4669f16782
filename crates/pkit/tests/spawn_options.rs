//! Spawn options observed from inside the child (its own `/proc/self`
//! files, `umask`, `ulimit`), in every mechanism (on the portable backend
//! through its trampoline, `PKIT_MECHANISM=portable`): privilege drop, umask,
//! resource limits, priority, a new session, descriptors passed through,
//! and each failing step reported as that step.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use common::*;
use pkit::{ChildStep, Error, ErrorKind, IoClass, Mechanism, MechanismChoice, Resource};

/// The value of a `/proc/self/status` line (`Uid:` ...), whitespace-split.
fn status_field(text: &str, key: &str) -> Vec<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

/// The pid and the numeric fields of `/proc/self/stat` after the state
/// (index 0 is ppid, field 4 in proc(5)).
fn stat_fields(text: &str) -> (u32, Vec<i128>) {
    let pid = text.split_whitespace().next().unwrap().parse().unwrap();
    let rest = &text[text.rfind(')').unwrap() + 2..];
    let fields = rest
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap())
        .collect();
    (pid, fields)
}

#[tokio::test]
async fn the_child_drops_to_nobody_in_order() {
    let suite = begin("the_child_drops_to_nobody_in_order").await;
    for choice in mechanisms() {
        let dir = TempPath::new("nobody");
        std::fs::create_dir(dir.path()).unwrap();
        // A directory anyone may write to, so the dropped child can.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        let file = dir.path().join("written-by-nobody");
        let out = sh(
            choice,
            "grep -E '^(Uid|Gid|Groups):' /proc/self/status; echo x > \"$1\"",
        )
        .arg(&file)
        .uid(65534)
        .gid(65534)
        .groups([65534, 100])
        .output()
        .await
        .expect("output");
        assert!(out.success(), "{choice}: {out:?} {}", out.stderr_str());
        let text = out.stdout_str();
        assert_eq!(status_field(&text, "Uid:"), [65534; 4], "{choice}: {text}");
        assert_eq!(status_field(&text, "Gid:"), [65534; 4], "{choice}: {text}");
        let mut groups = status_field(&text, "Groups:");
        groups.sort();
        assert_eq!(groups, [100, 65534], "{choice}: {text}");
        let meta = std::fs::metadata(&file).expect("the child wrote the file");
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&meta),
            65534,
            "{choice}"
        );
        assert_eq!(
            std::os::unix::fs::MetadataExt::gid(&meta),
            65534,
            "{choice}"
        );

        // A uid alone clears the owner's supplementary groups.
        let out = cmd(choice, "cat")
            .arg("/proc/self/status")
            .uid(65534)
            .output()
            .await
            .expect("output");
        let text = out.stdout_str();
        assert_eq!(status_field(&text, "Uid:"), [65534; 4], "{choice}");
        assert_eq!(
            status_field(&text, "Groups:"),
            Vec::<u32>::new(),
            "{choice}"
        );

        // The working directory is entered with the child's rights: one
        // only root may enter is refused to nobody, another is entered.
        let private = TempPath::new("private");
        std::fs::create_dir(private.path()).unwrap();
        std::fs::set_permissions(
            private.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let err = cmd(choice, "pwd")
            .current_dir(private.path())
            .uid(65534)
            .output()
            .await
            .expect_err("entered as nobody");
        assert!(matches!(err, Error::CurrentDir { .. }), "{choice}: {err:?}");
        let out = cmd(choice, "pwd")
            .current_dir(dir.path())
            .uid(65534)
            .output()
            .await
            .expect("pwd as nobody");
        assert_eq!(out.stdout_str().trim(), dir.as_str(), "{choice}");
        std::fs::remove_dir(private.path()).unwrap();
        std::fs::remove_file(&file).unwrap();
        std::fs::remove_dir(dir.path()).unwrap();
    }
    suite.end().await;
}

#[tokio::test]
async fn umask_limits_and_priority_reach_the_child() {
    let suite = begin("umask_limits_and_priority_reach_the_child").await;
    for choice in mechanisms() {
        let out = sh(choice, "umask")
            .umask(0o027)
            .output()
            .await
            .expect("umask");
        assert_eq!(out.stdout_str().trim(), "0027", "{choice}");

        let out = sh(choice, "ulimit -n; ulimit -Hn; ulimit -c")
            .rlimit(Resource::Nofile, 100, 200)
            .rlimit(Resource::Core, 0, 0)
            .output()
            .await
            .expect("ulimit");
        assert_eq!(out.stdout_str(), "100\n200\n0\n", "{choice}");

        // Absolute nice values, lower than ours too (we are root), and
        // applied before a privilege drop.
        for nice in [7, -3] {
            let out = cmd(choice, "cat")
                .arg("/proc/self/stat")
                .priority(nice)
                .uid(65534)
                .output()
                .await
                .expect("stat");
            let (_, fields) = stat_fields(&out.stdout_str());
            assert_eq!(fields[15], nice as i128, "{choice}: nice field");
        }
    }
    suite.end().await;
}

/// A descriptor limit that leaves the child only its stdio and one more
/// (`NOFILE` 4:4, as `prlimit --nofile=4` lets `true` run): the program
/// runs with it in every mechanism. The portable backend's trampoline made
/// its exec report pipe after applying the limit, so every such start
/// failed there ("cannot start: Too many open files", soft 5 or less).
#[tokio::test]
async fn a_descriptor_limit_of_four_still_starts_the_program() {
    let suite = begin("a_descriptor_limit_of_four_still_starts_the_program").await;
    for choice in mechanisms() {
        for n in [4, 5] {
            let out = sh(choice, "ulimit -n; ulimit -Hn")
                .rlimit(Resource::Nofile, n, n)
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice} {n}: {e}"));
            assert_eq!(out.stdout_str(), format!("{n}\n{n}\n"), "{choice} {n}");
        }
    }
    suite.end().await;
}

#[tokio::test]
async fn a_new_session_under_cgroups_and_a_refusal_under_process_groups() {
    let suite = begin("a_new_session_under_cgroups_and_a_refusal_under_process_groups").await;
    let (_, mine) = stat_fields(&std::fs::read_to_string("/proc/self/stat").unwrap());
    for choice in mechanisms() {
        let result = cmd(choice, "cat")
            .arg("/proc/self/stat")
            .setsid()
            .output()
            .await;
        match choice {
            MechanismChoice::ProcessGroup | MechanismChoice::Portable => {
                let err = result.expect_err("setsid would leave the process group");
                assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
                assert!(
                    matches!(
                        &err,
                        Error::Unsupported {
                            operation: "setsid",
                            mechanism: Mechanism::ProcessGroup,
                            ..
                        }
                    ),
                    "{err:?}"
                );
                // And a started process is refused the same way.
                let group = group(choice);
                let err = group
                    .start(&pkit::Command::new("true").setsid())
                    .expect_err("refused");
                assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
            }
            _ => {
                let out = result.expect("setsid");
                let (pid, fields) = stat_fields(&out.stdout_str());
                // Session and process group are the child's own pid.
                assert_eq!(fields[2], pid as i128, "{choice}: session");
                assert_eq!(fields[1], pid as i128, "{choice}: pgrp");
                assert_ne!(fields[2], mine[2], "{choice}: not our session");
                // Still contained: it is in the group's cgroup and dies
                // with the group.
                let group = group(choice);
                let p = group
                    .start(&pkit::Command::new("sleep").arg("300").setsid())
                    .expect("start");
                let dir = cgroup_dir(&group).expect("a cgroup");
                assert!(cgroup_procs(&dir).contains(&p.pid()), "{choice}");
                assert_eq!(stat(p.pid()).unwrap().session, p.pid());
                group.kill().expect("kill");
                assert_gone(&[p.pid()], "setsid child after kill").await;
            }
        }
    }
    suite.end().await;
}

/// A pipe (read end, write end), close-on-exec.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, which we own.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

#[tokio::test]
async fn kept_descriptors_are_readable_in_the_child() {
    let suite = begin("kept_descriptors_are_readable_in_the_child").await;
    for choice in mechanisms() {
        let (r, w) = pipe();
        let (r2, w2) = pipe();
        std::fs::write(format!("/proc/self/fd/{}", w.as_raw_fd()), "hello").unwrap();
        std::fs::write(format!("/proc/self/fd/{}", w2.as_raw_fd()), "world").unwrap();
        drop((w, w2));
        // Two descriptors, one placed on the other's number: no dup2
        // overwrites a source still to be used.
        let out = sh(
            choice,
            "cat <&7; cat <&9; ls /proc/self/fd | sort -n | tr '\\n' ' '",
        )
        .keep_fds([(r.as_raw_fd(), 7), (r2.as_raw_fd(), 9)])
        .keep_fds([])
        .output()
        .await
        .expect("output");
        assert!(out.success(), "{choice}: {}", out.stderr_str());
        let text = out.stdout_str();
        assert!(text.starts_with("helloworld"), "{choice}: {text}");
        // Nothing else leaks in: 0-2, the two kept, and ls's own dir fd.
        let fds: Vec<u32> = text["helloworld".len()..]
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        let extra: Vec<&u32> = fds
            .iter()
            .filter(|f| ![0, 1, 2, 7, 9].contains(*f))
            .collect();
        assert!(extra.len() <= 1, "{choice}: fds {fds:?}");

        // Bad pairs are refused before anything is spawned.
        let err = cmd(choice, "true")
            .keep_fds([(r.as_raw_fd(), 1)])
            .output()
            .await
            .expect_err("stdio number");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let err = cmd(choice, "true")
            .keep_fds([(r.as_raw_fd(), 7), (r2.as_raw_fd(), 7)])
            .output()
            .await
            .expect_err("twice");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        drop(r2);
        // A number no descriptor has (others may reuse a closed one).
        let err = cmd(choice, "true")
            .keep_fds([(999_999, 7)])
            .output()
            .await
            .expect_err("closed");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(
            err.to_string()
                .contains("descriptor 999999 is not open in this process"),
            "{err}"
        );
    }
    suite.end().await;
}

/// A kept descriptor's number at or above the soft `nofile` limit given
/// with `rlimit` (the child sets its limits first, and `dup2` can't place
/// a descriptor there) is refused before anything is spawned, as invalid
/// input naming both numbers, not as the child's failed `KeepFds` step
/// (`ChildSetup`, EBADF) after the fork. One below the limit is placed and
/// read.
#[tokio::test]
async fn a_kept_descriptor_at_or_above_the_nofile_limit_is_refused_before_the_start() {
    let suite =
        begin("a_kept_descriptor_at_or_above_the_nofile_limit_is_refused_before_the_start").await;
    for choice in mechanisms() {
        let (r, w) = pipe();
        std::fs::write(format!("/proc/self/fd/{}", w.as_raw_fd()), "kept").unwrap();
        drop(w);
        for (target, soft, hard) in [(40, 16, 64), (10, 10, 10)] {
            let err = cmd(choice, "true")
                .rlimit(Resource::Nofile, soft, hard)
                .keep_fds([(r.as_raw_fd(), target)])
                .output()
                .await
                .expect_err("a target at or above the limit");
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}: {err:?}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("child descriptor {target} "))
                    && text.contains(&format!("nofile limit {soft} ")),
                "{choice}: {text}"
            );
        }
        // Given in the other order (the limit after the descriptor), and
        // through `start`: the same refusal.
        let err = group(choice)
            .start(&cmd(choice, "true").keep_fds([(r.as_raw_fd(), 20)]).rlimit(
                Resource::Nofile,
                8,
                8,
            ))
            .map(drop)
            .expect_err("start");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{choice}: {err:?}");
        // Just below the limit: placed and read (through /proc: sh's own
        // `<&9` would save a descriptor on 10 or above, past the limit).
        let out = sh(choice, "ulimit -n; cat /proc/self/fd/9")
            .rlimit(Resource::Nofile, 10, 10)
            .keep_fds([(r.as_raw_fd(), 9)])
            .output()
            .await
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert!(out.success(), "{choice}: {}", out.stderr_str());
        assert_eq!(out.stdout_str(), "10\nkept", "{choice}");
    }
    suite.end().await;
}

#[tokio::test]
async fn a_failing_step_is_named() {
    let suite = begin("a_failing_step_is_named").await;
    for choice in mechanisms() {
        // Above the kernel's fs.nr_open: refused even to root.
        let err = cmd(choice, "true")
            .rlimit(Resource::Nofile, 1 << 40, 1 << 40)
            .output()
            .await
            .expect_err("nr_open");
        match &err {
            Error::ChildSetup { step, source, .. } => {
                assert_eq!(*step, ChildStep::Rlimit, "{choice}");
                assert_eq!(source.raw_os_error(), Some(libc::EPERM), "{choice}");
            }
            other => panic!("{choice}: {other:?}"),
        }
        assert!(err.to_string().contains("resource limit"), "{err}");
        // More supplementary groups than the kernel allows (65536).
        let err = cmd(choice, "true")
            .groups(0..70_000)
            .output()
            .await
            .expect_err("too many groups");
        assert!(
            matches!(&err, Error::ChildSetup { step: ChildStep::Groups, source, .. }
                if source.raw_os_error() == Some(libc::EINVAL)),
            "{choice}: {err:?}"
        );
        // Checked before the spawn.
        let err = cmd(choice, "true")
            .rlimit(Resource::Nofile, 10, 5)
            .output()
            .await
            .expect_err("soft above hard");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let err = cmd(choice, "true")
            .umask(0o1000)
            .output()
            .await
            .expect_err("umask");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    assert_eq!(
        "RLIMIT_NOFILE".parse::<Resource>().unwrap(),
        Resource::Nofile
    );
    assert_eq!("as".parse::<Resource>().unwrap(), Resource::As);
    let err = "bogus".parse::<Resource>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // It says which names are taken, and each of them parses.
    let text = err.to_string();
    let named = text.split_once("(one of ").expect("lists the names").1;
    let named: Vec<&str> = named.trim_end_matches(')').split(", ").collect();
    assert_eq!(named.len(), Resource::ALL.len(), "{text}");
    for name in named {
        assert_eq!(name.parse::<Resource>().unwrap().as_str(), name, "{text}");
    }
    suite.end().await;
}

#[tokio::test]
async fn io_priority_affinity_and_arg0_reach_the_child() {
    let suite = begin("io_priority_affinity_and_arg0_reach_the_child").await;
    for choice in mechanisms() {
        let out = sh(choice, "ionice -p $$")
            .io_priority(IoClass::BestEffort, 6)
            .output()
            .await
            .expect("ionice");
        assert_eq!(out.stdout_str().trim(), "best-effort: prio 6", "{choice}");
        let out = sh(choice, "ionice -p $$")
            .io_priority(IoClass::Idle, 0)
            .output()
            .await
            .expect("ionice");
        assert_eq!(out.stdout_str().trim(), "idle", "{choice}");

        let out = cmd(choice, "grep")
            .args(["^Cpus_allowed_list:", "/proc/self/status"])
            .cpu_affinity([0])
            .output()
            .await
            .expect("affinity");
        assert_eq!(
            out.stdout_str().split_whitespace().nth(1),
            Some("0"),
            "{choice}: {}",
            out.stdout_str()
        );

        // argv[0] is the given name; the program run is still `cat`.
        let out = cmd(choice, "cat")
            .arg("/proc/self/cmdline")
            .arg0("kitty")
            .output()
            .await
            .expect("cmdline");
        assert_eq!(out.stdout(), b"kitty\0/proc/self/cmdline\0", "{choice}");

        // Refusals: before the spawn, and in the child.
        let err = cmd(choice, "true")
            .cpu_affinity([])
            .output()
            .await
            .expect_err("empty");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let err = cmd(choice, "true")
            .io_priority(IoClass::BestEffort, 8)
            .output()
            .await
            .expect_err("level");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        // A CPU this machine does not have: nothing left to run on.
        let err = cmd(choice, "true")
            .cpu_affinity([4000])
            .output()
            .await
            .expect_err("no such CPU");
        assert!(
            matches!(&err, Error::ChildSetup { step: ChildStep::CpuAffinity, source, .. }
                if source.raw_os_error() == Some(libc::EINVAL)),
            "{choice}: {err:?}"
        );
    }
    suite.end().await;
}

#[tokio::test]
async fn where_a_program_would_run_from() {
    let suite = begin("where_a_program_would_run_from").await;
    let sh = pkit::which("sh").expect("sh");
    assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
    // The command's own PATH, as a start would use it.
    let dir = TempPath::new("which");
    std::fs::create_dir(dir.path()).unwrap();
    write_file_externally(&dir.path().join("tool"), "#!/bin/sh\n", 0o755);
    let got = pkit::Command::new("tool")
        .env("PATH", dir.path())
        .resolve_program()
        .expect("on the command's PATH");
    assert_eq!(got, dir.path().join("tool"));
    let err = pkit::which("pkit-no-such-program").expect_err("missing");
    assert!(
        matches!(
            err,
            Error::NotFound {
                path_searched: true,
                ..
            }
        ),
        "{err:?}"
    );
    std::fs::remove_dir_all(dir.path()).unwrap();
    suite.end().await;
}

#[tokio::test]
async fn an_environment_allow_list_and_a_preferred_bin_dir() {
    let suite = begin("an_environment_allow_list_and_a_preferred_bin_dir").await;
    let home = std::env::var("HOME").expect("HOME is set");
    for choice in mechanisms() {
        // Only HOME of ours, plus what the command sets.
        let out = cmd(choice, "env")
            .inherit_env(["HOME"])
            .inherit_env(["PKIT_SURELY_NOT_SET_ANYWHERE"])
            .env("ADDED", "1")
            .output()
            .await
            .expect("env");
        let mut got: Vec<String> = out.stdout_str().lines().map(String::from).collect();
        got.sort();
        assert_eq!(
            got,
            ["ADDED=1".to_string(), format!("HOME={home}")],
            "{choice}"
        );
        // env_clear wins: nothing is inherited.
        let out = cmd(choice, "env")
            .inherit_env(["HOME"])
            .env_clear()
            .output()
            .await
            .expect("env");
        assert_eq!(out.stdout_str(), "", "{choice}");

        // A project bin dir searched before PATH; the child's PATH as set.
        let root = TempPath::new("prefer");
        for (dir, says) in [("local", "local"), ("path", "path")] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
            write_file_externally(
                &root.path().join(dir).join("tool"),
                &format!("#!/bin/sh\necho {says} \"$PATH\"\n"),
                0o755,
            );
        }
        let path = format!("{}:/usr/bin:/bin", root.path().join("path").display());
        let plain = cmd(choice, "tool").env("PATH", &path);
        assert_eq!(plain.run().await.expect("tool"), format!("path {path}"));
        let preferred = cmd(choice, "tool").prefer_local(root.path().join("local"));
        assert_eq!(
            preferred
                .clone()
                .env("PATH", &path)
                .resolve_program()
                .unwrap(),
            root.path().join("local/tool")
        );
        let preferred = preferred.env("PATH", &path);
        assert_eq!(
            preferred.run().await.expect("tool"),
            format!("local {path}"),
            "{choice}"
        );
        // A path with a slash is not searched for.
        let err = cmd(choice, "./tool")
            .prefer_local(root.path().join("local"))
            .output()
            .await
            .expect_err("not in our directory");
        assert!(err.is_not_found(), "{err}");
        std::fs::remove_dir_all(root.path()).unwrap();
    }
    suite.end().await;
}

#[tokio::test]
async fn pre_exec_hooks_run_in_the_contained_child() {
    let suite = begin("pre_exec_hooks_run_in_the_contained_child").await;
    for choice in mechanisms() {
        if skip_on_portable(choice, "pre_exec hooks can't cross the exec of the portable backend's trampoline (refused as Unsupported: tests/portable.rs)") {
            continue;
        }
        // SAFETY: the hooks make one raw write each (async-signal-safe).
        let c = unsafe {
            sh(choice, "echo program")
                .pre_exec(|| {
                    libc::write(1, b"first\n".as_ptr().cast(), 6);
                    Ok(())
                })
                .pre_exec(|| {
                    libc::write(1, b"second\n".as_ptr().cast(), 7);
                    Ok(())
                })
        };
        let out = c.output().await.expect("output");
        // Written by the child into its own stdout: the captured pipe.
        assert_eq!(out.stdout_str(), "first\nsecond\nprogram\n", "{choice}");

        // A failing hook names the step and keeps its errno.
        // SAFETY: the hook only returns an error.
        let c = unsafe {
            cmd(choice, "true").pre_exec(|| Err(std::io::Error::from_raw_os_error(libc::EDOM)))
        };
        let err = c.output().await.expect_err("the hook fails");
        assert!(
            matches!(&err, Error::ChildSetup { step: ChildStep::PreExec, source, .. }
                if source.raw_os_error() == Some(libc::EDOM)),
            "{choice}: {err:?}"
        );
        // A failure before the hook is reported the same way.
        let err = unsafe { cmd(choice, "true").pre_exec(|| Ok(())) }
            .rlimit(Resource::Nofile, 1 << 40, 1 << 40)
            .output()
            .await
            .expect_err("nr_open");
        assert!(
            matches!(
                &err,
                Error::ChildSetup {
                    step: ChildStep::Rlimit,
                    ..
                }
            ),
            "{choice}: {err:?}"
        );
        let err = unsafe { cmd(choice, "/nonexistent-pkit/program").pre_exec(|| Ok(())) }
            .output()
            .await
            .expect_err("missing");
        assert!(err.is_not_found(), "{choice}: {err:?}");

        // The forked child is in its container, with its options.
        let group = group(choice);
        let p = group
            .start(&unsafe { pkit::Command::new("sleep").arg("300").pre_exec(|| Ok(())) })
            .expect("start");
        match cgroup_dir(&group) {
            Some(dir) => assert!(cgroup_procs(&dir).contains(&p.pid()), "{choice}"),
            None => assert_eq!(stat(p.pid()).unwrap().pgrp, p.pid(), "{choice}: leader"),
        }
        group.kill().expect("kill");
        assert_gone(&[p.pid()], "pre_exec child after kill").await;
    }
    suite.end().await;
}

#[tokio::test]
async fn output_straight_to_files_and_stderr_merged_in_order() {
    use pkit::FileMode;
    let suite = begin("output_straight_to_files_and_stderr_merged_in_order").await;
    const SCRIPT: &str = "for i in 1 2 3; do echo out$i; echo err$i >&2; done";
    for choice in mechanisms() {
        // 2>&1 into the captured pipe: one stream, in the child's order.
        let out = sh(choice, SCRIPT)
            .merge_stderr()
            .output()
            .await
            .expect("merged");
        assert_eq!(
            out.stdout_str(),
            "out1\nerr1\nout2\nerr2\nout3\nerr3\n",
            "{choice}"
        );
        assert_eq!(out.stderr(), b"", "{choice}");

        // Files: the child writes them itself, nothing reaches us.
        let dir = TempPath::new("files");
        std::fs::create_dir(dir.path()).unwrap();
        let (o, e) = (dir.path().join("out"), dir.path().join("err"));
        for _ in 0..2 {
            let out = sh(choice, SCRIPT)
                .stdout_file(&o, FileMode::Truncate)
                .stderr_file(&e, FileMode::Append)
                .output()
                .await
                .expect("files");
            assert!(out.success(), "{choice}");
            assert_eq!(out.stdout_total_bytes(), 0, "{choice}: copied through us");
            assert_eq!(out.stderr_total_bytes(), 0, "{choice}: copied through us");
        }
        assert_eq!(std::fs::read_to_string(&o).unwrap(), "out1\nout2\nout3\n");
        assert_eq!(
            std::fs::read_to_string(&e).unwrap(),
            "err1\nerr2\nerr3\n".repeat(2),
            "{choice}: appended twice"
        );
        // Both into one file, in order.
        let both = dir.path().join("both");
        sh(choice, SCRIPT)
            .stdout_file(&both, FileMode::Truncate)
            .merge_stderr()
            .output()
            .await
            .expect("both");
        assert_eq!(
            std::fs::read_to_string(&both).unwrap(),
            "out1\nerr1\nout2\nerr2\nout3\nerr3\n",
            "{choice}"
        );
        // A file that can't be opened is an error before anything runs.
        let err = sh(choice, "echo SECRET-RAN")
            .stdout_file(dir.path().join("no/such/dir/out"), FileMode::Append)
            .output()
            .await
            .expect_err("no such directory");
        assert_eq!(err.kind(), ErrorKind::Io, "{choice}: {err}");
        std::fs::remove_dir_all(dir.path()).unwrap();

        // In a pipe, stderr goes on to the next stage.
        let out = sh(choice, "echo to-out; echo to-err >&2")
            .merge_stderr()
            .pipe(cmd(choice, "sort"))
            .output()
            .await
            .expect("pipe");
        assert_eq!(out.stdout_str(), "to-err\nto-out\n", "{choice}");
    }
    suite.end().await;
}
