//! When a request's bytes reached this host: the start of its wait, for
//! admission (`crate::shed`).
//!
//! Under load, requests queue first where the process cannot see them: unread
//! in their sockets while the connection's task waits for the CPU. A stamp
//! taken when the server reads them misses that wait, and so does every
//! count of requests in flight (BENCHMARKS.md, "Overload"). So each accepted
//! TCP socket has `SO_TIMESTAMPNS` set (socket(7)), every read of it goes
//! through `recvmsg`, and [`Stamped`] keeps the kernel's receive time of the
//! bytes it read last, as an [`Instant`] in [`Received`], where the gate
//! finds it through the connection's [`Peer`].
//!
//! **What the kernel's time is.** For TCP it is the time of the newest
//! segment among the bytes one read returns: the stack merges in-order
//! segments and keeps the newer one's time (`tcp_try_coalesce` in Linux's
//! net/ipv4/tcp_input.c). So it is a lower bound on the wait of every byte
//! the read returned: a request is never counted as having waited longer
//! than it did.
//!
//! **The wall clock.** The kernel's stamps are wall-clock times, turned
//! into the monotonic clock at each read. When the wall clock is stepped
//! forward, bytes already unread at the step count it as waiting (those
//! past the interval are refused once); a step back counts as no wait.
//! Everything after the read (the standing-queue test, the windows) runs
//! on the monotonic clock.
//!
//! Linux turns receive stamps on for the whole host lazily (a deferred
//! switch when the first socket asks, off again when the last closes), so
//! the first bytes after that may carry none: they count from their read,
//! and the lower bound still holds. Off Linux, reads are plain and the
//! stamp is the read's own time.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The origin of the nanosecond counts kept in atomics here: well before
/// the first use, since bytes may reach a socket before it is accepted.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(|| {
        let now = Instant::now();
        [3600, 60, 1].into_iter().find_map(|s| now.checked_sub(std::time::Duration::from_secs(s))).unwrap_or(now)
    })
}

fn to_nanos(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_nanos().try_into().unwrap_or(u64::MAX)
}

fn from_nanos(n: u64) -> Instant {
    epoch() + std::time::Duration::from_nanos(n)
}

/// The receive time of the bytes a connection read last; 0 until a read.
#[derive(Debug, Default)]
pub struct Received(AtomicU64);

impl Received {
    /// When the newest bytes read so far reached the host; `None` before
    /// the first read.
    pub fn last(&self) -> Option<Instant> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n => Some(from_nanos(n)),
        }
    }

    fn set(&self, at: Instant) {
        self.0.store(to_nanos(at).max(1), Ordering::Relaxed);
    }
}

/// What the gate learns about a connection (the `ConnectInfo` of
/// `crate::listen`'s connections): the client's certificates (TLS only) and
/// the receive time of its latest bytes.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The chain the client presented, leaf first; `None` on plain TCP or
    /// when it sent none.
    pub certificates: Option<Arc<Vec<rustls_pki_types::CertificateDer<'static>>>>,
    /// Updated on every read of the connection's socket.
    pub received: Arc<Received>,
}

/// A TCP stream whose reads record the kernel's receive time in
/// [`Received`]; writes pass through.
pub struct Stamped {
    tcp: TcpStream,
    received: Arc<Received>,
}

impl Stamped {
    /// Asks the kernel to stamp what `tcp` receives (on Linux; a failure is
    /// logged and the reads' own time is kept instead).
    pub fn new(tcp: TcpStream) -> Stamped {
        #[cfg(target_os = "linux")]
        if let Err(e) = nix::sys::socket::setsockopt(&tcp, nix::sys::socket::sockopt::ReceiveTimestampns, &true) {
            tracing::debug!(error = %e, "SO_TIMESTAMPNS refused: a request's wait counts from its read");
        }
        Stamped { tcp, received: Arc::default() }
    }

    /// The handle the connection's [`Peer`] carries.
    pub fn received(&self) -> Arc<Received> {
        self.received.clone()
    }

    /// The TCP stream (for `tonic`'s connection info).
    pub fn get_ref(&self) -> &TcpStream {
        &self.tcp
    }

