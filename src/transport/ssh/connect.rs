//! Reaching a host: TCP within the connect time-out, socket options, cipher preference,
//! and authentication by key or password.

use super::errors::{classify, io_error, is_link_error, is_timeout, LIBSSH2_ERROR_FILE};
use super::{SshAuth, SshConfig};
use crate::secret::Secret;
use crate::transport::TransportError;
use ssh2::{ErrorCode, Session};
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Refuse early, before any network, when the key file cannot be read.
pub(super) fn check_identity(config: &SshConfig) -> Result<(), TransportError> {
    if let SshAuth::Key { path, .. } = &config.auth {
        std::fs::File::open(path).map_err(|e| {
            TransportError::io(&config.name, format!("identity {}", path.display()), e)
        })?;
    }
    Ok(())
}

/// TCP to the first address that answers, all within `connect_timeout`.
pub(super) fn open_socket(config: &SshConfig) -> Result<TcpStream, TransportError> {
    let host = config.address.trim_start_matches('[').trim_end_matches(']');
    let connect_error = |reason: String| TransportError::Connect {
        host: config.name.clone(),
        reason,
    };
    let addrs: Vec<SocketAddr> = (host, config.port)
        .to_socket_addrs()
        .map_err(|e| connect_error(format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(connect_error(format!("{host} resolves to no address")));
    }
    let deadline = Instant::now() + config.connect_timeout;
    let mut last: Option<(SocketAddr, io::Error)> = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return configure(stream, config),
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) if !matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
            connect_error(format!("{addr}: {e}"))
        }
        _ => TransportError::Timeout {
            host: config.name.clone(),
            during: format!(
                "connecting to {host} port {} ({} s)",
                config.port,
                config.connect_timeout.as_secs_f32()
            ),
        },
    })
}

fn configure(stream: TcpStream, config: &SshConfig) -> Result<TcpStream, TransportError> {
    let timeout = Some(config.io_timeout.max(Duration::from_millis(1)));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| io_error(&config.name, "the TCP socket", e))?;
    Ok(stream)
}

pub(super) fn authenticate(session: &Session, config: &SshConfig) -> Result<(), TransportError> {
    let (result, method) = match &config.auth {
        SshAuth::Key { path, passphrase } => (
            session.userauth_pubkey_file(
                &config.user,
                None,
                path,
                passphrase.as_ref().map(Secret::expose),
            ),
            format!("key {}", path.display()),
        ),
        SshAuth::Password(password) => (
            session.userauth_password(&config.user, password.expose()),
            "password".to_string(),
        ),
    };
    let refused = |method: String| TransportError::Auth {
        host: config.name.clone(),
        user: config.user.clone(),
        method,
    };
    match result {
        Ok(()) if session.authenticated() => Ok(()),
        Ok(()) => Err(refused(method)),
        Err(e) => match e.code() {
            ErrorCode::Session(code) if is_link_error(code) || is_timeout(code) => {
                Err(classify(&config.name, "authentication", e))
            }
            ErrorCode::Session(LIBSSH2_ERROR_FILE) => Err(refused(format!(
                "{method}: cannot load it (wrong passphrase or unsupported key format)"
            ))),
            _ => Err(refused(method)),
        },
    }
}

/// AES-GCM first: with AES-NI it costs a fraction of CTR + HMAC, on both ends, which is
/// what bounds a push of a large ISO to many hosts. Servers without it fall back.
pub(super) fn prefer_fast_ciphers(session: &Session) {
    const CIPHERS: &str = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,\
                           aes256-ctr,chacha20-poly1305@openssh.com,aes192-ctr";
    for kind in [ssh2::MethodType::CryptCs, ssh2::MethodType::CryptSc] {
        // A libssh2 without GCM refuses the list: keep its own defaults then.
        let _ = session.method_pref(kind, CIPHERS);
    }
}

/// A duration as libssh2's millisecond timeout; never 0, which would mean "wait forever".
pub(super) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_timeout_never_means_forever() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_secs(u64::MAX)), u32::MAX);
    }
}
