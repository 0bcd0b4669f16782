//! rv47: a hostile review of the eleventh session's merges (envo's child
//! environment built straight from the inherited one, the program looked
//! up on the child's `PATH`). Run in the three passes (unset,
//! `PKIT_MECHANISM=pgroup`, `PKIT_MECHANISM=portable`). Only the helper
//! process changes its environment (`set_var`), never this one: tests run
//! concurrently.
//!
//! Findings: none new in the environment. Documented:
//! - LOW, documented (`Command::new`): a child left without `PATH`
//!   (`env_remove("PATH")`, `env_clear()`, an `inherit_env` list without
//!   it) has its program looked up on `/usr/local/bin:/usr/bin:/bin`, as
//!   `execvp` would, not on this process's `PATH`, which `Command::new`'s
//!   "else the parent's" seemed to promise
//!   ([`a_program_is_looked_up_on_the_path_its_child_gets`]).
//!
//! Probes that held (every pass): set, removed and set again of one name
//! (the last change wins, in the inherited variable's place); `env`
//! before `env_clear` kept; an `inherit_env` list naming a variable twice
//! passes it once; a name with `=`, an empty name, a NUL in a name or a
//! value are `InvalidInput` and start nothing, a removal of such a name is
//! allowed; non-UTF-8 names and values arrive byte for byte; 10,000
//! variables set arrive, in order; a command started again after its
//! parent's `set_var` gives the new value (nothing of the last start's
//! environment is kept), and the children's environments are byte for
//! byte the same by default and after `read_environment_unlocked`.
//! zsig: a close cancelled while it waits for its freeze (a member held in
//! a v1 freezer), then dropped, leaves nothing frozen, alive or behind; a
//! group frozen by hand (not `suspend`) closes.
//!
//! Read, not run: the library's `names::proc_is_own` asks, as the CLI's
//! `ProcView` did (fixed there, pkit-cli's review_rv47.rs), whether
//! `/proc/self` names this process's pid, which under another pid
//! namespace's `/proc` it may by chance. There the stale sweep still takes
//! each owner's lock before it removes anything, and a nested group not
//! recognised has its members signalled directly, as without the chance:
//! no effect found, left as it is.

#![cfg(unix)]

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use common::*;

use pkit::{Command, MechanismChoice};

/// `env -0`'s entries for `c` (a command of `env`).
async fn env0(c: Command) -> Vec<Vec<u8>> {
    let out = c.arg("-0").output().await.expect("env");
    raw_env::env0_entries(&out)
}

fn entry(k: &[u8], v: &[u8]) -> Vec<u8> {
    [k, b"=", v].concat()
}

#[tokio::test]
async fn changes_of_one_name_apply_in_order_the_last_one_wins() {
    let suite = begin("changes_of_one_name_apply_in_order_the_last_one_wins").await;
    let inherited = raw_env::inherited_entries();
    let path = std::env::var_os("PATH").expect("PATH is set");
    let path_entry = entry(b"PATH", path.as_bytes());
    for choice in mechanisms() {
        // Set, removed, set again: the last value, in PATH's place.
        let got = env0(
            cmd(choice, "env")
                .env("PATH", "/a")
                .env_remove("PATH")
                .env("PATH", path.clone()),
        )
        .await;
        assert_eq!(got, inherited, "{choice}: set, removed, set");
        // Set then removed: gone; removed then set: set.
        let got = env0(cmd(choice, "env").env("RV47_X", "1").env_remove("RV47_X")).await;
        assert_eq!(got, inherited, "{choice}: set, removed");
        let got = env0(cmd(choice, "env").env_remove("RV47_X").env("RV47_X", "2")).await;
        let mut want = inherited.clone();
        want.push(b"RV47_X=2".to_vec());
        assert_eq!(got, want, "{choice}: removed, set");
        // `env` before `env_clear` is kept (documented), after it too.
        let got = env0(
            cmd(choice, "env")
                .env("RV47_B", "before")
                .env_clear()
                .env("RV47_A", "after"),
        )
        .await;
        assert_eq!(got, [b"RV47_A=after".to_vec(), b"RV47_B=before".to_vec()]);
        // An allow-list naming PATH twice, and a name it lacks.
        let got = env0(
            cmd(choice, "env")
                .inherit_env(["PATH", "PATH", "RV47_NOT_SET"])
                .inherit_env(["PATH"]),
        )
        .await;
        assert_eq!(
            got,
            std::slice::from_ref(&path_entry),
            "{choice}: allow-list"
        );
        // An allow-list and a removal of what it allows.
        let got = env0(cmd(choice, "env").inherit_env(["PATH"]).env_remove("PATH")).await;
        assert!(got.is_empty(), "{choice}: {got:?}");
        // Non-UTF-8 name and value, byte for byte.
        let got = env0(cmd(choice, "env").env_clear().env(
            OsStr::from_bytes(b"RV47_\xff"),
            OsStr::from_bytes(b"v\xfe=\x01"),
        ))
        .await;
        assert_eq!(got, [b"RV47_\xff=v\xfe=\x01".to_vec()], "{choice}");
    }
    suite.end().await;
}

