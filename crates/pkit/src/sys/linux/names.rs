//! The names of the cgroup directories pkit makes for its groups, read by
//! the stale sweep (whose owner is dead?) and by the signal passes over a
//! subtree (is this sub-cgroup a nested pkit's group?).

/// The name prefix of every cgroup pkit makes: `pkit-<owner pid>-<seq>`,
/// or `pkit-<owner pid>-<seq>-<name>` for a named group.
pub(crate) const NAME_PREFIX: &str = "pkit-";

/// The owner pid in a `pkit-<pid>-<seq>` name, or in a named group's
/// `pkit-<pid>-<seq>-<name>` (the name, whatever it is, is ignored).
pub(crate) fn owner_of(name: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX.as_bytes())?;
    let dash = rest.iter().position(|&b| b == b'-')?;
    let (pid, seq) = (&rest[..dash], &rest[dash + 1..]);
    let seq = match seq.iter().position(|&b| b == b'-') {
        Some(end) if end + 1 < seq.len() => &seq[..end],
        Some(_) => return None,
        None => seq,
    };
    if pid.is_empty() || seq.is_empty() || !seq.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}
