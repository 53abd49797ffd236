//! How a command ends, as a value: each command returns an [`ExitStatus`] and `main` maps it
//! to the process's exit code. An `Err` is a usage or input error (exit 2, nothing done).

use std::process::ExitCode;

/// The end of a command that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum ExitStatus {
    /// Everything asked for was done (exit 0).
    Success,
    /// Some of the work failed and the rest was done (exit 1); the line says which.
    Partial(String),
}

/// The exit code of a usage or input error: bad flags, a bad file, nothing was done.
pub const USAGE: u8 = 2;

impl ExitStatus {
    pub fn code(&self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Partial(_) => 1,
        }
    }

    /// The one `error:` line a partial failure prints, if any.
    pub fn message(&self) -> Option<&str> {
        match self {
            ExitStatus::Success => None,
            ExitStatus::Partial(m) => Some(m),
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_decide_the_status() {
        assert_eq!(ExitStatus::Success.code(), 0);
        assert_eq!(ExitStatus::Success.message(), None);
        let partial = ExitStatus::Partial("a; b".into());
        assert_eq!(partial.code(), 1);
        assert_eq!(partial.message(), Some("a; b"));
    }
}
