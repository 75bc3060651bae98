//! The accept loop under both transports: at most `max_connections` open at
//! once (past that, the next client is accepted and held, unserved, until a
//! place frees, counted in `credit_tender_connections_waiting`; the clients
//! after it queue in the listen backlog), back-off when accepting fails
//! (EMFILE, ENFILE: logged, never a spin), and TCP_NODELAY on every socket. TLS handshakes run off the loop, so a slow
//! client delays no one, and each has `handshake_timeout` to finish; on
//! plain TCP a connection has as long to send its first bytes (the HTTP/2
//! preface or an HTTP/1 request line), so sockets that say nothing are
//! closed and free their places under the cap.
//!
//! A connection that moves nothing for `idle_timeout` is closed. HTTP/2's
//! own keep-alive traffic does not count as activity: a transfer of at most
//! [`CONTROL_BYTES`] (one PING or WINDOW_UPDATE frame) leaves the idle clock
//! running, so the server's keep-alive pings detect dead peers without
//! keeping idle ones open forever.

use crate::metrics::Metrics;
use crate::received::{Peer, Stamped};
use crate::tls::SharedTls;
use rustls_pki_types::CertificateDer;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// The largest HTTP/2 frame that is keep-alive rather than work: a PING
/// (9-byte header, 8-byte payload). WINDOW_UPDATE (13) and SETTINGS
/// acknowledgements (9) are smaller.
pub(crate) const CONTROL_BYTES: usize = 17;

/// What the accept loop enforces.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Connections open at once, unless told (`--max-connections`).
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long a connection may move nothing, unless told (`--idle-timeout`).
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a new connection has for its first bytes or its TLS handshake,
/// unless told (`--handshake-timeout`).
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Refuses addresses other callers could reach while callers are not
/// authenticated, unless the operator says otherwise.
/// Beyond loopback, callers must come over TLS and prove who they are,
/// unless the operator says a trusted proxy in front does that.
pub(crate) fn check_listen_address(addr: std::net::SocketAddr, secured: bool, allow_remote: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || secured || allow_remote {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {addr} without --tls-cert/--tls-key and --principals: anyone who can reach this \
         address could write credit records. Give both, listen on 127.0.0.1, or pass --insecure-allow-remote if a \
         trusted network or proxy in front of it does TLS and authentication."
    ))
}

/// A connection that frees its place under the cap when it closes, and
/// ends (as if the peer had closed it) once idle for too long.
pub(crate) struct Counted<T> {
    inner: T,
    peer: Peer,
    idle: Idle,
    _place: Place,
}

/// A place under the connection cap, counted in the metrics while held.
struct Place {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.metrics.connections_open(-1);
    }
}

struct Idle {
    limit: Duration,
    last: Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
    metrics: Arc<Metrics>,
}

impl Idle {
    fn new(limit: Duration, metrics: Arc<Metrics>) -> Idle {
        Idle { limit, last: Instant::now(), timer: Box::pin(tokio::time::sleep(limit)), metrics }
    }

    fn moved(&mut self, bytes: usize) {
        if bytes > CONTROL_BYTES {
            self.last = Instant::now();
        }
    }

    /// Whether the connection has been idle for the limit; registers the
    /// task to be woken when it might be.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.timer.as_mut().poll(cx).is_ready() {
            let deadline = self.last + self.limit;
            if Instant::now() >= deadline {
                self.metrics.connection("idle_closed");
                return true;
            }
            self.timer.as_mut().reset(deadline);
        }
        false
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                self.idle.moved(n);
                Poll::Ready(Ok(()))
            }
            // Idle too long: end of stream, and the server closes the connection.
            Poll::Pending if self.idle.expired(cx) => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.idle.moved(n);
        }
        written
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            self.idle.moved(n);
        }
        written
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What a connection tells the gate (`crate::received::Peer`): its TLS
/// client certificates, if any, and its socket's receive times.
impl<T> Connected for Counted<T> {
    type ConnectInfo = Peer;
    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

/// The client certificates a handshaken connection carries.
pub(crate) trait Certificates {
    fn certificates(&self) -> Option<Arc<Vec<CertificateDer<'static>>>>;
}

impl Certificates for Stamped {
    fn certificates(&self) -> Option<Arc<Vec<CertificateDer<'static>>>> {
        None
    }
}

impl Certificates for tokio_rustls::server::TlsStream<Stamped> {
    fn certificates(&self) -> Option<Arc<Vec<CertificateDer<'static>>>> {
        self.get_ref().1.peer_certificates().map(|c| Arc::new(c.iter().map(|c| c.clone().into_owned()).collect()))
    }
}

