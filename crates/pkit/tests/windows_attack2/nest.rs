//! Groups inside groups and jobs (see `windows_attack2.rs`): a pkit group
//! made by a process in another pkit group's job, and one made by a process
//! already in a job that allows breakaway, each attacked with a child that
//! asks to break away (`CREATE_BREAKAWAY_FROM_JOB`).

use std::io::Write;
use std::time::{Duration, Instant};

use pkit::{Group, Stdio};

use super::{assert_gone, gone, helper_args, me, ROLE};

/// The roles of the nested helpers.
pub(super) fn helper(role: &str) {
    match role {
        "nested" => runtime().block_on(nested()),
        "outer_job" => {
            let flags: u32 = std::env::var("PKIT_A2_FLAGS").unwrap().parse().unwrap();
            if let Err(e) = join_new_job(flags) {
                say(&format!("NO_OUTER_JOB {e}"));
                return;
            }
            runtime().block_on(breakaway_in_a_group());
        }
        "own_job_breakaway" => {
            // A child of the group making a job of its own that allows
            // breakaway (nested in the group's), then asking for one.
            use windows_sys::Win32::System::JobObjects::JOB_OBJECT_LIMIT_BREAKAWAY_OK;
            if let Err(e) = join_new_job(JOB_OBJECT_LIMIT_BREAKAWAY_OK) {
                say(&format!("REFUSED (no job of its own: {e})"));
                std::thread::sleep(Duration::from_secs(300));
            }
            helper("breakaway");
        }
        "breakaway" => {
            // Asks for its child to leave the job; names it, or the refusal.
            use std::os::windows::process::CommandExt;
            const CREATE_BREAKAWAY_FROM_JOB: u32 = 0x0100_0000;
            let spawned = std::process::Command::new(std::env::current_exe().unwrap())
                .args(helper_args())
                .env(ROLE, "sleep")
                .stdout(std::process::Stdio::null())
                .creation_flags(CREATE_BREAKAWAY_FROM_JOB)
                .spawn();
            match spawned {
                Ok(child) => say(&format!("GRANDCHILD {}", child.id())),
                Err(e) => say(&format!("REFUSED {e}")),
            }
            std::thread::sleep(Duration::from_secs(300));
        }
        other => panic!("unknown role {other}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One line on stdout, flushed.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// Polls `f` every 50 ms until it is true or a minute has passed.
async fn until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// A group of this process's own, with a child and a grandchild in it:
/// names their pids (`INNER a b`); with `PKIT_A2_MODE=kill_inner`, kills
/// that group and says when it is empty (`INNER_EMPTY`). Then sleeps.
async fn nested() {
    let inner = match Group::new() {
        Ok(g) => g,
        Err(e) => return say(&format!("FAILED group: {e}")),
    };
    let tree = me("fan")
        .env("PKIT_A2_WIDTH", "1")
        .env("PKIT_A2_DEPTH", "1")
        .stdout(Stdio::Null);
    let _p = match inner.start(&tree) {
        Ok(p) => p,
        Err(e) => return say(&format!("FAILED start: {e}")),
    };
    let mut pids = Vec::new();
    if !until(|| {
        pids = inner.pids().unwrap_or_default();
        pids.len() >= 2
    })
    .await
    {
        return say(&format!("FAILED the inner group holds {pids:?}"));
    }
    let named: Vec<String> = pids.iter().map(u32::to_string).collect();
    say(&format!("INNER {}", named.join(" ")));
    if std::env::var("PKIT_A2_MODE").as_deref() == Ok("kill_inner") {
        inner.kill().unwrap();
        if !until(|| pids.iter().all(|&p| gone(p))).await {
            return say("FAILED the inner group's kill left its processes");
        }
        say("INNER_EMPTY");
    }
    tokio::time::sleep(Duration::from_secs(300)).await;
}

/// Puts this process in a new job with `flags` (and `KILL_ON_JOB_CLOSE`),
/// whose handle is kept open until the process ends.
fn join_new_job(flags: u32) -> std::io::Result<()> {
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation,
        SetInformationJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    };
    use windows_sys::Win32::System::Threading::GetCurrentProcess;
    // SAFETY: an unnamed job, default security; the handle is leaked on
    // purpose (the job lives as long as this process).
    let job = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
    if job.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: all-zero is a valid record (no limits); flags set below.
    let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
    info.BasicLimitInformation.LimitFlags = flags | JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    // SAFETY: a live record of the size passed, the class it is.
    let set = unsafe {
        SetInformationJobObject(
            job,
            JobObjectExtendedLimitInformation,
            &info as *const _ as *const _,
            std::mem::size_of_val(&info) as u32,
        )
    };
    // SAFETY: the job handle and this process's pseudo handle.
    if set == 0 || unsafe { AssignProcessToJobObject(job, GetCurrentProcess()) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// In a pkit group, a child asks for a grandchild outside every job; the
/// group is killed; says `CONTAINED` when the grandchild (if one was
/// started) is gone with it, else `ESCAPED` (and ends it).
async fn breakaway_in_a_group() {
    let group = Group::new().unwrap();
    let mut p = group.start(&me("breakaway").stream_lines()).unwrap();
    let line = p
        .wait_for_line(
            |l| l.text.contains("GRANDCHILD ") || l.text.contains("REFUSED"),
            Duration::from_secs(120),
        )
        .await
        .unwrap();
    say(&format!("SAW {}", line.text));
    let grandchild: Option<u32> = line
        .text
        .split("GRANDCHILD ")
        .nth(1)
        .and_then(|p| p.trim().parse().ok());
    group.kill().unwrap();
    drop(p);
    drop(group);
    match grandchild {
        Some(pid) if !until(|| gone(pid)).await => {
            say(&format!("ESCAPED {pid}"));
            let _ = std::process::Command::new("taskkill")
                .args(["/F", "/PID", &pid.to_string()])
                .output();
        }
        _ => say("CONTAINED"),
    }
}

/// A pkit group made inside another's job: its processes are the outer
/// group's too (listed by it), and killing the outer group ends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_inside_a_group_dies_with_the_outer_one() {
    let outer = Group::new().unwrap();
    let mut p = outer.start(&me("nested").stream_lines()).unwrap();
    let line = p
        .wait_for_line(
            |l| l.text.contains("INNER ") || l.text.contains("FAILED"),
            Duration::from_secs(120),
        )
        .await
        .unwrap();
    // (The harness's own words may start the helper's first line.)
    let mut pids: Vec<u32> = match line.text.split_once("INNER ") {
        Some((_, rest)) => rest.split(' ').map(|p| p.parse().unwrap()).collect(),
        None => panic!("the nested group: {}", line.text),
    };
    pids.push(p.pid());
    let listed = outer.pids().unwrap();
    assert!(
        pids.iter().all(|p| listed.contains(p)),
        "{pids:?} vs {listed:?}"
    );
    outer.kill().unwrap();
    assert_gone(&pids, "the nested group's tree after the outer kill");
    drop(p);
}

/// The same, the inner group killed by its owner: its processes end, the
/// owner (in the outer group) runs on until the outer group is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inner_groups_kill_spares_its_owner_in_the_outer_group() {
    let outer = Group::new().unwrap();
    let mut p = outer
        .start(
            &me("nested")
                .env("PKIT_A2_MODE", "kill_inner")
                .stream_lines(),
        )
        .unwrap();
    let owner = p.pid();
    let line = p
        .wait_for_line(
            |l| l.text.contains("INNER_EMPTY") || l.text.contains("FAILED"),
            Duration::from_secs(180),
        )
        .await
        .unwrap();
    assert!(line.text.ends_with("INNER_EMPTY"), "{}", line.text);
    assert!(!gone(owner), "the inner group's kill ended its owner");
    drop(p);
    drop(outer);
    assert_gone(&[owner], "the owner after the outer group's drop");
}

/// pkit in a process already in a job that lets its processes break away
/// (with `SILENT_BREAKAWAY_OK`, whose children leave it unasked, or with
/// `BREAKAWAY_OK` alone, whose children stay and nest pkit's job in it):
/// a child in the group asking for a breakaway is refused, or its child
/// still dies with the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breakaway_is_contained_when_the_owners_job_allows_one() {
    use windows_sys::Win32::System::JobObjects::{
        JOB_OBJECT_LIMIT_BREAKAWAY_OK, JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK,
    };
    for flags in [
        JOB_OBJECT_LIMIT_BREAKAWAY_OK,
        JOB_OBJECT_LIMIT_BREAKAWAY_OK | JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK,
    ] {
        // Started by std, so that it is in no job of pkit's.
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(helper_args())
            .env(ROLE, "outer_job")
            .env("PKIT_A2_FLAGS", flags.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let waited = tokio::task::spawn_blocking(move || child.wait_with_output());
        let out = match tokio::time::timeout(Duration::from_secs(300), waited).await {
            Ok(done) => done.unwrap().unwrap(),
            Err(_) => {
                let _ = std::process::Command::new("taskkill")
                    .args(["/F", "/T", "/PID", &pid.to_string()])
                    .output();
                panic!("flags {flags:#x}: the owner never finished");
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("flags {flags:#x}: {text}");
        assert!(
            text.lines().any(|l| l.ends_with("CONTAINED")),
            "flags {flags:#x}: {text}"
        );
    }
}

/// A child of the group that puts itself in a job of its own allowing
/// breakaway (nested in the group's job), then starts a grandchild with
/// `CREATE_BREAKAWAY_FROM_JOB`: refused, or the grandchild dies with the
/// group all the same (the group's job, above, allows no breakaway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_own_breakaway_job_does_not_let_it_out_of_the_group() {
    let group = Group::new().unwrap();
    let mut p = group
        .start(&me("own_job_breakaway").stream_lines())
        .unwrap();
    let child = p.pid();
    let line = p
        .wait_for_line(
            |l| l.text.contains("GRANDCHILD ") || l.text.contains("REFUSED"),
            Duration::from_secs(120),
        )
        .await
        .unwrap();
    eprintln!("the child's own job: {}", line.text);
    let grandchild: Option<u32> = line
        .text
        .split("GRANDCHILD ")
        .nth(1)
        .and_then(|p| p.trim().parse().ok());
    if let Some(pid) = grandchild {
        let listed = group.pids().unwrap();
        assert!(listed.contains(&pid), "out of the group: {pid} {listed:?}");
    }
    group.kill().unwrap();
    drop(p);
    drop(group);
    let mut pids = vec![child];
    pids.extend(grandchild);
    assert_gone(&pids, &format!("the breakaway ({})", line.text));
}
