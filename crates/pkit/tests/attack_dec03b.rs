//! A hostile user against the newest code (second pass of 2026-12-03):
//! the environment an application changes between runs, odd inputs.

mod common;

use common::*;

/// The name of the variable this binary changes between runs (no other
/// test of this binary reads it).
const VAR: &str = "PKIT_ATTACK_DEC03B_VAR";

/// An application that changes its own environment between runs (as
/// `std::env::set_var` does) gives its next child the environment it has
/// then, as `std::process::Command` does, whether or not the command
/// sets variables of its own, through the async and the blocking paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_sees_the_environment_as_it_is_at_its_start() {
    let suite = begin("a_child_sees_the_environment_as_it_is_at_its_start").await;
    for choice in mechanisms() {
        for value in ["one", "two", ""] {
            match value {
                "" => std::env::remove_var(VAR),
                v => std::env::set_var(VAR, v),
            }
            let script = format!("printf '%s' \"${{{VAR}-unset}}\"");
            let want = if value.is_empty() { "unset" } else { value };
            let plain = sh(choice, &script);
            let with_own = sh(choice, &script).env("PKIT_ATTACK_OTHER", "x");
            let cleared = sh(choice, &script).env_remove("PKIT_ATTACK_OTHER");
            for (how, cmd) in [("plain", plain), ("env", with_own), ("env_remove", cleared)] {
                let out = cmd.clone().output().await.expect("output");
                assert_eq!(out.stdout_str(), want, "{choice} {how} async");
                // A thread of its own: the blocking API refuses a runtime's.
                let blocking = std::thread::spawn(move || cmd.blocking().output())
                    .join()
                    .expect("join")
                    .expect("blocking output");
                assert_eq!(blocking.stdout_str(), want, "{choice} {how} blocking");
            }
            let std = std::process::Command::new("sh")
                .args(["-c", &script])
                .output()
                .expect("std");
            assert_eq!(String::from_utf8_lossy(&std.stdout), want, "std agrees");
        }
    }
    std::env::remove_var(VAR);
    suite.end().await;
}
