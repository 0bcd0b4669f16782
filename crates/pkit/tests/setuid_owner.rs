//! An owner whose executable is set-user-ID (or set-group-ID) and that has
//! dropped its privileges before starting children: the children must run
//! with the credentials the owner has when it starts them, never with the
//! executable's owner's. The portable backend's registration gate runs the
//! owner's executable again as a trampoline (`sys/unix/trampoline.rs`);
//! executing a set-user-ID file gives the trampoline, and the program it
//! then executes, the file owner's effective user.
//!
//! Run as root only (it makes a root-owned set-user-ID copy of this test
//! binary and runs it as `nobody` through `setpriv`); elsewhere it says it
//! skipped.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::*;
use pkit::MechanismChoice;

const HELPER: &str = "PKIT_SETUID_OWNER_HELPER";
const NOBODY: u32 = 65534;

/// In the set-user-ID copy, run as `nobody`: drops every privilege (real,
/// effective and saved ids all `nobody`), then starts `id` under each
/// process-group mechanism and prints what it said. Does nothing in a
/// plain run.
#[test]
fn helper_drops_privileges_then_starts_id() {
    if std::env::var_os(HELPER).is_none() {
        return;
    }
    // SAFETY: plain syscalls on this (single-purpose) process's own
    // credentials.
    unsafe {
        let gid = libc::getgid();
        let uid = libc::getuid();
        assert_eq!(libc::setresgid(gid, gid, gid), 0);
        assert_eq!(libc::setresuid(uid, uid, uid), 0);
        assert_eq!(libc::geteuid(), uid);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    for choice in [MechanismChoice::ProcessGroup, MechanismChoice::Portable] {
        let out = rt.block_on(async {
            // `id` itself, not through a shell: sh gives up a set-user-ID
            // effective user by itself.
            let uid = cmd(choice, "id").arg("-u").output().await?;
            let gid = cmd(choice, "id").arg("-g").output().await?;
            Ok::<_, pkit::Error>(format!(
                "{} {} {}",
                uid.outcome(),
                uid.stdout_str().trim(),
                gid.stdout_str().trim()
            ))
        });
        let said = match out {
            Ok(said) => said,
            Err(e) => format!("error {e}"),
        };
        println!("HELPER {choice} {said}");
    }
    // The guards these runs started (each a `pkit-guard` process; the real
    // user id of a process started by this one is nobody's): none may run
    // with another effective user.
    let mut guards = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = entry.path();
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        if !cmdline.starts_with(b"pkit-guard") {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let Some(uids) = status.lines().find(|l| l.starts_with("Uid:")) else {
            continue;
        };
        let ids: Vec<&str> = uids.split_whitespace().skip(1).collect();
        if ids.first() == Some(&NOBODY.to_string().as_str()) {
            guards.push(format!(
                "{}:{}",
                entry.file_name().to_string_lossy(),
                ids.join(",")
            ));
        }
    }
    println!("GUARDS {}", guards.join(" "));
}

#[test]
fn children_of_a_privilege_dropped_set_user_id_owner_keep_its_credentials() {
    in_suite(
        "children_of_a_privilege_dropped_set_user_id_owner_keep_its_credentials",
        set_user_id_owner,
    );
}

/// The body of
/// `children_of_a_privilege_dropped_set_user_id_owner_keep_its_credentials`.
fn set_user_id_owner() {
    // SAFETY: a plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        skipped(
            "a set-user-ID owner",
            "needs root to make a root-owned set-user-ID copy of this binary",
        );
        return;
    }
    let dir = PathBuf::from("/tmp").join(common::unique_name("setuid-owner"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join("owner");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o6755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ])
        .arg(&copy)
        .args([
            "--exact",
            "helper_drops_privileges_then_starts_id",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER, "1")
        .env_remove("PKIT_MECHANISM")
        .output();
    std::fs::remove_dir_all(&dir).unwrap();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            skipped("a set-user-ID owner", &format!("setpriv: {e}"));
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.find("HELPER ").map(|at| &l[at..]))
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "the helper ran: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let guards = text
        .lines()
        .find_map(|l| l.strip_prefix("GUARDS "))
        .unwrap_or_else(|| panic!("the helper listed its guards: {text}"));
    for guard in guards.split_whitespace() {
        let ids = guard.split_once(':').unwrap().1;
        assert!(
            ids.split(',').all(|id| id == NOBODY.to_string()),
            "a guard runs with another user's privileges (pid:real,effective,saved,fs): {guard}"
        );
    }
    for line in lines {
        assert!(
            line.ends_with(&format!("exited(0) {NOBODY} {NOBODY}")),
            "the child runs as nobody, as its owner does: {line}"
        );
    }
}
