//! Checking a CPU list (`0-3,5`) before the kernel sees it.

/// The most CPUs a Linux kernel is built for (`NR_CPUS` at most 8192):
/// a CPU number at or above it is on no machine.
const MAX_CPUS: u32 = 8192;

/// Checks a CPU list in the kernel's format (`N`, `N-M`, joined by
/// commas): well formed, every range in order, every CPU below
/// [`MAX_CPUS`] and, on Linux, one this host can have
/// (`/sys/devices/system/cpu/possible`), so a CPU the kernel would refuse
/// with a bare "Numerical result out of range" is named here instead.
pub(crate) fn check(list: &str) -> Result<(), String> {
    let highest = highest(list)?;
    if highest >= MAX_CPUS {
        return Err(format!(
            "CPU {highest} is out of range: CPUs are numbered from 0 to {} at most (the kernel's largest CPU count is {MAX_CPUS})",
            MAX_CPUS - 1
        ));
    }
    #[cfg(target_os = "linux")]
    if let Some((last, possible)) = host_last_cpu() {
        if highest > last {
            return Err(format!(
                "CPU {highest} is not on this host (its CPUs are {possible})"
            ));
        }
    }
    Ok(())
}

/// The highest CPU a well-formed CPU list names (every range in order).
fn highest(list: &str) -> Result<u32, String> {
    let bad = || format!("{list:?} is not a CPU list such as \"0\", \"0-3\" or \"0,2-3\"");
    if list.trim().is_empty() {
        return Err("the CPU list is empty".into());
    }
    let mut highest = 0;
    for part in list.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        // Digits only: `u32::from_str` also takes a leading `+`, which
        // the kernel refuses ("+0": a bare "Invalid argument").
        let cpu = |s: &str| match s.bytes().all(|c| c.is_ascii_digit()) {
            true => s.parse::<u32>().map_err(|_| bad()),
            false => Err(bad()),
        };
        let (a, b) = (cpu(a)?, cpu(b)?);
        if a > b {
            return Err(bad());
        }
        highest = highest.max(b);
    }
    Ok(highest)
}

/// The highest CPU number this host can have, and its CPU list as the
/// kernel writes it; `None` when that can't be read.
#[cfg(target_os = "linux")]
fn host_last_cpu() -> Option<(u32, String)> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible").ok()?;
    let possible = text.trim().to_string();
    Some((highest(&possible).ok()?, possible))
}

#[cfg(test)]
mod tests {
    use super::{check, MAX_CPUS};

    #[test]
    fn lists() {
        assert_eq!(check("0"), Ok(()));
        assert_eq!(check("0-1"), Ok(()));
        assert_eq!(check(" 0,0-0 "), Ok(()));
        for bad in [
            "",
            " ",
            "x",
            "1-0",
            "0-",
            "-1",
            "0,,1",
            "4294967296",
            "+0",
            "0-+1",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        let err = check("0-99999999").unwrap_err();
        assert!(err.contains("CPU 99999999 is out of range"), "{err}");
        let err = check(&format!("0,{MAX_CPUS}")).unwrap_err();
        assert!(err.contains("out of range"), "{err}");
    }

    /// A CPU the kernel could have but this host can't is named, with the
    /// host's CPUs.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_cpu_the_host_does_not_have() {
        let (last, possible) = super::host_last_cpu().expect("/sys/devices/system/cpu/possible");
        assert_eq!(check(&format!("0-{last}")), Ok(()));
        if last + 1 < MAX_CPUS {
            let err = check(&format!("{}", last + 1)).unwrap_err();
            assert!(err.contains("is not on this host"), "{err}");
            assert!(err.contains(&possible), "{err}");
        }
    }
}