#[tokio::test]
async fn bad_names_and_nul_bytes_are_typed_errors_and_start_nothing() {
    let suite = begin("bad_names_and_nul_bytes_are_typed_errors_and_start_nothing").await;
    let marker = temp_path("rv47-started");
    let script = format!("touch {}", marker.display());
    for choice in mechanisms() {
        let bad: [(&str, Command); 6] = [
            ("'=' in a name", sh(choice, &script).env("A=B", "1")),
            ("an empty name", sh(choice, &script).env("", "1")),
            ("a lone '='", sh(choice, &script).env("=", "1")),
            ("a NUL in a name", sh(choice, &script).env("A\0B", "1")),
            ("a NUL in a value", sh(choice, &script).env("A", "1\x002")),
            (
                "a NUL after a clear",
                sh(choice, &script).env_clear().env("A", "\0"),
            ),
        ];
        for (what, c) in bad {
            match c.output().await {
                Err(pkit::Error::InvalidInput(_)) => {}
                other => panic!("{choice}, {what}: {other:?}"),
            }
            assert!(!marker.exists(), "{choice}, {what}: it started");
        }
        // Removing such a name asks nothing of the child's environment.
        let out = cmd(choice, "true")
            .env_remove("A=B")
            .env_remove("")
            .output()
            .await
            .expect("true");
        assert!(out.success(), "{choice}: {out:?}");
    }
    suite.end().await;
}

#[tokio::test]
async fn ten_thousand_variables_set_arrive_in_order() {
    let suite = begin("ten_thousand_variables_set_arrive_in_order").await;
    for choice in mechanisms() {
        let mut c = cmd(choice, "env").env_clear();
        let mut want = Vec::new();
        for i in 0..10_000 {
            let (k, v) = (format!("RV47_{i:05}"), format!("value {i}"));
            want.push(entry(k.as_bytes(), v.as_bytes()));
            c = c.env(k, v);
        }
        assert_eq!(env0(c).await, want, "{choice}");
        // On top of the inherited ones, one overriding PATH.
        let mut c = cmd(choice, "env").env("PATH", "/usr/bin:/bin");
        for i in 0..10_000 {
            c = c.env(format!("RV47_{i:05}"), "x");
        }
        let got = env0(c).await;
        assert_eq!(got.len(), std::env::vars_os().count() + 10_000, "{choice}");
        assert!(got.contains(&b"PATH=/usr/bin:/bin".to_vec()), "{choice}");
    }
    suite.end().await;
}

/// A program only in a directory of this test's own, named uniquely.
struct Tool {
    dir: std::path::PathBuf,
    name: String,
}

