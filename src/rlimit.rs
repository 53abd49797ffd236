//! The open-file limit. Each host being worked on holds a TCP socket (and a second handle on
//! it) plus the ISO open for reading, so `--jobs 500` needs more descriptors than the usual
//! soft limit of 1024. At start the soft limit is raised to the hard limit, which any
//! process may do; when that fails the old limit simply stays.

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force.
pub fn raise_open_files() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim = raised;
        }
    }
    Ok(lim.rlim_cur)
}
