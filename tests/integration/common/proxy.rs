//! A small TCP proxy on 127.0.0.1 for fault tests: it forwards to a test host and, as told,
//! delays, cuts a connection after N bytes, stalls it, or never answers at all.
//!
//! # Design
//!
//! One accept thread (a non-blocking listener polled every 10 ms) and two pump threads per
//! connection, one per direction. Every socket has a short read timeout so each thread sees
//! the stop flag within ~50 ms; dropping the [`Proxy`] stops and joins all of them, which
//! closes every socket. The [`Fault`] is read when a connection is accepted, so a test can
//! change it between runs ([`Proxy::set`]) and each connection keeps the behaviour it began
//! with. "After N bytes" counts client-to-host bytes (the upload direction) per connection,
//! so every retry meets the same fault.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does to a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Forward everything, waiting this long before each chunk in either direction.
    Delay(Duration),
    /// Forward this many client bytes, then close both sides (a link cut mid-stream).
    CutAfter(u64),
    /// Forward this many client bytes, then forward nothing more in either direction while
    /// keeping both sockets open (a host or path that stalls).
    StallAfter(u64),
    /// Accept, never connect to the host, never write (a host that accepts TCP and never
    /// answers SSH).
    Silent,
}

/// A running proxy; stopped (every thread joined, every socket closed) on drop.
pub struct Proxy {
    pub port: u16,
    fault: Arc<Mutex<Fault>>,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: Option<JoinHandle<()>>,
}

/// How often threads look at the stop flag.
const TICK: Duration = Duration::from_millis(50);

impl Proxy {
    /// Listen on a free port of 127.0.0.1 and forward to `upstream`.
    pub fn start(upstream: SocketAddr, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("addr").port();
        let fault = Arc::new(Mutex::new(fault));
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (fault, stop, accepted, threads) = (
                fault.clone(),
                stop.clone(),
                accepted.clone(),
                threads.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            let now = *fault.lock().unwrap();
                            let stop = stop.clone();
                            let handle =
                                std::thread::spawn(move || serve(client, upstream, now, &stop));
                            threads.lock().unwrap().push(handle);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => panic!("proxy accept: {e}"),
                    }
                }
            })
        };
        Proxy {
            port,
            fault,
            stop,
            accepted,
            threads,
            accept: Some(accept),
        }
    }

    /// The fault for connections accepted from now on.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// One connection, until it ends or the proxy stops.
fn serve(client: TcpStream, upstream: SocketAddr, fault: Fault, stop: &AtomicBool) {
    let _ = client.set_read_timeout(Some(TICK));
    if fault == Fault::Silent {
        // Hold the socket open; read nothing, write nothing.
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(TICK);
        }
        return;
    }
    let Ok(host) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
        return;
    };
    let _ = host.set_read_timeout(Some(TICK));
    let _ = host.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let link = Link {
        sent: AtomicU64::new(0),
        stalled: AtomicBool::new(false),
        closed: AtomicBool::new(false),
    };
    let (c2, h2) = (
        client.try_clone().expect("clone"),
        host.try_clone().expect("clone"),
    );
    std::thread::scope(|s| {
        s.spawn(|| pump(client, host, fault, &link, stop, true));
        s.spawn(|| pump(h2, c2, fault, &link, stop, false));
    });
}

/// The state both directions of a connection share.
struct Link {
    /// Client bytes forwarded to the host.
    sent: AtomicU64,
    stalled: AtomicBool,
    closed: AtomicBool,
}

/// Copy `from` to `to` until either side ends, the fault strikes, or the proxy stops.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    fault: Fault,
    link: &Link,
    stop: &AtomicBool,
    upload: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let done = |link: &Link| link.closed.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed);
    while !done(link) {
        if link.stalled.load(Ordering::Relaxed) {
            std::thread::sleep(TICK);
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        let mut chunk = &buf[..n];
        let mut strike = false;
        if upload {
            if let Fault::CutAfter(limit) | Fault::StallAfter(limit) = fault {
                let before = link.sent.load(Ordering::Relaxed);
                let room = limit.saturating_sub(before) as usize;
                if room <= chunk.len() {
                    chunk = &chunk[..room];
                    strike = true;
                }
            }
            link.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        if let Fault::Delay(d) = fault {
            std::thread::sleep(d);
        }
        if to.write_all(chunk).is_err() {
            break;
        }
        if strike {
            match fault {
                Fault::StallAfter(_) => link.stalled.store(true, Ordering::Relaxed),
                _ => break,
            }
        }
    }
    // A cut, an end or a stop: close both sockets (both directions), so the other pump
    // ends too and each peer sees the connection go.
    if !link.stalled.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed) {
        link.closed.store(true, Ordering::Relaxed);
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    }
}
