//! Where a program given as a relative path is found: against this
//! process's working directory, before the child's `current_dir` applies,
//! and executed as exactly that file (review F9). The same for relative
//! and empty `PATH` entries.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use pkit::ErrorKind;

/// `target` (absolute) written as a path relative to this process's
/// working directory: `../../tmp/...`.
fn relative_to_owner(target: &Path) -> PathBuf {
    let cwd = std::env::current_dir().expect("cwd");
    let ups = cwd.components().count() - 1;
    let mut p = PathBuf::new();
    for _ in 0..ups {
        p.push("..");
    }
    p.push(target.strip_prefix("/").expect("absolute"));
    p
}

fn script(path: &Path, says: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).expect("mkdir");
    write_file_externally(
        path,
        &format!("#!/bin/sh\necho {says} \"$(pwd -P)\"\n"),
        0o755,
    );
}

#[tokio::test]
async fn a_relative_program_is_resolved_before_current_dir_applies() {
    let suite = begin("a_relative_program_is_resolved_before_current_dir_applies").await;
    for choice in mechanisms() {
        let root = TempPath::new("f9");
        let right = root.path().join("bin/tool");
        script(&right, "right");
        let program = relative_to_owner(&right);
        // A child directory deep enough that the same relative path, taken
        // from there, names another file, which must not run.
        let deep = (0..program.components().count())
            .fold(root.path().join("cwd"), |p, i| p.join(format!("d{i}")));
        std::fs::create_dir_all(&deep).unwrap();
        let from_deep = deep.join(&program);
        script(&from_deep, "wrong");
        let canonical_deep = deep.canonicalize().unwrap();

        let got = cmd(choice, program.to_str().unwrap())
            .current_dir(&deep)
            .run()
            .await
            .unwrap_or_else(|e| panic!("{choice}: {e}"));
        assert_eq!(
            got,
            format!("right {}", canonical_deep.display()),
            "{choice}: the owner-relative file runs, in the child's directory"
        );

        // A relative current_dir too (the review's case: it gave NotFound).
        let rel_deep = relative_to_owner(&deep);
        let got = cmd(choice, program.to_str().unwrap())
            .current_dir(&rel_deep)
            .run()
            .await
            .unwrap_or_else(|e| panic!("{choice}: relative cwd: {e}"));
        assert_eq!(got, format!("right {}", canonical_deep.display()));

        // A name that exists only relative to the child's directory is not
        // found: nothing is looked up there.
        let err = cmd(choice, "./d0/tool")
            .current_dir(root.path().join("cwd"))
            .output()
            .await
            .expect_err("not relative to current_dir");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{choice}: {err}");

        // Relative and empty PATH entries are relative to our directory too.
        let bin_rel = relative_to_owner(&root.path().join("bin"));
        for path in [
            format!("/nonexistent-pkit:{}", bin_rel.display()),
            format!("{}:", bin_rel.display()),
        ] {
            let got = cmd(choice, "tool")
                .env("PATH", &path)
                .current_dir(&deep)
                .run()
                .await
                .unwrap_or_else(|e| panic!("{choice}: PATH entry: {e}"));
            assert!(got.starts_with("right "), "{choice}: {got}");
        }
        std::fs::remove_dir_all(root.path()).unwrap();
    }
    suite.end().await;
}

/// The search's rules for what it meets on the way (pinned for any change
/// of where the search runs: issue 20 looked at moving it into the child).
/// A directory and a file without an exec bit are passed over, as
/// `execvp`'s `EACCES` is, and the first one is named when nothing later
/// runs; the first executable file found is the one started, and its own
/// failure is the start's: a script whose `#!` interpreter is missing, or
/// a file with exec bits that the kernel can't run (`ENOEXEC`, not handed
/// to `/bin/sh`), is not skipped for a later directory's program.
#[tokio::test]
async fn a_path_search_passes_over_what_cannot_run_and_stops_at_the_first_program() {
    use pkit::Error;
    let suite = begin("a_path_search_passes_over_what_cannot_run").await;
    for choice in mechanisms() {
        let root = TempPath::new("path-rules");
        let dir = |name: &str| {
            let d = root.path().join(name);
            std::fs::create_dir_all(&d).expect("mkdir");
            d
        };
        let (a_dir, plain, no_interp, no_format, good) = (
            dir("a-dir"),
            dir("plain"),
            dir("no-interp"),
            dir("no-format"),
            dir("good"),
        );
        std::fs::create_dir(a_dir.join("tool")).expect("mkdir tool");
        write_file_externally(&plain.join("tool"), "#!/bin/sh\necho wrong\n", 0o644);
        write_file_externally(
            &no_interp.join("tool"),
            "#!/nonexistent-pkit/interpreter\necho wrong\n",
            0o755,
        );
        write_file_externally(&no_format.join("tool"), "echo wrong\n", 0o755);
        script(&good.join("tool"), "right");
        let search = |dirs: &[&Path]| {
            let path = std::env::join_paths(dirs).expect("PATH");
            cmd(choice, "tool").env("PATH", path)
        };

        // A directory, then a file without an exec bit, then the program.
        let got = search(&[&a_dir, &plain, &good])
            .run()
            .await
            .unwrap_or_else(|e| panic!("{choice}: passed over: {e}"));
        assert!(got.starts_with("right "), "{choice}: {got}");
        // Nothing that runs: not executable, naming the first passed over.
        let err = search(&[&a_dir, &plain])
            .output()
            .await
            .expect_err("none runs");
        assert!(
            matches!(&err, Error::NotExecutable { program, path }
                if program == "tool" && *path == a_dir.join("tool")),
            "{choice}: {err:?}"
        );
        // The first executable file is the one started.
        let err = search(&[&no_interp, &good])
            .output()
            .await
            .expect_err("its interpreter is missing");
        assert_eq!(err.kind(), ErrorKind::Spawn, "{choice}: {err:?}");
        assert!(
            err.to_string().contains("/nonexistent-pkit/interpreter"),
            "{choice}: {err}"
        );
        let err = search(&[&no_format, &good])
            .output()
            .await
            .expect_err("no format the kernel runs");
        assert!(
            matches!(&err, Error::NotExecutable { path, .. } if *path == no_format.join("tool")),
            "{choice}: {err:?}"
        );
        std::fs::remove_dir_all(root.path()).unwrap();
    }
    suite.end().await;
}
