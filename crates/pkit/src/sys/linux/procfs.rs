//! Reading `/proc`: process-group membership and liveness.

use std::io;

/// State and process group of `pid` from `/proc/<pid>/stat`.
pub(crate) fn stat(pid: i32) -> io::Result<(char, i32)> {
    let text = std::fs::read(format!("/proc/{pid}/stat"))?;
    // "pid (comm) S ppid pgrp ..." -- comm may hold spaces and parens.
    let close = text
        .iter()
        .rposition(|&b| b == b')')
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc stat"))?;
    let rest = String::from_utf8_lossy(&text[close + 1..]);
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
    let _ppid = fields.next();
    let pgrp = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((state, pgrp))
}

/// Live (non-zombie) processes whose process group is `pgid`.
pub(crate) fn pgroup_members(pgid: i32) -> io::Result<Vec<i32>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok((state, pgrp)) = stat(pid) {
            if pgrp == pgid && state != 'Z' && state != 'X' {
                out.push(pid);
            }
        }
    }
    Ok(out)
}

/// The command name of `pid` (`/proc/<pid>/comm`), when readable.
pub(crate) fn comm(pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end_matches('\n').to_string())
}
