//! attack17: secrets in what `pkit run` prints.
//!
//! What broke (fixed): a malformed `-E K=V` (no name: `-E "=$TOKEN"`, what
//! `-E "$NAME=$TOKEN"` becomes with `NAME` unset; or no `=`) was refused
//! by clap with the whole argument quoted, the secret value included,
//! on stderr (a CI log). The refusal now says what is wrong without it.
//! Probed and held: a run's env values and arguments show in neither the
//! `-v` lines nor the `--json` report, nor a start failure's message.
#![cfg(target_os = "linux")]

mod common;

use common::*;

const SECRET: &str = "a17S3cretVal";

#[test]
fn a_malformed_env_argument_is_refused_without_its_value() {
    for bad in [format!("={SECRET}"), SECRET.to_string()] {
        let args = ["run", "-E", bad.as_str(), "--", "true"];
        let out = run(&args);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {said}");
        assert!(said.contains("--env <K=V>"), "{args:?}: {said}");
        assert!(!said.contains(SECRET), "{args:?}: the value shown: {said}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
    }
    // A good one still passes, its value as given.
    let out = run(&[
        "run",
        "-E",
        "A17==x=",
        "--",
        "sh",
        "-c",
        "printf %s \"$A17\"",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "=x=");
}

#[test]
fn a_runs_env_and_arguments_stay_out_of_pkits_own_lines() {
    for mechanism in mechanisms() {
        let env = format!("A17_TOKEN={SECRET}");
        let out = run(&[
            "run",
            "-v",
            "--json",
            "--mechanism",
            mechanism,
            "-E",
            &env,
            "--timeout",
            "0.3",
            "--",
            "sh",
            "-c",
            "sleep 300",
            "sh",
            SECRET,
        ]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(report(&out)["outcome"], "timed_out", "{mechanism}: {said}");
        assert!(!said.contains(SECRET), "{mechanism}: {said}");
        let missing = format!("/nonexistent/{}", "a17-tool");
        let out = run(&[
            "run",
            "-v",
            "--json",
            "--mechanism",
            mechanism,
            "-E",
            &env,
            "--",
            &missing,
            SECRET,
        ]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            report(&out)["error_kind"],
            "not_found",
            "{mechanism}: {said}"
        );
        assert!(!said.contains(SECRET), "{mechanism}: {said}");
    }
}