impl Tool {
    fn new() -> Tool {
        let dir = temp_path("rv47-bin");
        std::fs::create_dir_all(&dir).unwrap();
        let name = unique_name("rv47-tool").replace('.', "-");
        let file = dir.join(&name);
        std::fs::write(&file, "#!/bin/sh\necho \"tool $PATH\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        Tool { dir, name }
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_program_is_looked_up_on_the_path_its_child_gets() {
    let suite = begin("a_program_is_looked_up_on_the_path_its_child_gets").await;
    let tool = Tool::new();
    let dir = tool.dir.to_str().unwrap().to_owned();
    let searched = format!("{dir}:/usr/bin:/bin");
    for choice in mechanisms() {
        // Not on this process's PATH.
        match cmd(choice, &tool.name).output().await {
            Err(pkit::Error::NotFound { .. }) => {}
            other => panic!("{choice}: {other:?}"),
        }
        // The command's PATH, with other changes too, cleared or not.
        let variants: [(&str, Command); 4] = [
            ("PATH", cmd(choice, &tool.name).env("PATH", &searched)),
            (
                "PATH and more",
                cmd(choice, &tool.name)
                    .env("RV47_A", "1")
                    .env("PATH", &searched)
                    .env_remove("HOME"),
            ),
            (
                "cleared",
                cmd(choice, &tool.name).env_clear().env("PATH", &searched),
            ),
            (
                "allow-list",
                cmd(choice, &tool.name)
                    .inherit_env(["HOME"])
                    .env("PATH", &searched),
            ),
        ];
        for (what, c) in variants {
            let out = c
                .output()
                .await
                .unwrap_or_else(|e| panic!("{choice}, {what}: {e}"));
            assert_eq!(
                out.stdout_str().trim(),
                format!("tool {searched}"),
                "{choice}, {what}"
            );
        }
        // A child without PATH: the program is looked up on the default
        // search path (documented), here `sh` in /bin or /usr/bin.
        for (what, c) in [
            ("removed", cmd(choice, "sh").env_remove("PATH")),
            ("cleared", cmd(choice, "sh").env_clear()),
            ("not allowed", cmd(choice, "sh").inherit_env(["HOME"])),
        ] {
            let got = c
                .args(["-c", "echo \"${PATH-unset}\""])
                .run()
                .await
                .unwrap_or_else(|e| panic!("{choice}, {what}: {e}"));
            // dash and bash may give a child without PATH a default one.
            assert!(!got.contains(&dir), "{choice}, {what}: {got}");
        }
        // ... not this process's: a tool only on ours is not found.
        let ours = format!("{dir}:{}", std::env::var("PATH").unwrap_or_default());
        for (what, c) in [
            (
                "removed",
                cmd(choice, &tool.name)
                    .env("PATH", &ours)
                    .env_remove("PATH"),
            ),
            ("cleared", cmd(choice, &tool.name).env_clear()),
        ] {
            match c.output().await {
                Err(pkit::Error::NotFound { .. }) => {}
                other => panic!("{choice}, {what}: {other:?}"),
            }
        }
    }
    suite.end().await;
}

const HELPER_VAR: &str = "PKIT_RV47_HELPER";

/// The helper (a no-op unless [`HELPER_VAR`] is set): a command started
/// again after `set_var` gets the new value; the children's environments
/// by default and after `read_environment_unlocked` are the same, byte
/// for byte. Prints `rv47 ok`.
#[test]
fn rv47_env_helper() {
    if std::env::var_os(HELPER_VAR).is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let commands = |choice: MechanismChoice| -> Vec<Command> {
        vec![
            cmd(choice, "env"),
            cmd(choice, "env").env("RV47_LIVE", "over"),
            cmd(choice, "env").env_remove("RV47_LIVE").env("N", "1"),
            cmd(choice, "env").inherit_env(["RV47_LIVE", "PATH"]),
            cmd(choice, "env").env("PATH", "/bin").env("RV47_Z", "z"),
        ]
    };
    let mut before = Vec::new();
    for choice in mechanisms() {
        // One command, started three times, the environment changed
        // between: each start reads it anew.
        let c = cmd(choice, "sh")
            .args(["-c", "echo \"$RV47_LIVE/$RV47_SET\""])
            .env("RV47_SET", "s");
        for value in ["a", "a much longer value than the first", "c"] {
            std::env::set_var("RV47_LIVE", value);
            let got = rt.block_on(c.clone().run()).expect("sh");
            assert_eq!(got, format!("{value}/s"), "{choice}");
        }
        std::env::set_var("RV47_PAD", "p".repeat(100_000));
        for c in commands(choice) {
            before.push(rt.block_on(env0(c)));
        }
    }
    // SAFETY: nothing in this process changes its environment from here.
    unsafe { pkit::read_environment_unlocked() };
    let mut after = Vec::new();
    for choice in mechanisms() {
        for c in commands(choice) {
            after.push(rt.block_on(env0(c)));
        }
    }
    assert_eq!(before, after);
    assert!(before[0].iter().any(|e| e.starts_with(b"RV47_PAD=ppp")));
    println!("rv47 ok");
}

#[test]
fn the_environment_read_anew_at_each_start_and_alike_unlocked() {
    in_suite(
        "the_environment_read_anew_at_each_start_and_alike_unlocked",
        || {
            let (status, out) = run_self_as(
                "rv47_env_helper",
                (HELPER_VAR, "1"),
                &[],
                Duration::from_secs(120),
            );
            let (ok, said) = helper_said(status, &out, "rv47 ");
            assert!(ok && said.iter().any(|l| l == "ok"), "{said:?}\n{out}");
        },
    );
}

/// zsig: a close cancelled while it waits for its freeze (a member held in
/// a v1 freezer, so the freeze is never confirmed), then the group and its
/// process dropped, not closed again: once the held member is let go it
/// dies (its SIGKILL was sent), nothing is left frozen, and the group's
/// directory does not stay. Cgroup only.
#[tokio::test]
async fn a_close_cancelled_in_its_freeze_then_dropped_leaves_nothing() {
    const NAME: &str = "a_close_cancelled_in_its_freeze_then_dropped_leaves_nothing";
    let suite = begin(NAME).await;
    if !cgroup_pass(NAME) || !held::v1_freezer_usable() {
        skipped(NAME, "needs cgroup v2 and a cgroup v1 freezer directory");
        suite.end().await;
        return;
    }
    let group = group(MechanismChoice::Cgroup);
    let dir = cgroup_dir(&group).expect("a cgroup directory");
    let (p, pids, held) = held::start_holding(&group, 2, 4701).await;
    let frozen = tokio::select! {
        r = group.close() => panic!("the close returned with a member held: {r:?}"),
        seen = held::being_frozen(&dir) => seen,
    };
    assert!(frozen, "the close never froze the group");
    assert_eq!(held::freeze_written(&dir), "0", "left frozen");
    drop(p);
    drop(group);
    held.thaw();
    assert_gone(&pids, "dropped after a cancelled close").await;
    assert_dir_gone(&dir).await;
    held.remove().await;
    suite.end().await;
}

/// zsig: a group whose cgroup someone else froze (`cgroup.freeze` written
/// by hand, not `Group::suspend`): its close ends every member, and its
/// directory goes. Cgroup only.
#[tokio::test]
async fn a_close_of_a_group_frozen_by_someone_else_ends_it() {
    const NAME: &str = "a_close_of_a_group_frozen_by_someone_else_ends_it";
    let suite = begin(NAME).await;
    if !cgroup_pass(NAME) {
        skipped(NAME, "needs cgroup v2");
        suite.end().await;
        return;
    }
    let group = group(MechanismChoice::Cgroup);
    let dir = cgroup_dir(&group).expect("a cgroup directory");
    let p = group
        .start(&Command::new("sh").args(["-c", "sleep 300 & sleep 300 & wait"]))
        .expect("start");
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let pids = loop {
        let pids = group.pids().expect("pids");
        if pids.len() == 3 {
            break pids;
        }
        assert!(
            std::time::Instant::now() < until,
            "the sleeps never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    std::fs::write(dir.join("cgroup.freeze"), "1").expect("freeze by hand");
    assert!(held::being_frozen(&dir).await);
    tokio::time::timeout(Duration::from_secs(60), group.close())
        .await
        .expect("the close returned")
        .expect("close");
    drop(p);
    assert_gone(&pids, "closed while frozen by hand").await;
    assert_dir_gone(&dir).await;
    suite.end().await;
}
