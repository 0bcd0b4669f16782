#![cfg(target_os = "linux")]
//! rv46: a hostile review of the tenth session's merges (CLI half: pkit in
//! a pid namespace of its own, the cgname case of a nested pkit). Run in
//! the three passes (unset, `PKIT_MECHANISM=pgroup`,
//! `PKIT_MECHANISM=portable`); each case runs the mechanisms of the pass.
//!
//! Finding (older than the tenth session: 456fbad has it too):
//! - MEDIUM, fixed
//!   [`a_pkit_whose_proc_is_not_its_namespaces_ends_only_its_own_orphans`]:
//!   pkit in a pid namespace of its own whose `/proc` is not that
//!   namespace's (`unshare -pf pkit run ...` without `--mount-proc`) read
//!   its subreaper's children from `/proc` by comparing each entry's parent
//!   pid, numbered in `/proc`'s namespace, with its own pid in its own. It
//!   took the children of the process that has its pid out there for its
//!   orphans, SIGKILLed their numbers in its own namespace (a bystander
//!   there with such a number was killed), waited 5 s for them to go at
//!   every run's end, said "a process that left it could not be ended",
//!   and missed its real orphans (a `setsid` descendant of a
//!   process-group run lived on).

mod common;

use std::path::Path;

use common::*;

/// Whether `unshare -pf` works here (root, a kernel with pid namespaces).
fn unshare_usable() -> bool {
    std::process::Command::new("unshare")
        .args(["-pf", "true"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A process of this namespace with a child: (its pid, its child's pid).
struct Parent(std::process::Child, u32);

impl Parent {
    fn new() -> Parent {
        use std::io::BufRead;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 300 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("its child's pid");
        let kid = line.trim().parse().expect("a pid");
        Parent(child, kid)
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        kill(self.1, libc::SIGKILL);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The script run as pid 1 of a new pid namespace (no `/proc` of its own):
/// a bystander `sleep` made with pid `$2` there (`ns_last_pid`), then
/// `pkit run --mechanism $4` made with pid `$1` there, its program a
/// shell that leaves a `setsid` orphan (its pid to file `$5`) and says its
/// parent's pid; then whether the bystander and the orphan live.
const IN_NAMESPACE: &str = r#"
set -u
A=$1; B=$2; P=$3; M=$4; F=$5
echo $((B - 1)) > /proc/sys/kernel/ns_last_pid || { echo "rv46 no ns_last_pid"; exit 0; }
sleep 300 & bystander=$!
[ "$bystander" = "$B" ] || { echo "rv46 bystander got $bystander, not $B"; exit 0; }
echo $((A - 1)) > /proc/sys/kernel/ns_last_pid
"$P" run --mechanism "$M" -- sh -c 'echo "rv46 pkit $PPID"; setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > "$1"' sh "$F"
echo "rv46 status $?"
if kill -0 "$bystander" 2>/dev/null; then echo "rv46 bystander alive"; else echo "rv46 bystander killed"; fi
orphan=$(cat "$F")
if kill -0 "$orphan" 2>/dev/null; then echo "rv46 orphan alive"; else echo "rv46 orphan gone"; fi
kill -9 "$bystander" "$orphan" 2>/dev/null
exit 0
"#;

fn said<'a>(out: &'a str, what: &str) -> Vec<&'a str> {
    out.lines()
        .filter_map(|l| l.strip_prefix("rv46 "))
        .filter(|l| l.starts_with(what))
        .collect()
}

#[test]
fn a_pkit_whose_proc_is_not_its_namespaces_ends_only_its_own_orphans() {
    if !unshare_usable() {
        eprintln!("skipped: unshare -pf is not usable here");
        return;
    }
    for m in mechanisms() {
        let parent = Parent::new();
        let (a, b) = (parent.0.id(), parent.1);
        let file = temp_path("rv46-orphan");
        let out = std::process::Command::new("unshare")
            .args(["-pf", "sh", "-c", IN_NAMESPACE, "sh"])
            .arg(a.to_string())
            .arg(b.to_string())
            .arg(env!("CARGO_BIN_EXE_pkit"))
            .arg(m)
            .arg(&file)
            .output()
            .expect("unshare");
        let _ = std::fs::remove_file(&file);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        let all = format!("{m}: stdout {stdout:?}, stderr {stderr:?}");
        if !said(&stdout, "no ").is_empty() || !said(&stdout, "bystander got").is_empty() {
            eprintln!("skipped ({all}): the namespace's pids can't be chosen");
            continue;
        }
        assert_eq!(said(&stdout, "pkit "), [format!("pkit {a}")], "{all}");
        assert_eq!(said(&stdout, "status "), ["status 0"], "{all}");
        assert_eq!(
            said(&stdout, "bystander "),
            ["bystander alive"],
            "pkit killed a process of its namespace that was no orphan of its: {all}"
        );
        assert_eq!(
            said(&stdout, "orphan "),
            ["orphan gone"],
            "pkit left its own orphan alive: {all}"
        );
        assert!(
            !stderr.contains("could not be ended"),
            "a false note: {all}"
        );
        assert!(Path::new(&format!("/proc/{b}")).exists(), "{all}");
        drop(parent);
    }
}
