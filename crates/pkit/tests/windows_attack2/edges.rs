//! Edges of a start (see `windows_attack2.rs`): a child that leaves a
//! grandchild holding its output, input the child never reads, a command
//! line past Windows' limit, odd variable names, a program whose path is
//! not ASCII and has spaces, a working directory that is a file.

use std::os::windows::ffi::OsStrExt;
use std::time::Duration;

use pkit::{Command, ErrorKind};

use super::{assert_gone, helper_args, me, named_pids, ROLE};

/// A child that exits at once, leaving a grandchild that holds its stdout
/// open: `output` returns with the child's own code (not at the
/// grandchild's end, nor at the timeout), and the grandchild is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grandchild_holding_the_output_neither_stalls_nor_survives() {
    let out = me("leave")
        .timeout(Duration::from_secs(240))
        .output()
        .await
        .unwrap();
    assert_eq!(out.code(), Some(5), "{out:?}");
    let pids = named_pids(&out.stdout_str());
    assert_eq!(pids.len(), 1, "{}", out.stdout_str());
    assert_gone(&pids, "the grandchild left holding the output");
}

/// 16 MiB of input to a child that never reads it and exits: the run ends
/// with the child's code, the refused input no error of the run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_the_child_never_reads_ends_with_its_code() {
    let out = me("exit7")
        .stdin_bytes(vec![b'x'; 16 << 20])
        .timeout(Duration::from_secs(240))
        .output()
        .await
        .unwrap();
    assert_eq!(out.code(), Some(7), "{out:?}");
}

/// A command line longer than Windows takes (32767 UTF-16 units with its
/// NUL) is refused, naming the limit, as Windows refuses it (Wine runs it
/// cut short: the child saw a 32641-character argument of 40000); one
/// just within it reaches the child whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_line_past_the_limit_is_refused() {
    let long = "y".repeat(40_000);
    let e = me("argv").arg(&long).output().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Spawn, "{e:?}");
    assert!(format!("{e:?}").contains("32767"), "{e:?}");
    // Within it: the program's path, the harness's arguments and this one.
    let exe = std::env::current_exe().unwrap();
    let used = exe.as_os_str().encode_wide().count() + 2 + 36 + 60;
    let fits = "z".repeat(32_767 - used);
    let out = me("argv").arg(&fits).output().await.unwrap();
    assert!(out.stdout_str().contains(&format!("ARG {fits:?}")), "cut");
}

/// A variable name that is empty or holds `=` (where Windows keeps a
/// drive's directory, `=C:`) is refused as invalid input, never passed on
/// as something else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_variable_names_are_invalid_input() {
    for name in ["", "A=B", "=C:"] {
        let e = me("argv").env(name, "x").output().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name:?}: {e:?}");
    }
}

/// A program whose path has spaces and letters outside ASCII runs, by
/// path and by name on the command's `PATH`, with its arguments intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_path_with_spaces_and_unicode_runs() {
    let me_exe = std::env::current_exe().unwrap();
    let dir = std::env::temp_dir().join(format!("pkit att18 ü 日本 {}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("prög ram.exe");
    std::fs::copy(&me_exe, &copy).unwrap();
    // The runtime's DLLs beside the test binary (Wine's build needs one).
    for entry in std::fs::read_dir(me_exe.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("dll"))
        {
            let _ = std::fs::copy(&path, dir.join(path.file_name().unwrap()));
        }
    }
    let path_var = std::env::join_paths([&dir]).unwrap();
    for cmd in [
        Command::new(&copy),
        Command::new("prög ram").env("PATH", &path_var),
    ] {
        let out = cmd
            .args(helper_args())
            .env(ROLE, "argv")
            .arg("ü \"x\"")
            .output()
            .await
            .unwrap();
        assert!(out.success(), "{out:?}");
        assert!(
            out.stdout_str().contains("ARG \"ü \\\"x\\\"\""),
            "{}",
            out.stdout_str()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A working directory that is a file is refused as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_as_the_working_directory_is_refused() {
    let file = std::env::current_exe().unwrap();
    let e = me("argv").current_dir(&file).output().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CurrentDir, "{e:?}");
}
