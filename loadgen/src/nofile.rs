//! The open-files limit: every connection is a file descriptor, so a
//! load of thousands of WebSockets needs more than the usual soft limit
//! of 1024.
//!
//! [`raise_to_hard_limit`] lifts the soft `RLIMIT_NOFILE` to the hard limit
//! (which an unprivileged process may always do) at start, and the caller
//! logs the value, so a run that still hits `EMFILE` says why.

use std::io;

/// The open-files limit before and after [`raise_to_hard_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit found at start.
    pub before: u64,
    /// The soft limit now (the hard limit, unless raising it failed).
    pub now: u64,
    /// The hard limit.
    pub hard: u64,
}

impl std::fmt::Display for NofileLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.now == self.before {
            write!(f, "open files limit {} (hard {})", self.now, self.hard)
        } else {
            write!(
                f,
                "open files limit {} (raised from {} to the hard limit)",
                self.now, self.before
            )
        }
    }
}

fn get() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit. Child
/// processes started afterwards inherit the raised limit.
pub fn raise_to_hard_limit() -> io::Result<NofileLimit> {
    let limit = get()?;
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one valid `rlimit`; a soft limit equal to
        // the hard limit is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let now = get()?;
    Ok(NofileLimit {
        before,
        now: now.rlim_cur,
        hard: now.rlim_max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_reaches_the_hard_limit() {
        let limit = raise_to_hard_limit().unwrap();
        assert_eq!(limit.now, limit.hard);
        assert!(limit.now >= limit.before);
        assert_eq!(get().unwrap().rlim_cur, limit.hard);
        assert!(limit.to_string().contains(&limit.now.to_string()));
    }
}
