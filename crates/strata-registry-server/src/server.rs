//! Building the service from a config, binding, and stopping (serving: `conn`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::config::Config;
use crate::error::{Error, Result};
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

    /// Waits until the server task ends (only [`RunningServer::stop`] or a panic ends it).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// The storage driver a config names (filesystem when none is given).
pub fn driver(config: &Config) -> Result<DynDriver> {
    if let Some(s3) = &config.storage.s3 {
        return Ok(Arc::new(S3Driver::new(s3)?));
    }
    let root = config
        .storage
        .filesystem
        .as_ref()
        .map(|f| f.rootdirectory.clone())
        .unwrap_or_else(|| "/var/lib/registry".into());
    let d = FsDriver::new(&root).map_err(|source| Error::StorageDir { path: root, source })?;
    Ok(Arc::new(d))
}

pub fn registry(config: &Config) -> Result<Registry> {
    Ok(Registry::new(
        driver(config)?,
        config.validation.manifests.clone(),
        config.storage.delete.enabled,
    ))
}

fn tls_acceptor(cfg: &crate::config::TlsConfig) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::util::install_crypto_provider();
    let file = |what, path: &std::path::PathBuf| {
        let path = path.clone();
        move |source| Error::TlsFile { what, path, source }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.certificate)
        .map_err(file("reading certificate", &cfg.certificate))?
        .collect::<Result<_, _>>()
        .map_err(file("parsing certificate", &cfg.certificate))?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(file("reading key", &cfg.key))?;
    let sc = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| Error::TlsPair { source })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(sc)))
}

/// The registry's HTTP service for `config`, without a listener: what
/// [`start`] serves, for driving with in-memory requests (the fuzzer does).
/// Its handler reads the peer's address from the request's
/// `axum::extract::ConnectInfo<SocketAddr>` extension.
pub fn app(config: &Config) -> Result<Router> {
    config.check()?;
    Ok(app_and_metrics(config)?.0)
}

fn app_and_metrics(config: &Config) -> Result<(Router, Arc<Metrics>)> {
    let registry = Arc::new(registry(config)?);
    let auth = Auth::new(config)?;
    let proxy = config.proxy.as_ref().map(Proxy::new).transpose()?;
    let anonymous_mount = config.limits.anonymousmount.unwrap_or(!auth.enabled());
    let metrics = Arc::new(Metrics::default());
    let state = Arc::new(AppState {
        registry,
        auth,
        metrics: metrics.clone(),
        proxy,
        read_only: config.storage.maintenance.readonly.enabled,
        access_log: !config.log.accesslog.disabled,
        max_page: config.limits.maxpagesize,
        anonymous_mount,
        body_timeout: Duration::from_secs(config.limits.bodytimeout.max(1)),
    });
    Ok((Router::new().fallback(handle).with_state(state), metrics))
}

/// Starts a registry on `config.http.addr` (port 0 picks a free port).
pub async fn start(config: Config) -> Result<RunningServer> {
    config.check()?;
    let nofile = crate::conn::raise_nofile();
    let limits = crate::conn::ConnLimits::new(&config.limits, nofile);
    let (app, metrics) = app_and_metrics(&config)?;
    let tls = config.http.tls.as_ref().map(tls_acceptor).transpose()?;
    let addr = if config.http.addr.starts_with(':') {
        format!("0.0.0.0{}", config.http.addr)
    } else {
        config.http.addr.clone()
    };
    let listen = |source| Error::Listen {
        addr: addr.clone(),
        source,
    };
    let listener = TcpListener::bind(&addr).await.map_err(listen)?;
    let local = listener.local_addr().map_err(listen)?;
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(crate::conn::serve(listener, app, tls, limits, metrics, rx));
    Ok(RunningServer {
        addr: local,
        shutdown: tx,
        task,
    })
}
