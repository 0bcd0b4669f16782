//! Checks of the raw command line that clap can't make.

use std::ffi::OsString;

use clap::CommandFactory;

use crate::args::Cli;
use crate::duration;

/// The duration flags whose value a unit word may wrongly follow.
const DURATION_FLAGS: [&str; 4] = ["--timeout", "--kill-after", "--grace", "-k"];

/// Unit words that, right after a bare number, are a misplaced unit rather
/// than a program.
const UNIT_WORDS: [&str; 14] = [
    "ms", "s", "m", "h", "d", "sec", "secs", "second", "seconds", "min", "mins", "minutes",
    "hours", "days",
];

/// Checks clap can't make: `--timeout 2 s` would otherwise run a program
/// named `s`. Refused, with the fix; `--timeout 2 -- s` still runs `s`.
/// Only pkit's own options are read: the walk ends at `--` or at the first
/// word that is neither an option nor an option's value (PROGRAM), as
/// everything from PROGRAM on is the program's (`pkit run printf %s
/// --timeout 5 s` prints those three words).
pub fn check_raw(args: impl Iterator<Item = OsString>) -> Result<(), String> {
    let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    let root = Cli::command();
    // The subcommand: the first word that is no option of the root's
    // (`--help`, `--version`; none takes a value).
    let Some(at) = args.iter().position(|a| !a.starts_with('-')) else {
        return Ok(());
    };
    let Some(sub) = root.find_subcommand(&args[at]) else {
        return Ok(());
    };
    let mut i = at + 1;
    while i < args.len() {
        let a = &args[i];
        if a == "--" || !a.starts_with('-') || a == "-" {
            break;
        }
        // How many of the following words are this option's value.
        let (flag, value, next, skip) = if let Some(long) = a.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, v)) => (format!("--{name}"), Some(v), args.get(i + 1), 0),
                None if takes_value(sub, Opt::Long(long)) => (
                    a.clone(),
                    args.get(i + 1).map(String::as_str),
                    args.get(i + 2),
                    1,
                ),
                None => (a.clone(), None, None, 0),
            }
        } else {
            // A cluster of short options (`-qk 5`); the first that takes a
            // value takes the rest of the word, or else the next word.
            let chars: Vec<char> = a[1..].chars().collect();
            let mut found = None;
            for (k, &c) in chars.iter().enumerate() {
                if takes_value(sub, Opt::Short(c)) {
                    found = Some((c, k));
                    break;
                }
            }
            match found {
                Some((c, k)) if k + 1 < chars.len() => {
                    let rest: String = chars[k + 1..].iter().collect();
                    let rest = rest.strip_prefix('=').unwrap_or(&rest).to_string();
                    let n = args.get(i + 1);
                    check(&format!("-{c}"), Some(&rest), n)?;
                    i += 1;
                    continue;
                }
                Some((c, _)) => (
                    format!("-{c}"),
                    args.get(i + 1).map(String::as_str),
                    args.get(i + 2),
                    1,
                ),
                None => (a.clone(), None, None, 0),
            }
        };
        check(&flag, value, next)?;
        i += 1 + skip;
    }
    Ok(())
}

/// An option named on the command line.
enum Opt<'a> {
    Long(&'a str),
    Short(char),
}

/// Whether `sub`'s option `opt` takes a value (as a word of its own when
/// not attached).
fn takes_value(sub: &clap::Command, opt: Opt) -> bool {
    sub.get_arguments().any(|arg| {
        let named = match opt {
            Opt::Long(l) => {
                arg.get_long() == Some(l) || arg.get_all_aliases().is_some_and(|a| a.contains(&l))
            }
            Opt::Short(c) => {
                arg.get_short() == Some(c)
                    || arg.get_all_short_aliases().is_some_and(|a| a.contains(&c))
            }
        };
        named && arg.get_action().takes_values()
    })
}

/// Refuses `flag value next` when `flag` is a duration's, `value` a bare
/// number and `next` (which would be PROGRAM) a unit word.
fn check(flag: &str, value: Option<&str>, next: Option<&String>) -> Result<(), String> {
    if !DURATION_FLAGS.contains(&flag) {
        return Ok(());
    }
    if let (Some(v), Some(n)) = (value, next) {
        if duration::is_unitless(v) && UNIT_WORDS.contains(&n.as_str()) {
            return Err(format!(
                "`{flag} {v} {n}`: write the unit attached ({v}{u}); to run a program \
                 named `{n}`, put `--` before it",
                u = n.chars().next().unwrap_or('s')
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_raw;

    fn check(args: &[&str]) -> Result<(), String> {
        check_raw(args.iter().map(Into::into))
    }

    #[test]
    fn unit_words_after_a_bare_number() {
        assert!(check(&["run", "--timeout", "2", "s"]).is_err());
        assert!(check(&["run", "--timeout=2", "s"]).is_err());
        assert!(check(&["run", "-k", "1", "seconds", "x"]).is_err());
        assert!(check(&["run", "-qk", "1", "s"]).is_err());
        assert!(check(&["run", "-k1", "s"]).is_err());
        assert!(check(&["run", "-q", "--grace", "1", "m"]).is_err());
        assert!(check(&["supervise", "-k", "1", "m"]).is_err());
        assert!(check(&["run", "--timeout", "2", "--", "s"]).is_ok());
        assert!(check(&["run", "--timeout", "2s", "s"]).is_ok());
        assert!(check(&["run", "--timeout", "2", "sleep", "1"]).is_ok());
    }

    #[test]
    fn what_follows_program_is_not_read() {
        assert!(check(&["run", "-q", "printf", "%s", "--timeout", "5", "s"]).is_ok());
        assert!(check(&["run", "--name", "x", "prog", "-k", "1", "m"]).is_ok());
        assert!(check(&["supervise", "-q", "printf", "-k", "1", "m"]).is_ok());
        assert!(check(&["run", "-E", "A=1", "prog", "--timeout=2", "s"]).is_ok());
    }
}
