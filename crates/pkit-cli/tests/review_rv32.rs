//! rv32: a hostile review of attack17's `-E` parser (a refused `K=V` must
//! not echo its value). Probes that found it sound, and one finding
//! (fixed by flood): an `-E` argument that starts with `-` was never seen
//! by the parser; clap took it for an option and quoted it.
#![cfg(target_os = "linux")]

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use common::*;

const SECRET: &str = "rv32S3cretTok";

fn run_os(args: &[OsString]) -> std::process::Output {
    pkit().args(args).output().expect("pkit runs")
}

fn os(s: &str) -> OsString {
    s.into()
}

/// Every malformed shape of `-E`, attached or not, text or bytes: refused
/// with 125, naming the option, the value never shown (stderr or stdout).
#[test]
fn every_malformed_env_argument_is_refused_without_its_value() {
    let bad: Vec<Vec<u8>> = vec![
        format!("={SECRET}").into_bytes(),
        format!("=={SECRET}").into_bytes(),
        SECRET.as_bytes().to_vec(),
        Vec::new(),
        b"=".to_vec(),
        format!("\u{ff}{SECRET}").into_bytes(),
        [b"=\xff\xfe".as_slice(), SECRET.as_bytes()].concat(),
        format!("line\n{SECRET}").into_bytes(),
        format!("=a\n{SECRET}\n").into_bytes(),
    ];
    for value in bad {
        let value = OsString::from_vec(value);
        let mut attached = OsString::from("--env=");
        attached.push(&value);
        let mut short = OsString::from("-E");
        short.push(&value);
        for args in [
            vec![os("run"), os("-E"), value.clone(), os("--"), os("true")],
            vec![os("run"), os("--env"), value.clone(), os("--"), os("true")],
            vec![os("run"), attached, os("--"), os("true")],
            vec![os("run"), short, os("--"), os("true")],
            vec![
                os("run"),
                os("--json"),
                os("-E"),
                value.clone(),
                os("--"),
                os("true"),
            ],
        ] {
            let out = run_os(&args);
            let said = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(125), "{args:?}: {said}");
            assert!(said.contains("--env <K=V>"), "{args:?}: {said}");
            for stream in [&out.stderr, &out.stdout] {
                let text = String::from_utf8_lossy(stream);
                assert!(!text.contains(SECRET), "{args:?}: the value shown: {text}");
                assert!(
                    !text.contains("rv32S3"),
                    "{args:?}: part of it shown: {text}"
                );
            }
        }
    }
}

/// Good shapes pass their value byte for byte: `--env=K=V`, a value with
/// `=`, newlines and non-UTF-8 bytes; other options' refusals still quote
/// their (non-secret) values as clap always did.
#[test]
fn good_env_arguments_pass_and_other_refusals_still_quote() {
    let cases: [(&[u8], &[u8]); 4] = [
        (b"K=v", b"v"),
        (b"K==x=", b"=x="),
        (b"K=a\nb\n", b"a\nb\n"),
        (b"K=\xff\x01z", b"\xff\x01z"),
    ];
    for (arg, want) in cases {
        for form in ["-E", "--env="] {
            let mut args = vec![os("run")];
            if form == "-E" {
                args.push(os("-E"));
                args.push(OsString::from_vec(arg.to_vec()));
            } else {
                let mut a = OsString::from(form);
                a.push(OsString::from_vec(arg.to_vec()));
                args.push(a);
            }
            args.extend(["--", "sh", "-c", "printf %s \"$K\""].map(os));
            let out = run_os(&args);
            assert_eq!(out.status.code(), Some(0), "{args:?}");
            assert_eq!(out.stdout, want, "{args:?}");
        }
    }
    let out = run(&["run", "--timeout", "rv32bogus", "--", "true"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{said}");
    assert!(said.contains("'rv32bogus'"), "{said}");
    // A failed start with an env secret: neither message nor report has it.
    let env = format!("PATH=/{SECRET}");
    let out = run(&["run", "--json", "-i", "-E", &env, "--", "rv32-no-such-tool"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{said}");
    assert!(!said.contains(SECRET), "{said}");
}

/// `-E "$KV"` where `$KV` starts with `-` (`-K=…`, `--…`): clap took the
/// argument for an option, never handed it to the `-E` parser, and its
/// "unexpected argument" error quoted it (`--<secret>` whole, `-K=…` by its
/// first letters). Now the parser sees it: `--<secret>` (no `=`) is refused
/// without its value; `-K=x` passes the name rule (any bytes, not empty,
/// up to the first `=`) and reaches the program as is.
#[test]
fn a_dash_led_env_argument_is_refused_without_its_value() {
    let value = format!("--{SECRET}");
    let args = ["run", "-E", value.as_str(), "--", "true"];
    let out = run(&args);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{args:?}: {said}");
    assert!(said.contains("--env <K=V>"), "{args:?}: {said}");
    assert!(!said.contains(SECRET), "{args:?}: the value shown: {said}");
    assert!(
        !said.contains("rv32S3"),
        "{args:?}: part of it shown: {said}"
    );
    let value = format!("-{SECRET}=x");
    let args = ["run", "-E", value.as_str(), "--", "env"];
    let out = run(&args);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {said}");
    assert!(!said.contains(SECRET), "{args:?}: the value shown: {said}");
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(seen.lines().any(|l| l == value), "{args:?}: {seen}");
}
