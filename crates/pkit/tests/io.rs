//! stdin, stdout and stderr: exact bytes in and out, large volumes on both
//! output streams at once, unread input, and the non-piped modes.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use pkit::{Command, MechanismChoice, Stdio};

const TEN_MB: usize = 10 * 1024 * 1024;

fn binary_input() -> Vec<u8> {
    (0..=255u8).cycle().take(256 * 4096).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_bytes_reach_the_child_exactly() {
    let suite = begin("stdin_bytes_reach_the_child_exactly").await;
    let input = binary_input();
    for choice in mechanisms() {
        let out = cmd(choice, "cat")
            .stdin_bytes(input.clone())
            .output()
            .await
            .expect("cat");
        assert!(out.success(), "{choice}: {out:?}");
        assert!(
            out.stdout() == input.as_slice(),
            "{choice}: {} bytes back",
            out.stdout().len()
        );

        let out = cmd(choice, "cat")
            .stdin_str("héllo\nwörld")
            .output()
            .await
            .expect("cat");
        assert_eq!(out.stdout_str(), "héllo\nwörld", "{choice}");
        assert!(out.stderr().is_empty());

        let out = cmd(choice, "cat")
            .stdin_bytes(Vec::new())
            .output()
            .await
            .expect("cat");
        assert!(
            out.success() && out.stdout().is_empty(),
            "{choice}: {out:?}"
        );
    }
    suite.end().await;
}

#[tokio::test]
async fn stdin_is_null_by_default() {
    let suite = begin("stdin_is_null_by_default").await;
    for choice in mechanisms() {
        // cat ends at once on /dev/null instead of waiting on our stdin.
        let out = cmd(choice, "cat").output().await.expect("cat");
        assert!(
            out.success() && out.stdout().is_empty(),
            "{choice}: {out:?}"
        );
        let out = cmd(choice, "cat")
            .stdin_str("dropped")
            .stdin_null()
            .output()
            .await
            .expect("cat");
        assert!(
            out.success() && out.stdout().is_empty(),
            "{choice}: {out:?}"
        );
        let target = sh(choice, "readlink /proc/self/fd/0")
            .run()
            .await
            .expect("readlink");
        assert_eq!(target, "/dev/null", "{choice}");
    }
    suite.end().await;
}

#[tokio::test]
async fn stdin_is_fed_again_on_every_run() {
    let suite = begin("stdin_is_fed_again_on_every_run").await;
    for choice in mechanisms() {
        let c = cmd(choice, "cat").stdin_str("same input\n");
        let first = c.run().await.expect("first");
        let second = c.clone().run().await.expect("second");
        let third = c.run().await.expect("third");
        assert_eq!([first, second, third], ["same input"; 3], "{choice}");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_stdin_is_not_an_error() {
    let suite = begin("unread_stdin_is_not_an_error").await;
    let big = vec![b'x'; TEN_MB];
    for choice in mechanisms() {
        let out = cmd(choice, "true")
            .stdin_bytes(big.clone())
            .output()
            .await
            .expect("true");
        assert!(out.success(), "{choice}: {out:?}");

        // Reads a little, then exits with most of it unread.
        let out = cmd(choice, "head")
            .args(["-c", "1000"])
            .stdin_bytes(big.clone())
            .output()
            .await
            .expect("head");
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(out.stdout(), &big[..1000]);

        // Closes stdin at once, then keeps running.
        let got = sh(choice, "exec 0<&-; sleep 0.2; echo still-here")
            .stdin_bytes(big.clone())
            .run()
            .await
            .expect("sh");
        assert_eq!(got, "still-here", "{choice}");
    }
    suite.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_on_stdout_and_stderr_at_once() {
    let suite = begin("ten_megabytes_on_stdout_and_stderr_at_once").await;
    let script = r#"head -c 10485760 /dev/zero | tr "\0" a & head -c 10485760 /dev/zero | tr "\0" b >&2; wait"#;
    for choice in mechanisms() {
        let out = sh(choice, script).output().await.expect("output");
        assert!(out.success(), "{choice}: {out:?}");
        assert_eq!(out.stdout().len(), TEN_MB, "{choice}");
        assert_eq!(out.stderr().len(), TEN_MB, "{choice}");
        assert!(
            out.stdout().iter().all(|&b| b == b'a'),
            "{choice}: stdout bytes"
        );
        assert!(
            out.stderr().iter().all(|&b| b == b'b'),
            "{choice}: stderr bytes"
        );
    }
    suite.end().await;
}

#[tokio::test]
async fn ten_megabytes_through_cat_while_it_writes() {
    let suite = begin("ten_megabytes_through_cat_while_it_writes").await;
    // cat writes while we write: stdin feeding and stdout reading must run
    // concurrently or both pipes fill up.
    let input: Vec<u8> = binary_input().repeat(10);
    for choice in mechanisms() {
        let out = cmd(choice, "cat")
            .stdin_bytes(input.clone())
            .output()
            .await
            .expect("cat");
        assert!(out.success(), "{choice}: {out:?}");
        assert!(
            out.stdout() == input.as_slice(),
            "{choice}: {} bytes",
            out.stdout().len()
        );
    }
    suite.end().await;
}

#[tokio::test]
async fn null_and_inherited_output_are_not_captured() {
    let suite = begin("null_and_inherited_output_are_not_captured").await;
    for choice in mechanisms() {
        let out = sh(choice, "echo out; echo err >&2")
            .stdout(Stdio::Null)
            .stderr(Stdio::Null)
            .output()
            .await
            .expect("output");
        assert!(out.success(), "{choice}: {out:?}");
        assert!(out.stdout().is_empty() && out.stderr().is_empty());

        let target = sh(choice, "readlink /proc/self/fd/2")
            .stderr(Stdio::Null)
            .run()
            .await
            .expect("readlink");
        assert_eq!(target, "/dev/null", "{choice}");

        // Inherited: it goes to the test's own stream, not into Output.
        let out = cmd(choice, "true")
            .stdout(Stdio::Inherit)
            .stderr(Stdio::Inherit)
            .output()
            .await
            .expect("output");
        assert!(out.success() && out.stdout().is_empty() && out.stderr().is_empty());

        // Only stdout piped: stderr is not mixed into it.
        let out = sh(choice, "echo out; echo err >&2")
            .stderr(Stdio::Null)
            .output()
            .await
            .expect("output");
        assert_eq!(out.stdout_str(), "out\n", "{choice}");
        assert!(out.stderr().is_empty());
    }
    suite.end().await;
}

#[tokio::test]
async fn invalid_utf8_output_is_kept_as_bytes() {
    let suite = begin("invalid_utf8_output_is_kept_as_bytes").await;
    for choice in mechanisms() {
        let out = sh(choice, r"printf 'a\377b'")
            .output()
            .await
            .expect("output");
        assert_eq!(out.stdout(), b"a\xffb", "{choice}");
        assert_eq!(out.stdout_str(), "a\u{fffd}b");
    }
    suite.end().await;
}

/// This process's fds that are not close-on-exec (inherited from whoever
/// started the test binary, typically).
fn inheritable_fds() -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir("/proc/self/fdinfo")
        .expect("fdinfo")
        .flatten()
    {
        let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue; // the fd read_dir itself uses, now closed
        };
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
            .expect("flags");
        const O_CLOEXEC: u32 = 0o2000000;
        if flags & O_CLOEXEC == 0 {
            out.insert(fd);
        }
    }
    out
}

#[tokio::test]
async fn the_child_gets_none_of_pkits_file_descriptors() {
    let suite = begin("the_child_gets_none_of_pkits_file_descriptors").await;
    // ls lists the fds of the sh pkit started (not its own).
    let script = "ls -l /proc/$$/fd";
    for choice in mechanisms() {
        // Hold pkit resources (a pidfd, pipes, a cgroup fd) meanwhile.
        let group = group(choice);
        let busy = group
            .start(&Command::new("sleep").arg("300").stdin_str("x"))
            .expect("start");
        let out = sh(choice, script).output().await.expect("output");
        assert!(out.success(), "{choice}: {out:?}");
        let child: BTreeMap<u32, String> = out
            .stdout_str()
            .lines()
            .filter_map(|l| {
                let (left, target) = l.split_once(" -> ")?;
                let fd = left.split_whitespace().last()?.parse().ok()?;
                Some((fd, target.to_owned()))
            })
            .collect();
        for fd in 0..3 {
            assert!(child.contains_key(&fd), "{choice}: {child:?}");
        }
        let extra: BTreeMap<u32, String> = child.into_iter().filter(|(fd, _)| *fd > 2).collect();
        match choice {
            // clone3 spawning marks every fd above 2 close-on-exec.
            MechanismChoice::Cgroup => {
                assert!(extra.is_empty(), "{choice}: stray fds {extra:?}")
            }
            // std's spawn passes on fds that were opened inheritable (not
            // pkit's: it opens everything close-on-exec).
            _ => {
                let inheritable = inheritable_fds();
                assert!(
                    extra.keys().all(|fd| inheritable.contains(fd)),
                    "{choice}: stray fds {extra:?}, inheritable {inheritable:?}"
                );
            }
        }
        drop(group);
        drop(busy);
    }
    suite.end().await;
}