    /// One read into `buf`, with the receive time of what it returned.
    #[cfg(target_os = "linux")]
    fn read_stamped(&self, buf: &mut [u8]) -> io::Result<(usize, Instant)> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
        use std::os::fd::AsRawFd;
        let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let mut iov = [io::IoSliceMut::new(buf)];
        let msg = recvmsg::<()>(self.tcp.as_raw_fd(), &mut iov, Some(&mut control), MsgFlags::MSG_DONTWAIT).map_err(io::Error::from)?;
        // The kernel's clock is the wall clock: the stamp's age against the
        // wall clock read first, then the monotonic clock, so that the time
        // between the two readings shortens the age (a lower bound stays
        // one). A wall-clock step between them is the only error.
        let wall = std::time::SystemTime::now();
        let now = Instant::now();
        let mut at = now;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                let sent = std::time::UNIX_EPOCH + std::time::Duration::new(ts.tv_sec().max(0) as u64, ts.tv_nsec().max(0) as u32);
                at = now.checked_sub(wall.duration_since(sent).unwrap_or_default()).unwrap_or(now);
            }
        }
        Ok((msg.bytes, at))
    }

    #[cfg(not(target_os = "linux"))]
    fn read_stamped(&self, buf: &mut [u8]) -> io::Result<(usize, Instant)> {
        Ok((self.tcp.try_read(buf)?, Instant::now()))
    }
}

impl AsyncRead for Stamped {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            std::task::ready!(self.tcp.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match self.tcp.try_io(tokio::io::Interest::READABLE, || self.read_stamped(unfilled)) {
                Ok((n, at)) => {
                    if n > 0 {
                        self.received.set(at);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale: cleared by try_io; wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Stamped {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (TcpStream, Stamped) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut server = Stamped::new(server);
        // The kernel turns receive stamps on for the whole host lazily (after
        // the first socket asks, and off again after the last closes): until
        // a byte's stamp precedes the moment it was seen ready, it is not on.
        if cfg!(target_os = "linux") {
            let mut on = false;
            for _ in 0..10_000 {
                client.write_all(b"w").await.unwrap();
                server.tcp.readable().await.unwrap();
                let ready = Instant::now();
                server.read_exact(&mut [0u8; 1]).await.unwrap();
                if server.received.last().unwrap() <= ready {
                    on = true;
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert!(on, "the kernel never stamped a received byte");
        }
        (client, server)
    }

    /// Bytes that sat unread in the socket carry the time they arrived, not
    /// the time they were read: the stamp lies between the send and the
    /// moment the socket was seen ready, before the read.
    #[tokio::test]
    async fn bytes_left_in_the_socket_carry_their_arrival() {
        let (mut client, mut server) = pair().await;
        let before = Instant::now();
        client.write_all(b"request").await.unwrap();
        server.tcp.readable().await.unwrap();
        let ready = Instant::now();
        let mut buf = [0u8; 16];
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"request");
        let arrived = server.received.last().expect("a read was stamped");
        if cfg!(target_os = "linux") {
            assert!(arrived >= before, "arrival before the send: {:?} before", before.duration_since(arrived));
            assert!(arrived <= ready, "the stamp is the read's time, not the arrival's: {:?} late", arrived.duration_since(ready));
        }
    }

    /// Two sends apart, read at once: the stamp is the newer one's (the
    /// kernel's, a lower bound on both waits).
    #[tokio::test]
    async fn one_read_of_two_sends_carries_the_newer() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"first").await.unwrap();
        server.tcp.readable().await.unwrap();
        let between = Instant::now();
        client.write_all(b"second").await.unwrap();
        // Until both sends are in the socket, unread.
        let mut peeked = [0u8; 64];
        while server.tcp.peek(&mut peeked).await.unwrap() < 11 {
            tokio::task::yield_now().await;
        }
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while got.len() < 11 {
            let n = server.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"firstsecond");
        let arrived = server.received.last().unwrap();
        if cfg!(target_os = "linux") {
            assert!(arrived >= between, "the stamp is older than the newest bytes");
        }
    }
}
