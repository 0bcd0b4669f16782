//! A hostile user of the `pkit` CLI (third pass of 2026-12-04): an
//! executable script without a `#!` line.

#![cfg(unix)]

mod common;

use common::*;

/// An executable file without a `#!` line (ENOEXEC from the kernel) is
/// run by `/bin/sh`, as timeout(1) and env(1) run it (execvp(3)), named
/// by path (a relative one, with `-C` elsewhere, too) or found on PATH, with its
/// arguments, and its status is
/// mirrored; a file that may not be executed is still refused (126).
/// Before the fix pkit refused the script: "not executable", status 126,
/// where `timeout 10 ./script` ran it.
#[test]
fn a_script_without_a_shebang_line_is_run_by_sh_as_timeout_runs_it() {
    let dir = temp_path("noshebang");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("pkit-attack-noshebang");
    write_file(&script, "echo \"ran with $# args: $1\"\nexit 3\n", 0o755);
    let plain = dir.join("pkit-attack-not-executable");
    write_file(&plain, "echo ran\n", 0o644);
    let path = path_with(&dir);
    for mechanism in mechanisms() {
        for program in [
            script.to_str().unwrap(),
            "pkit-attack-noshebang",
            "./pkit-attack-noshebang",
        ] {
            // A relative path is pkit's working directory's, not -C's.
            let out = pkit()
                .env("PATH", &path)
                .current_dir(&dir)
                .args(["run", "-q", "--mechanism", mechanism, "-C", "/"])
                .args(["--", program, "one"])
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                (out.status.code(), stdout.as_ref()),
                (Some(3), "ran with 1 args: one\n"),
                "{mechanism} {program}: stderr {stderr:?}"
            );
        }
        let out = pkit()
            .args(["run", "-q", "--mechanism", mechanism, "--"])
            .arg(&plain)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(126), "{mechanism}: {stderr:?}");
        assert!(out.stdout.is_empty(), "{mechanism}: the plain file ran");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A relative program path with `-C DIR` is pkit's working directory's,
/// not DIR's (pkit's rule, where `env -C DIR ./x` runs DIR's `./x`), for a
/// script without a `#!` line, which `/bin/sh` runs, exactly as for one
/// with a `#!` line, which the kernel runs: with `./x` in both directories
/// pkit's runs, in DIR; with `./x` in DIR alone it is not found (127),
/// the same for both kinds.
#[test]
fn a_relative_script_with_chdir_is_pkits_directorys_with_or_without_a_shebang() {
    let base = temp_path("chdir-script");
    let (own, other) = (base.join("own"), base.join("other"));
    for dir in [&own, &other] {
        std::fs::create_dir_all(dir).unwrap();
        for (name, head) in [("plain", ""), ("bang", "#!/bin/sh\n")] {
            let file = dir.join(name);
            let whose = dir.file_name().unwrap().to_str().unwrap();
            write_file(
                &file,
                &format!("{head}echo \"{whose} $1 in $(pwd)\"\n"),
                0o755,
            );
        }
    }
    for (name, head) in [("only-plain", ""), ("only-bang", "#!/bin/sh\n")] {
        let file = other.join(name);
        write_file(&file, &format!("{head}echo other\n"), 0o755);
    }
    let other_real = std::fs::canonicalize(&other).unwrap();
    for mechanism in mechanisms() {
        for program in ["./plain", "./bang"] {
            let out = pkit()
                .current_dir(&own)
                .args(["run", "-q", "--mechanism", mechanism, "-C"])
                .arg(&other)
                .args(["--", program, "arg"])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                (
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout).into_owned()
                ),
                (Some(0), format!("own arg in {}\n", other_real.display())),
                "{mechanism} {program}: stderr {stderr:?}"
            );
        }
        for program in ["./only-plain", "./only-bang"] {
            let out = pkit()
                .current_dir(&own)
                .args(["run", "-q", "--mechanism", mechanism, "-C"])
                .arg(&other)
                .args(["--", program])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(127),
                "{mechanism} {program}: {stderr:?}"
            );
            assert!(
                out.stdout.is_empty(),
                "{mechanism} {program}: DIR's file ran"
            );
        }
    }
    std::fs::remove_dir_all(&base).unwrap();
}
