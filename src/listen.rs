//! The accept loop under both transports: at most `max_connections` open at
//! once (past that the loop waits; new clients queue in the listen backlog),
//! back-off when accepting fails (EMFILE, ENFILE: logged, never a spin), and
//! TCP_NODELAY on every socket. TLS handshakes run off the loop, so a slow
//! client delays no one.

use crate::tls::SharedTls;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection that frees its place under the cap when it closes.
pub struct Counted<T> {
    inner: T,
    _place: OwnedSemaphorePermit,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<T: Connected> Connected for Counted<T> {
    type ConnectInfo = T::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Accepts up to `max_connections` at once and yields each connection,
/// handshaken first when `tls` is given.
pub fn incoming<T>(
    listener: TcpListener,
    max_connections: usize,
    handshake: impl Fn(TcpStream) -> Option<Pin<Box<dyn std::future::Future<Output = io::Result<T>> + Send>>> + Send + 'static,
) -> ReceiverStream<io::Result<Counted<T>>>
where
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let places = Arc::new(Semaphore::new(max_connections.max(1)));
    tokio::spawn(async move {
        loop {
            let Ok(place) = places.clone().acquire_owned().await else { return };
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; backing off 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            if tx.is_closed() {
                return;
            }
            let Some(shake) = handshake(tcp) else { continue };
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, shake).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(Counted { inner: stream, _place: place })).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "handshake failed"),
                    Err(_) => tracing::debug!(%peer, "handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Plain TCP connections.
pub fn plain(listener: TcpListener, max_connections: usize) -> ReceiverStream<io::Result<Counted<TcpStream>>> {
    incoming(listener, max_connections, |tcp| Some(Box::pin(async move { Ok(tcp) })))
}

/// TLS connections, with the certificate in use when each one arrives.
pub fn tls(
    listener: TcpListener,
    max_connections: usize,
    tls: Arc<SharedTls>,
) -> ReceiverStream<io::Result<Counted<tokio_rustls::server::TlsStream<TcpStream>>>> {
    incoming(listener, max_connections, move |tcp| {
        let acceptor = tls.acceptor();
        Some(Box::pin(async move { acceptor.accept(tcp).await }))
    })
}
