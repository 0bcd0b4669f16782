//! Starving this process of file descriptors, for the tests of what pkit
//! does in a moment without one (each such test is a binary of its own:
//! the limit is the whole process's).

use std::os::fd::OwnedFd;

/// Sets this process's soft limit on descriptors (at most the hard one);
/// returns the old soft limit.
pub fn set_nofile(soft: libc::rlim_t) -> libc::rlim_t {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid structs of ours.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let new = libc::rlimit {
            rlim_cur: soft.min(old.rlim_max),
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &new), 0);
    }
    old.rlim_cur
}

/// Opens `/dev/null` until no descriptor is left under the soft limit.
pub fn fill() -> Vec<OwnedFd> {
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => held.push(OwnedFd::from(f)),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                return held;
            }
        }
    }
}

/// The highest descriptor this process has open.
pub fn highest_fd() -> libc::rlim_t {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::rlim_t>().ok())
        .max()
        .unwrap_or(2)
}