/// Accepts up to `limits.max_connections` at once and yields each
/// connection, handshaken first when the transport has a handshake.
// Long because: the accept loop and each connection's handshake task share the places, the metrics and the channel in one async block.
pub(crate) fn incoming<T>(
    listener: TcpListener,
    limits: Limits,
    metrics: Arc<Metrics>,
    handshake: impl Fn(Stamped) -> Option<Pin<Box<dyn std::future::Future<Output = io::Result<T>> + Send>>> + Send + 'static,
) -> ReceiverStream<io::Result<Counted<T>>>
where
    T: Certificates + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let places = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // The loop ends when the server drops the stream (at shutdown): the
    // listening socket closes with it, and nothing it holds stays alive.
    let receiver_gone = tx.clone();
    let accepting = async move {
        // Since when accepting fails, and how many attempts have failed since.
        let mut failing: Option<(Instant, u64)> = None;
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    metrics.connection("accept_error");
                    // Logged once per episode, not once per retry.
                    match &mut failing {
                        None => {
                            tracing::warn!(error = %e, "accept failed (out of file descriptors?); retrying every 100 ms until it succeeds");
                            failing = Some((Instant::now(), 1));
                        }
                        Some((_, retries)) => *retries += 1,
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            if let Some((since, retries)) = failing.take() {
                // The episode's length and failed attempts: at most one
                // attempt per ACCEPT_BACKOFF, which an operator (or a test)
                // can check against a spinning loop.
                let after_ms = since.elapsed().as_millis() as u64;
                tracing::warn!(after_ms, retries, "accepting connections again");
            }
            metrics.connection("accepted");
            // Past the cap this one client waits, accepted but unserved, for
            // a place; the loop accepts no other until it has one.
            let permit = match places.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    metrics.connection("waited");
                    metrics.connections_waiting(1);
                    let permit = places.clone().acquire_owned().await;
                    metrics.connections_waiting(-1);
                    let Ok(permit) = permit else { return };
                    permit
                }
            };
            metrics.connections_open(1);
            let place = Place { _permit: permit, metrics: metrics.clone() };
            let _ = tcp.set_nodelay(true);
            let tcp = Stamped::new(tcp);
            let received = tcp.received();
            let Some(shake) = handshake(tcp) else { continue };
            let tx = tx.clone();
            let metrics = metrics.clone();
            let limits = limits.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(limits.handshake_timeout, shake).await {
                    Ok(Ok(stream)) => {
                        let idle = Idle::new(limits.idle_timeout, metrics);
                        let peer = Peer { certificates: stream.certificates(), received };
                        let _ = tx.send(Ok(Counted { inner: stream, peer, idle, _place: place })).await;
                    }
                    Ok(Err(e)) => {
                        metrics.connection("handshake_failed");
                        tracing::debug!(%peer, error = %e, "handshake failed");
                    }
                    Err(_) => {
                        metrics.connection("handshake_timeout");
                        tracing::debug!(%peer, "handshake timed out");
                    }
                }
            });
        }
    };
    tokio::spawn(async move {
        tokio::select! {
            () = receiver_gone.closed() => {}
            () = accepting => {}
        }
    });
    ReceiverStream::new(rx)
}

/// Pause between attempts while accepting fails.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Plain TCP connections, each once it has sent its first bytes (within
/// `handshake_timeout`, as a TLS handshake).
pub(crate) fn plain(listener: TcpListener, limits: Limits, metrics: Arc<Metrics>) -> ReceiverStream<io::Result<Counted<Stamped>>> {
    incoming(listener, limits, metrics, |tcp| {
        Some(Box::pin(async move {
            let mut first = [0u8; 1];
            match tcp.get_ref().peek(&mut first).await? {
                0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before sending anything")),
                _ => Ok(tcp),
            }
        }))
    })
}

/// TLS connections, with the certificate in use when each one arrives.
pub(crate) fn tls(
    listener: TcpListener,
    limits: Limits,
    metrics: Arc<Metrics>,
    tls: Arc<SharedTls>,
) -> ReceiverStream<io::Result<Counted<tokio_rustls::server::TlsStream<Stamped>>>> {
    incoming(listener, limits, metrics, move |tcp| {
        let acceptor = tls.acceptor();
        Some(Box::pin(async move { acceptor.accept(tcp).await }))
    })
}
