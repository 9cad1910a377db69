//! Accepting and serving connections (plain or TLS) under limits: a cap on
//! open connections, globally and per client address; a header-read timeout
//! (hyper's) and an idle timeout (ours); and RLIMIT_NOFILE raised at start.
//! Without them, clients that never finish a request hold their
//! connections forever, until the process runs out of descriptors.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Limits;
use crate::metrics::{Metrics, Refusal, Timeout};

/// The connection limits in force.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_total: usize,
    pub max_per_ip: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl ConnLimits {
    /// From the config, with the global cap lowered to what `nofile` open
    /// descriptors allow (each connection may hold its socket and a storage
    /// file; some are kept for everything else).
    pub fn new(l: &Limits, nofile: Option<u64>) -> ConnLimits {
        let mut max_total = l.maxconnections;
        if let Some(n) = nofile {
            let fit = (n.saturating_sub(64) / 2).max(16) as usize;
            if fit < max_total {
                eprintln!(
                    "strata registry: RLIMIT_NOFILE is {n}: limits.maxconnections lowered from {max_total} to {fit}"
                );
                max_total = fit;
            }
        }
        ConnLimits {
            max_total,
            max_per_ip: l.maxconnectionsperip.min(max_total),
            header_timeout: Duration::from_secs(l.headertimeout),
            idle_timeout: Duration::from_secs(l.idletimeout),
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (no privilege needed);
/// returns the soft limit now in force (None: unlimited).
pub fn raise_nofile() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        let wanted = rustix::process::Rlimit {
            current: l.maximum,
            maximum: l.maximum,
        };
        match setrlimit(Resource::Nofile, wanted) {
            Ok(()) => l = getrlimit(Resource::Nofile),
            Err(e) => eprintln!("strata registry: raising RLIMIT_NOFILE: {e}"),
        }
    }
    l.current
}

/// The address a per-client cap counts against: an IPv6 client usually
/// holds a whole /64, so that is one client.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Counts open connections; `total` is a watch so that shutdown can wait for zero.
struct Limiter {
    limits: ConnLimits,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    total: watch::Sender<usize>,
    metrics: Arc<Metrics>,
}

/// One open connection's place under the caps, given back on drop.
struct Permit {
    limiter: Arc<Limiter>,
    key: IpAddr,
}

impl Limiter {
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let key = client_key(ip);
        let mut per_ip = self.per_ip.lock().expect("connection counts");
        if *self.total.borrow() >= self.limits.max_total {
            return Err(Refusal::Global);
        }
        let n = per_ip.entry(key).or_default();
        if *n >= self.limits.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        self.total.send_modify(|t| *t += 1);
        self.metrics.connection_opened();
        Ok(Permit {
            limiter: self.clone(),
            key,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let l = &self.limiter;
        let mut per_ip = l.per_ip.lock().expect("connection counts");
        if let Some(n) = per_ip.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.key);
            }
        }
        l.total.send_modify(|t| *t -= 1);
        l.metrics.connection_closed();
    }
}

/// When a connection last moved a byte, and how many requests it has in a handler.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// When the connection will have been idle for `idle`, if nothing happens.
    fn idle_deadline(&self, idle: Duration) -> Instant {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Instant::now() + idle;
        }
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }
}

/// Marks a request as being handled, and the connection active when it ends.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(a: &Arc<Activity>) -> InFlight {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that records when a byte last went through it.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What every connection task shares.
struct Shared {
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
}

/// Accepts until `shutdown` turns true, then waits for the connections
/// (each told to finish its request in progress and close) to end.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limiter = Arc::new(Limiter {
        limits,
        per_ip: Mutex::default(),
        total: watch::Sender::new(0),
        metrics: metrics.clone(),
    });
    let shared = Arc::new(Shared {
        app,
        tls,
        limits,
        metrics,
    });
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|v| *v) => break,
        };
        let (tcp, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                eprintln!("strata registry: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match limiter.acquire(remote.ip()) {
            Ok(permit) => {
                tokio::spawn(connection(tcp, remote, permit, shared.clone(), shutdown.clone()));
            }
            Err(why) => {
                shared.metrics.connection_refused(why);
                refuse(tcp, shared.tls.is_none());
            }
        }
    }
    drop(listener);
    let mut total = limiter.total.subscribe();
    let _ = total.wait_for(|n| *n == 0).await;
}

/// Closes a connection over a cap at once, never waiting on the client: a
/// plain one gets a 503 if its socket takes it without blocking.
fn refuse(tcp: TcpStream, plain: bool) {
    if plain {
        // Draining what already arrived makes the close a FIN rather than
        // a reset that could discard the 503 at the client.
        let mut sink = [0u8; 4096];
        while matches!(tcp.try_read(&mut sink), Ok(n) if n > 0) {}
        let _ = tcp.try_write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 21\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections\n",
        );
    }
}

async fn connection(
    tcp: TcpStream,
    remote: SocketAddr,
    permit: Permit,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let _permit = permit;
    let activity = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let io = Tracked {
        inner: tcp,
        activity: activity.clone(),
    };
    match &shared.tls {
        None => http(io, remote, activity, &shared, shutdown).await,
        Some(acceptor) => match tokio::time::timeout(shared.limits.header_timeout, acceptor.accept(io)).await {
            Ok(Ok(stream)) => http(stream, remote, activity, &shared, shutdown).await,
            Ok(Err(_)) => {}
            Err(_) => shared.metrics.connection_timed_out(Timeout::Header),
        },
    }
}

async fn http<S>(
    stream: S,
    remote: SocketAddr,
    activity: Arc<Activity>,
    shared: &Shared,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = shared.app.clone();
    let a = activity.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(axum::extract::ConnectInfo(remote));
        let app = app.clone();
        // The idle timeout does not run while a handler works (it may wait
        // on storage or the upstream); the body timeout covers uploads.
        let busy = InFlight::new(&a);
        async move {
            let resp = call(app, req).await;
            drop(busy);
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(shared.limits.header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        // Once stopping, a connection not handling a request and silent for
        // a second (e.g. one with half a request line) is not waited for.
        let idle = if stopping {
            shared.limits.idle_timeout.min(Duration::from_secs(1))
        } else {
            shared.limits.idle_timeout
        };
        let idle_at = activity.idle_deadline(idle);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r
                    && e.is_timeout()
                {
                    shared.metrics.connection_timed_out(Timeout::Header);
                }
                return;
            }
            _ = shutdown.wait_for(|v| *v), if !stopping => {
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
            _ = tokio::time::sleep_until(idle_at) => {
                if activity.idle_deadline(idle) <= Instant::now() {
                    if !stopping {
                        shared.metrics.connection_timed_out(Timeout::Idle);
                    }
                    return;
                }
            }
        }
    }
}

async fn call(app: Router, req: axum::http::Request<axum::body::Body>) -> axum::response::Response {
    use tower::ServiceExt;
    match app.oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    }
}
