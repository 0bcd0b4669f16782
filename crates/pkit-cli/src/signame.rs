//! Signal names and numbers (Linux), as `kill -l` spells them.

const NAMES: [(&str, i32); 31] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// `SIGTERM` for 15; `None` for a number without a name (real-time ones).
pub fn name(signo: i32) -> Option<&'static str> {
    const FULL: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    (1..=31).contains(&signo).then(|| FULL[signo as usize - 1])
}

/// `SIGTERM` or `signal 40`.
pub fn display(signo: i32) -> String {
    name(signo).map_or_else(|| format!("signal {signo}"), str::to_string)
}

/// Parses `TERM`, `SIGTERM`, `term` or `15` (as timeout(1)'s `-s`).
pub fn parse(text: &str) -> Result<i32, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(format!("{text:?}: signal numbers are 1 to 64"));
    }
    let upper = t.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(name, _)| *name == bare) {
        return Ok(n);
    }
    match bare {
        "IOT" => Ok(6),
        "POLL" => Ok(29),
        "CLD" => Ok(17),
        _ => Err(format!(
            "{text:?} is not a signal (try TERM, INT, KILL or 15)"
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_and_numbers() {
        assert_eq!(super::parse("TERM"), Ok(15));
        assert_eq!(super::parse("sigkill"), Ok(9));
        assert_eq!(super::parse("9"), Ok(9));
        assert_eq!(super::parse("usr1"), Ok(10));
        assert!(super::parse("NOPE").is_err());
        assert!(super::parse("0").is_err());
        assert_eq!(super::name(15), Some("SIGTERM"));
        assert_eq!(super::name(28), Some("SIGWINCH"));
        assert_eq!(super::name(40), None);
        assert_eq!(super::display(40), "signal 40");
    }
}
