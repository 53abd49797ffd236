//! Reading a remote command's stdout and stderr apart, without deadlock and without trusting
//! the host to stop talking.
//!
//! Both streams share one channel window: a reader that waits on stdout while the command
//! fills stderr stalls both sides. So the session goes non-blocking while a command runs and
//! the two streams are read in turn; when neither has data we wait for the socket to become
//! readable (a `peek` on a second handle of the session's socket, switched to blocking for
//! the wait only) instead of spinning. Each stream is capped: a host that prints without end
//! costs at most [`OUTPUT_LIMIT`] bytes per stream before we stop and close the channel.
//! Silence longer than the session's I/O timeout ends the wait.

use ssh2::{BlockDirections, Channel, Session};
use std::io::{self, ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Most bytes kept from each of stdout and stderr.
pub(super) const OUTPUT_LIMIT: usize = 1 << 20;

/// Why draining stopped early.
#[derive(Debug)]
pub(super) enum DrainError {
    /// The stream (`stdout` or `stderr`) went over [`OUTPUT_LIMIT`].
    TooLarge(&'static str),
    /// Nothing arrived for the whole I/O timeout.
    Idle,
    /// The host closed the connection.
    Closed,
    Io(io::Error),
}

/// Everything the command printed, until end of file on both streams.
pub(super) fn drain(
    session: &Session,
    socket: &TcpStream,
    channel: &Channel,
    idle_limit: Duration,
) -> Result<(Vec<u8>, Vec<u8>), DrainError> {
    session.set_blocking(false);
    let result = drain_nonblocking(session, socket, channel, idle_limit);
    session.set_blocking(true);
    result
}

/// What one read of a stream gave.
enum Step {
    Data,
    Nothing,
    End,
}

fn drain_nonblocking(
    session: &Session,
    socket: &TcpStream,
    channel: &Channel,
    idle_limit: Duration,
) -> Result<(Vec<u8>, Vec<u8>), DrainError> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut out_stream = channel.stream(0);
    let mut err_stream = channel.stderr();
    let mut buf = vec![0u8; 32 * 1024];
    let mut last_data = Instant::now();
    loop {
        let a = pump(&mut out_stream, &mut buf, &mut stdout, "stdout")?;
        let b = pump(&mut err_stream, &mut buf, &mut stderr, "stderr")?;
        match (a, b) {
            (Step::End, Step::End) => return Ok((stdout, stderr)),
            (Step::Data, _) | (_, Step::Data) => last_data = Instant::now(),
            _ => {
                let left = idle_limit.saturating_sub(last_data.elapsed());
                if left.is_zero() {
                    return Err(DrainError::Idle);
                }
                wait_for_input(session, socket, left)?;
            }
        }
    }
}

/// Read once from the stream `name` into what is `kept` of it, at most [`OUTPUT_LIMIT`].
fn pump(
    stream: &mut impl Read,
    buf: &mut [u8],
    kept: &mut Vec<u8>,
    name: &'static str,
) -> Result<Step, DrainError> {
    match stream.read(buf) {
        Ok(0) => Ok(Step::End),
        Ok(n) if kept.len() + n > OUTPUT_LIMIT => Err(DrainError::TooLarge(name)),
        Ok(n) => {
            kept.extend_from_slice(&buf[..n]);
            Ok(Step::Data)
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(Step::Nothing),
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(Step::Nothing),
        Err(e) => Err(DrainError::Io(e)),
    }
}

/// Block until the socket has input (or `limit` passes). libssh2 keeps the socket
/// non-blocking, so it is made blocking for the wait and put back before libssh2 runs again.
fn wait_for_input(
    session: &Session,
    socket: &TcpStream,
    limit: Duration,
) -> Result<(), DrainError> {
    if matches!(
        session.block_directions(),
        BlockDirections::Outbound | BlockDirections::Both
    ) {
        // libssh2 waits to send (a window adjustment): rare and short.
        std::thread::sleep(Duration::from_millis(5).min(limit));
        return Ok(());
    }
    socket
        .set_read_timeout(Some(limit.max(Duration::from_millis(1))))
        .map_err(DrainError::Io)?;
    socket.set_nonblocking(false).map_err(DrainError::Io)?;
    let peeked = socket.peek(&mut [0u8; 1]);
    socket.set_nonblocking(true).map_err(DrainError::Io)?;
    match peeked {
        Ok(0) => Err(DrainError::Closed),
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(()),
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(DrainError::Io(e)),
    }
}

/// The end of a command's stderr for an error message: the last lines, at most ~300 chars.
pub(super) fn stderr_tail(stderr: &str) -> String {
    const MAX: usize = 300;
    let trimmed = stderr.trim();
    let mut tail = String::new();
    for line in trimmed
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let candidate = if tail.is_empty() {
            line.to_string()
        } else {
            format!("{line} / {tail}")
        };
        if candidate.chars().count() > MAX {
            if tail.is_empty() {
                // One long line: keep its end.
                let skip = line.chars().count() - MAX;
                tail = format!("...{}", line.chars().skip(skip).collect::<String>());
            }
            break;
        }
        tail = candidate;
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_the_last_lines_within_bounds() {
        assert_eq!(stderr_tail("\n  a\nb \n\n"), "a / b");
        let many: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let tail = stderr_tail(&many);
        assert!(tail.ends_with("line 199"), "{tail}");
        assert!(tail.chars().count() <= 300);
        let long = "x".repeat(1000) + "END";
        let tail = stderr_tail(&long);
        assert!(tail.starts_with("...") && tail.ends_with("END"));
        assert!(tail.chars().count() <= 303);
    }
}
