//! `pkit doctor`.

use std::io::Write as _;
use std::process::ExitCode;

use serde_json::json;

use crate::exit::WriteFailed;

/// A line of the findings, into a `String`.
macro_rules! say {
    ($o:ident, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($o, $($arg)*);
    }};
}

/// Prints the findings: written whole at the end, so that findings that
/// can't be written (`pkit doctor | true`: the reader gone) are a failure
/// with `pkit run`'s statuses, 141 for EPIPE, 125 otherwise, not status 0.
/// (A stdout closed when pkit starts, `>&-`, is `/dev/null` to it, as to
/// `pkit run`: Rust's runtime opens that there before `main`, so nothing
/// fails and the status is the findings', as with `>/dev/null`.)
///
/// What the system said (paths from `/proc/self/mountinfo` and
/// `/proc/self/cgroup`, which can hold any bytes, reasons and errors that
/// quote them) is shown with control and bidi characters escaped
/// (`pkit::escape_controls`), as pkit's other lines; the JSON keeps the
/// exact values, its text escaped as `pkit run --json`'s.
///
/// The status is 0 when new groups get a mechanism, 125 when creating one
/// fails here (a bad `PKIT_MECHANISM` or `PKIT_CLONE3`, a forced mechanism
/// this host lacks): the findings say why, in either case.
pub fn main(as_json: bool) -> ExitCode {
    // A bad PKIT_CLONE3 refuses every run: still diagnosed, the refusal as
    // the reason and no mechanism, as for a bad PKIT_MECHANISM.
    let refused = crate::checks::clone3_env().err();
    let mut text = String::new();
    let status = findings(as_json, refused, &mut text);
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => status,
        Err(source) => {
            let e = WriteFailed {
                what: "the findings",
                source,
            };
            e.print();
            ExitCode::from(e.status())
        }
    }
}

fn findings(as_json: bool, refused: Option<String>, text: &mut String) -> ExitCode {
    let mut host = pkit::host_containment();
    if let Some(msg) = refused {
        host.mechanism = None;
        host.reason = msg;
    }
    // No group can be made (a bad PKIT_CLONE3 or PKIT_MECHANISM, a forced
    // mechanism this host lacks): every run is refused, so no whole-tree
    // kill, placement at birth or cap is used, whatever the host has.
    let none = host.mechanism.is_none();
    if none {
        host.cgroup_kill = false;
        if host.clone3 {
            host.clone3 = false;
            host.clone3_error = Some("no group can be made here".into());
        }
        for c in &mut host.caps {
            if c.enforced_by.take().is_some() {
                c.reason = "no group can be made here".into();
            }
        }
    }
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    // What the system said, for a terminal.
    let esc = |t: &str| pkit::escape_controls(t).into_owned();
    let shown = |p: &std::path::Path| esc(&p.to_string_lossy());
    if as_json {
        let v = json!({
            "mechanism": host.mechanism.map(|m| m.as_str()),
            // null for an unparseable PKIT_MECHANISM (the reason says so),
            // not the `auto` it is not.
            "choice": pkit::MechanismChoice::from_env().ok().map(|c| c.as_str()),
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
        // Always serializable (plain values); compact, as `{v}` was.
        let line = crate::json_line::to_line(&v).unwrap_or_default();
        say!(text, "{}", String::from_utf8_lossy(&line));
    } else {
        let yes = |b: bool| if b { "yes" } else { "no" };
        match host.mechanism {
            Some(m) => say!(text, "New groups get: {m}"),
            None => say!(text, "New groups get: nothing (creating a group fails)"),
        }
        say!(text, "  why: {}", esc(&host.reason));
        match pkit::MechanismChoice::from_env() {
            Ok(_) => say!(text, "  PKIT_MECHANISM: {}", host.choice),
            Err(bad) => say!(text, "  PKIT_MECHANISM: {bad:?} (not a choice)"),
        }
        say!(text, "  kernel: {}", esc(&host.kernel));
        // Windows: none of the cgroup and clone3 lines apply.
        let job = host.mechanism == Some(pkit::Mechanism::JobObject);
        if job {
            say!(text, "  whole-tree kill: TerminateJobObject (atomic)");
            say!(
                text,
                "  placement at birth: created suspended, assigned to the job, then resumed"
            );
        }
        match &host.cgroup_mount {
            _ if job => {}
            Some(m) => say!(text, "  cgroup v2 mounted at: {}", shown(m)),
            None => say!(text, "  cgroup v2 mounted at: (not mounted)"),
        }
        if let Some(o) = &host.owner_cgroup {
            say!(text, "  this process's cgroup: {}", shown(o));
        }
        if let Some(p) = &host.group_parent {
            say!(
                text,
                "  groups are created under: {} (writable: {})",
                shown(p),
                yes(host.cgroup_writable)
            );
        }
        // No cgroup can be made here (none mounted, or not writable): the
        // cgroup teardown and placement would describe groups nobody gets.
        let no_cgroup = !job && !host.cgroup_writable;
        if none {
            // No group at all: no kill to describe.
        } else if no_cgroup {
            say!(
                text,
                "  whole-tree kill: SIGKILL to the process group (no cgroup can be made here)"
            );
        } else if !job {
            say!(
                text,
                "  whole-tree kill: {}",
                if host.cgroup_kill {
                    "cgroup.kill (atomic)"
                } else {
                    "freeze, SIGKILL each member, thaw"
                }
            );
        }
        match &host.clone3_error {
            _ if job || no_cgroup || none => {}
            None => say!(text, "  placement at birth (clone3 CLONE_INTO_CGROUP): yes"),
            Some(e) => say!(
                text,
                "  placement at birth: no, children join before exec ({})",
                esc(e)
            ),
        }
        let g = &host.guard;
        match (g.running, g.pid, &g.error) {
            (true, Some(pid), _) => say!(
                text,
                "  owner-death guard: running (pid {pid}), covering {} group(s){}",
                g.groups.len(),
                if g.groups.is_empty() {
                    String::new()
                } else {
                    format!(": {}", esc(&g.groups.join(", ")))
                }
            ),
            (_, _, Some(why)) => say!(text, "  owner-death guard: not running: {}", esc(why)),
            _ => say!(
                text,
                "  owner-death guard: not running in this process (every pkit process starts \
                 its own with its first group)"
            ),
        }
        if !g.started.is_empty() {
            say!(text, "  owner-death guard, started as: {}", esc(&g.started));
        }
        if !job {
            say!(
                text,
                "  owner-death guard, process groups: {}",
                esc(&g.process_groups)
            );
        }
        if job {
            say!(text, "  resource caps (carried by the job):");
        } else {
            say!(text, "  resource caps (need a cgroup group):");
        }
        for c in &host.caps {
            match &c.enforced_by {
                Some(how) => say!(
                    text,
                    "    {:<14} yes, by {} ({})",
                    c.cap,
                    esc(how),
                    esc(&c.reason)
                ),
                None => say!(text, "    {:<14} no: {}", c.cap, esc(&c.reason)),
            }
        }
        if host.mechanism == Some(pkit::Mechanism::ProcessGroup) {
            say!(
                text,
                "  note: a process group does not hold a descendant that calls setsid or setpgid"
            );
        }
    }
    if host.mechanism.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_OWN_FAILURE)
    }
}
