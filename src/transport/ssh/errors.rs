//! libssh2's errors, classified: time-outs and lost links are transient, the rest final;
//! and the TCP state that tells a reset from a close.

use crate::transport::TransportError;
use ssh2::ErrorCode;
use std::io::{self, ErrorKind};
use std::net::TcpStream;

// libssh2 error codes (libssh2.h, libssh2_sftp.h) that decide how an error is reported.
pub(super) const LIBSSH2_ERROR_SOCKET_NONE: i32 = -1;
pub(super) const LIBSSH2_ERROR_BANNER_RECV: i32 = -2;
pub(super) const LIBSSH2_ERROR_BANNER_SEND: i32 = -3;
pub(super) const LIBSSH2_ERROR_SOCKET_SEND: i32 = -7;
pub(super) const LIBSSH2_ERROR_TIMEOUT: i32 = -9;
pub(super) const LIBSSH2_ERROR_SOCKET_DISCONNECT: i32 = -13;
pub(super) const LIBSSH2_ERROR_FILE: i32 = -16;
pub(super) const LIBSSH2_ERROR_SOCKET_TIMEOUT: i32 = -30;
pub(super) const LIBSSH2_ERROR_SOCKET_RECV: i32 = -43;
pub(super) const LIBSSH2_FX_NO_SUCH_FILE: i32 = 2;
pub(super) const LIBSSH2_FX_OP_UNSUPPORTED: i32 = 8;
pub(super) const LIBSSH2_FX_NO_SUCH_PATH: i32 = 10;

/// A libssh2 error as a transport error: time-outs and lost links are transient.
pub(super) fn classify(host: &str, what: &str, err: ssh2::Error) -> TransportError {
    match err.code() {
        ErrorCode::Session(code) if is_timeout(code) => TransportError::Timeout {
            host: host.to_string(),
            during: format!("during {what}"),
        },
        ErrorCode::Session(code) if is_link_error(code) => TransportError::Lost {
            host: host.to_string(),
            during: format!("during {what}"),
            reason: err.message().to_string(),
        },
        _ => TransportError::io(host, what, err.message()),
    }
}

pub(super) fn io_error(host: &str, what: &str, err: io::Error) -> TransportError {
    if err.kind() == ErrorKind::TimedOut {
        return TransportError::Timeout {
            host: host.to_string(),
            during: format!("during {what}"),
        };
    }
    TransportError::io(host, what, err)
}

// Linux TCP states (include/net/tcp_states.h): a reset leaves CLOSE, a FIN CLOSE_WAIT.
pub(super) const TCP_CLOSE: u8 = 7;
pub(super) const TCP_CLOSE_WAIT: u8 = 8;

/// The socket's TCP state (`tcpi_state`, the first byte of `struct tcp_info`).
pub(super) fn tcp_state(socket: &TcpStream) -> Option<u8> {
    use std::os::fd::AsRawFd;
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, a buffer we own.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0 && len > 0).then_some(info[0])
}

pub(super) fn is_timeout(code: i32) -> bool {
    matches!(code, LIBSSH2_ERROR_TIMEOUT | LIBSSH2_ERROR_SOCKET_TIMEOUT)
}

pub(super) fn is_link_error(code: i32) -> bool {
    matches!(
        code,
        LIBSSH2_ERROR_SOCKET_NONE
            | LIBSSH2_ERROR_BANNER_RECV
            | LIBSSH2_ERROR_BANNER_SEND
            | LIBSSH2_ERROR_SOCKET_SEND
            | LIBSSH2_ERROR_SOCKET_DISCONNECT
            | LIBSSH2_ERROR_SOCKET_RECV
    )
}

pub(super) fn is_not_found(err: &ssh2::Error) -> bool {
    matches!(
        err.code(),
        ErrorCode::SFTP(LIBSSH2_FX_NO_SUCH_FILE | LIBSSH2_FX_NO_SUCH_PATH)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A socket whose peer goes away by `end`, once the kernel has seen it.
    fn state_after(end: impl FnOnce(TcpStream)) -> Option<u8> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert_eq!(tcp_state(&client), Some(1), "ESTABLISHED first");
        end(server);
        for _ in 0..200 {
            match tcp_state(&client) {
                Some(1) => std::thread::sleep(Duration::from_millis(5)),
                other => return other,
            }
        }
        tcp_state(&client)
    }

    #[test]
    fn a_lost_link_tells_a_reset_from_a_close() {
        assert_eq!(state_after(drop), Some(TCP_CLOSE_WAIT));
        let reset = |server: TcpStream| {
            // SO_LINGER 0 makes close send a reset.
            rustix::net::sockopt::set_socket_linger(&server, Some(Duration::ZERO)).unwrap();
        };
        assert_eq!(state_after(reset), Some(TCP_CLOSE));
    }
}
