//! The open-file limit. Each host being worked on holds a TCP socket (and a second handle on
//! it) plus the ISO open for reading, so `--jobs 500` needs more descriptors than the usual
//! soft limit of 1024. At start the soft limit is raised to the hard limit, which any
//! process may do; when that fails the old limit simply stays.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force.
pub fn raise_open_files() -> std::io::Result<u64> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    if current != maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: maximum,
                maximum,
            },
        )?;
    }
    Ok(maximum.unwrap_or(u64::MAX))
}
