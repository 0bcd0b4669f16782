//! `pkit doctor`.

use std::process::ExitCode;

use serde_json::json;

pub fn main(as_json: bool) -> ExitCode {
    if let Err(msg) = crate::checks::clone3_env() {
        eprintln!("pkit: {msg}");
        return ExitCode::from(crate::EXIT_OWN_FAILURE);
    }
    let host = pkit::host_containment();
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    if as_json {
        let v = json!({
            "mechanism": host.mechanism.map(|m| m.as_str()),
            "choice": host.choice.as_str(),
            "reason": host.reason,
            "kernel": host.kernel,
            "cgroup_mount": path(&host.cgroup_mount),
            "owner_cgroup": path(&host.owner_cgroup),
            "group_parent": path(&host.group_parent),
            "cgroup_writable": host.cgroup_writable,
            "cgroup_kill": host.cgroup_kill,
            "clone3": host.clone3,
            "clone3_error": host.clone3_error,
            "caps": host.caps.iter().map(|c| json!({
                "cap": c.cap,
                "enforced_by": c.enforced_by,
                "reason": c.reason,
            })).collect::<Vec<_>>(),
            "guard": json!({
                "running": host.guard.running,
                "pid": host.guard.pid,
                "groups": host.guard.groups,
                "entries": host.guard.entries,
                "lost": host.guard.lost,
                "error": host.guard.error,
                "process_groups": host.guard.process_groups,
                "started": host.guard.started,
            }),
        });
        println!("{v}");
    } else {
        let yes = |b: bool| if b { "yes" } else { "no" };
        match host.mechanism {
            Some(m) => println!("New groups get: {m}"),
            None => println!("New groups get: nothing (creating a group fails)"),
        }
        println!("  why: {}", host.reason);
        match pkit::MechanismChoice::from_env() {
            Ok(_) => println!("  PKIT_MECHANISM: {}", host.choice),
            Err(bad) => println!("  PKIT_MECHANISM: {bad:?} (not a choice)"),
        }
        println!("  kernel: {}", host.kernel);
        // Windows: none of the cgroup and clone3 lines apply.
        let job = host.mechanism == Some(pkit::Mechanism::JobObject);
        if job {
            println!("  whole-tree kill: TerminateJobObject (atomic)");
            println!("  placement at birth: created suspended, assigned to the job, then resumed");
        }
        match &host.cgroup_mount {
            _ if job => {}
            Some(m) => println!("  cgroup v2 mounted at: {}", m.display()),
            None => println!("  cgroup v2 mounted at: (not mounted)"),
        }
        if let Some(o) = &host.owner_cgroup {
            println!("  this process's cgroup: {}", o.display());
        }
        if let Some(p) = &host.group_parent {
            println!(
                "  groups are created under: {} (writable: {})",
                p.display(),
                yes(host.cgroup_writable)
            );
        }
        if !job {
            println!(
                "  whole-tree kill: {}",
                if host.cgroup_kill {
                    "cgroup.kill (atomic)"
                } else {
                    "freeze, SIGKILL each member, thaw"
                }
            );
        }
        match &host.clone3_error {
            _ if job => {}
            None => println!("  placement at birth (clone3 CLONE_INTO_CGROUP): yes"),
            Some(e) => println!("  placement at birth: no, children join before exec ({e})"),
        }
        let g = &host.guard;
        match (g.running, g.pid, &g.error) {
            (true, Some(pid), _) => println!(
                "  owner-death guard: running (pid {pid}), covering {} group(s){}",
                g.groups.len(),
                if g.groups.is_empty() {
                    String::new()
                } else {
                    format!(": {}", g.groups.join(", "))
                }
            ),
            (_, _, Some(why)) => println!("  owner-death guard: not running: {why}"),
            _ => println!(
                "  owner-death guard: not running in this process (every pkit process starts \
                 its own with its first group)"
            ),
        }
        if !g.started.is_empty() {
            println!("  owner-death guard, started as: {}", g.started);
        }
        if !job {
            println!("  owner-death guard, process groups: {}", g.process_groups);
        }
        if job {
            println!("  resource caps (carried by the job):");
        } else {
            println!("  resource caps (need a cgroup group):");
        }
        for c in &host.caps {
            match &c.enforced_by {
                Some(how) => println!("    {:<14} yes, by {how} ({})", c.cap, c.reason),
                None => println!("    {:<14} no: {}", c.cap, c.reason),
            }
        }
        if host.mechanism == Some(pkit::Mechanism::ProcessGroup) {
            println!("  note: a process group does not hold a descendant that calls setsid");
        }
    }
    if host.mechanism.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_OWN_FAILURE)
    }
}
