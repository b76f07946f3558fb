//! The few epoll calls the loop reads need: one instance, level-triggered readability, and a
//! look at what is ready without waiting. Elsewhere than Linux and Android every call fails
//! (`Unsupported`): the loop reads are then off, and runtime threads read the connections.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A new epoll instance (close-on-exec).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn create() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 with a valid flag; the descriptor returned is ours alone.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: epoll_create1 succeeded.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Watches `fd` (which the caller keeps open until `remove`) for readability, level-triggered,
/// under `token`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn add(epoll: &OwnedFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
        u64: token,
    };
    // SAFETY: a valid epoll descriptor, a descriptor the caller keeps open, a valid event.
    check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) })
}

/// Stops watching `fd` (still open).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn remove(epoll: &OwnedFd, fd: RawFd) -> io::Result<()> {
    let mut event = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: a valid epoll descriptor and event; `fd` is open.
    check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut event) })
}

/// The tokens of up to `tokens.len()` ready descriptors, without waiting; how many.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn ready(epoll: &OwnedFd, tokens: &mut [u64; 16]) -> usize {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
    // SAFETY: a valid epoll descriptor and a buffer of `events.len()` entries; no wait.
    let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), 16, 0) };
    let n = n.max(0) as usize;
    for (token, event) in tokens.iter_mut().zip(&events[..n]) {
        *token = event.u64;
    }
    n
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn check(result: libc::c_int) -> io::Result<()> {
    match result {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn create() -> io::Result<OwnedFd> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn add(_: &OwnedFd, _: RawFd, _: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn remove(_: &OwnedFd, _: RawFd) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn ready(_: &OwnedFd, _: &mut [u64; 16]) -> usize {
    0
}
