//! Waiting for many processes at once through their pidfds: one epoll set
//! holding them all, itself registered with the tokio reactor, so a batch
//! of exits costs one wake-up rather than one per process.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;

use rustix::event::epoll;

/// Waits until every process behind `pidfds` has exited (zombies count),
/// or `deadline`; returns how many are still running.
pub(crate) async fn wait_all(
    pidfds: &[OwnedFd],
    deadline: tokio::time::Instant,
) -> io::Result<usize> {
    let set = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let mut left = 0;
    for (i, fd) in pidfds.iter().enumerate() {
        // Those already gone need no registration.
        if super::child::pidfd_exited_now(fd) {
            continue;
        }
        epoll::add(
            &set,
            fd,
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN,
        )?;
        left += 1;
    }
    if left == 0 {
        return Ok(0);
    }
    let set = super::register(set, tokio::io::Interest::READABLE)?;
    loop {
        left -= drain(set.get_ref(), pidfds)?;
        if left == 0 {
            return Ok(0);
        }
        match tokio::time::timeout_at(deadline, set.readable()).await {
            Ok(guard) => guard?.clear_ready(),
            // The deadline: what is still registered is still running
            // (asked once more, directly).
            Err(_) => return Ok(left - drain(set.get_ref(), pidfds)?),
        }
    }
}

/// Takes every exit the set reports now, removing each from the set
/// (level-triggered: an exited pidfd stays readable); how many.
fn drain(set: &OwnedFd, pidfds: &[OwnedFd]) -> io::Result<usize> {
    let mut events = [const { MaybeUninit::<epoll::Event>::uninit() }; 64];
    let mut taken = 0;
    loop {
        let (ready, _) = epoll::wait(set, &mut events, Some(&Default::default()))?;
        if ready.is_empty() {
            return Ok(taken);
        }
        for ev in ready.iter() {
            epoll::delete(set, &pidfds[ev.data.u64() as usize])?;
            taken += 1;
        }
    }
}
