//! Building the service from a config, binding, serving (plain or TLS), stopping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::registry::Registry;
use crate::routes::{AppState, handle};
use crate::storage::{DynDriver, fs::FsDriver, s3::S3Driver};

/// A server started by [`start`]; dropping it does not stop it, [`RunningServer::stop`] does.
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or https with TLS configured).
    pub fn url(&self, tls: bool) -> String {
        format!("{}://{}", if tls { "https" } else { "http" }, self.addr)
    }

    /// Stops accepting, lets requests in progress finish, and returns.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops by itself (it only does on error).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// The storage driver a config names (filesystem when none is given).
pub fn driver(config: &Config) -> anyhow::Result<DynDriver> {
    if let Some(s3) = &config.storage.s3 {
        return Ok(Arc::new(S3Driver::new(s3)?));
    }
    let root = config
        .storage
        .filesystem
        .as_ref()
        .map(|f| f.rootdirectory.clone())
        .unwrap_or_else(|| "/var/lib/registry".into());
    let d = FsDriver::new(&root).with_context(|| format!("opening storage directory {}", root.display()))?;
    Ok(Arc::new(d))
}

pub fn registry(config: &Config) -> anyhow::Result<Registry> {
    Ok(Registry::new(
        driver(config)?,
        config.validation.manifests.clone(),
        config.storage.delete.enabled,
    ))
}

fn tls_acceptor(cfg: &crate::config::TlsConfig) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::util::install_crypto_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.certificate)
        .with_context(|| format!("reading certificate {}", cfg.certificate.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificate {}", cfg.certificate.display()))?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key).with_context(|| format!("reading key {}", cfg.key.display()))?;
    let sc = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not form a usable pair")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(sc)))
}

/// Starts a registry on `config.http.addr` (port 0 picks a free port).
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    config.check()?;
    let registry = Arc::new(registry(&config)?);
    let auth = Auth::new(&config)?;
    let proxy = config.proxy.as_ref().map(Proxy::new).transpose()?;
    let anonymous_mount = config.limits.anonymousmount.unwrap_or(!auth.enabled());
    let state = Arc::new(AppState {
        registry,
        auth,
        metrics: Metrics::default(),
        proxy,
        read_only: config.storage.maintenance.readonly.enabled,
        access_log: !config.log.accesslog.disabled,
        max_page: config.limits.maxpagesize,
        anonymous_mount,
        body_timeout: Duration::from_secs(config.limits.bodytimeout.max(1)),
    });
    let app = Router::new().fallback(handle).with_state(state);
    let addr = if config.http.addr.starts_with(':') {
        format!("0.0.0.0{}", config.http.addr)
    } else {
        config.http.addr.clone()
    };
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    let (tx, mut rx) = watch::channel(false);
    let task = match &config.http.tls {
        None => {
            let svc = app.into_make_service_with_connect_info::<SocketAddr>();
            tokio::spawn(async move {
                let r = axum::serve(listener, svc)
                    .with_graceful_shutdown(async move {
                        let _ = rx.wait_for(|v| *v).await;
                    })
                    .await;
                if let Err(e) = r {
                    eprintln!("strata registry: server error: {e}");
                }
            })
        }
        Some(tls) => {
            let acceptor = tls_acceptor(tls)?;
            tokio::spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        r = listener.accept() => r,
                        _ = rx.wait_for(|v| *v) => break,
                    };
                    let (tcp, remote) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            eprintln!("strata registry: accept: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let acceptor = acceptor.clone();
                    let app = app.clone();
                    tokio::spawn(async move {
                        let Ok(stream) = acceptor.accept(tcp).await else { return };
                        let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let mut req = req.map(axum::body::Body::new);
                            req.extensions_mut().insert(axum::extract::ConnectInfo(remote));
                            let app = app.clone();
                            async move { Ok::<_, std::convert::Infallible>(tower_service_call(app, req).await) }
                        });
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await;
                    });
                }
            })
        }
    };
    Ok(RunningServer {
        addr: local,
        shutdown: tx,
        task,
    })
}

async fn tower_service_call(app: Router, req: axum::http::Request<axum::body::Body>) -> axum::response::Response {
    use tower::ServiceExt;
    match app.oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    }
}
