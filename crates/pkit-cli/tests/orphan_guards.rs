#![cfg(target_os = "linux")]
//! `pkit run`'s sweep of the run's orphans (pkit is their subreaper) and
//! the owner-death guards of programs that use pkit's library: such a
//! guard is re-parented to pkit when it starts, and when the run ends
//! (its owner gone) it must be left to kill its owner's groups and remove
//! their cgroup directories, not be SIGKILLed midway by the sweep (which
//! left a library owner's cgroup directory behind under load, see
//! `attack_dec12.rs`). A process that only takes the name is killed all
//! the same once the wait is over.

mod common;

use std::path::Path;

use common::*;

/// Each run's script: an escaped orphan (`setsid`, so out of the run's
/// process group) that the sweep must kill, a "guard" (`$4`, a link to
/// `sh` named `pkit-guard`) that ends on its own only once that orphan
/// is gone (as a real guard ends once its owner is), writing `done`, and
/// a "guard" that never ends (it reads a FIFO of its own, `$3.fifo`).
/// Neither starts a process, as a real guard starts none: one with a
/// child is killed at once (see review_rv47.rs). Pids: the orphan's to
/// `$1`, the lingering one's to `$3`.
const SCRIPT: &str = r#"
setsid sh -c 'echo $$ > "$1"; while :; do sleep 1; done' sh "$1" &
while [ ! -s "$1" ]; do sleep 0.01; done
setsid "$4" -c 'read o < "$1"; while kill -0 "$o" 2>/dev/null; do :; done; echo done > "$2"' sh "$1" "$2" &
mkfifo "$3.fifo"
setsid "$4" -c 'echo $$ > "$1"; read x <> "$1.fifo"' sh "$3" &
while [ ! -s "$3" ]; do sleep 0.01; done
"#;

#[test]
fn the_sweep_lets_a_guard_end_on_its_own_and_kills_a_lingering_one() {
    let dir = temp_path("orphan-guards");
    std::fs::create_dir_all(&dir).unwrap();
    let guard = dir.join("pkit-guard");
    std::os::unix::fs::symlink("/bin/sh", &guard).unwrap();
    for mechanism in process_group_mechanisms() {
        let orphan = Reap::new("og-orphan");
        let lingering = Reap::new("og-lingering");
        let done = dir.join(format!("done-{mechanism}"));
        let out = pkit()
            .args(["run", "-q", "--timeout", "60s", "--mechanism", mechanism])
            .args(["--", "sh", "-c"])
            .args([SCRIPT, "sh", orphan.path(), path(&done), lingering.path()])
            .arg(&guard)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{mechanism}: {out:?}");
        // pkit has ended: what it swept is gone (reaped by pkit).
        let pids = [orphan.0.as_path(), lingering.0.as_path()].map(|f| read_pids(f, 1)[0]);
        let _ = std::fs::remove_file(format!("{}.fifo", lingering.path()));
        assert_all_gone(&pids);
        assert_eq!(
            std::fs::read_to_string(&done).unwrap_or_default().trim(),
            "done",
            "{mechanism}: the guard was killed before it could end"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}
