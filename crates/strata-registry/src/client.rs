//! The client of one registry host: endpoint discovery (HTTPS or plain HTTP),
//! authentication (Basic, Bearer tokens, cached per scope), redirects that
//! never carry `Authorization` to another origin, and error bodies turned
//! into [`RegistryError`]s.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use tokio::sync::{Mutex, OnceCell, OwnedSemaphorePermit, Semaphore};

use crate::auth::{Challenge, Scope, Token, TokenResponse, parse_challenges, pick_challenge};
use crate::credentials::{Credential, CredentialStore};
use crate::error::{ApiErrorEntry, RegistryError, Result, Site, chain};

/// Docker Hub's API host.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// How many blob transfers one client runs at once by default (as Docker).
pub const DEFAULT_CONCURRENT_TRANSFERS: usize = 6;

/// Which protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTPS, except plain HTTP for `localhost`, `127.0.0.0/8` and `::1`
    /// (Docker's rule); with `insecure`, HTTPS without verification and
    /// then plain HTTP when TLS does not answer.
    #[default]
    Auto,
    Https,
    Http,
}

/// Where credentials come from.
#[derive(Debug, Clone, Default)]
pub enum Credentials {
    /// Docker's `config.json` (`auths`, `credsStore`, `credHelpers`).
    #[default]
    DockerConfig,
    /// None: anonymous access only.
    Anonymous,
    /// These, whatever the config says.
    Explicit(Credential),
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub protocol: Protocol,
    /// `--tls-verify=false`: accept any certificate, and fall back to plain HTTP.
    pub insecure: bool,
    /// Registries treated as with `insecure` (Docker's `insecure-registries`):
    /// `HOST[:PORT]` or a CIDR such as `10.0.0.0/8`; see
    /// [`system_insecure_registries`].
    pub insecure_registries: Vec<String>,
    /// Docker's per-registry certificates directory (`HOST[:PORT]/*.crt`, `*.cert`/`*.key`).
    pub certs_dir: PathBuf,
    pub credentials: Credentials,
    /// The directory of `config.json`; default `$DOCKER_CONFIG` or `~/.docker`.
    pub docker_config_dir: Option<PathBuf>,
    /// Blobs up to this size are uploaded with one `PUT`.
    pub monolithic_max: u64,
    /// Larger blobs go in `PATCH` chunks of this size (None: one `PATCH` for
    /// the whole blob, as Docker does).
    pub chunk_size: Option<u64>,
    /// Blob downloads and uploads running at once through this client.
    pub max_concurrent_transfers: usize,
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
    /// How requests are tried again (see [`crate::RetryPolicy`]).
    pub retry: crate::RetryPolicy,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            protocol: Protocol::Auto,
            insecure: false,
            insecure_registries: Vec::new(),
            certs_dir: PathBuf::from(crate::tls::DEFAULT_CERTS_DIR),
            credentials: Credentials::DockerConfig,
            docker_config_dir: None,
            monolithic_max: 32 * 1024 * 1024,
            chunk_size: None,
            max_concurrent_transfers: DEFAULT_CONCURRENT_TRANSFERS,
            user_agent: concat!("strata/", env!("CARGO_PKG_VERSION")).into(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(300),
            retry: crate::RetryPolicy::default(),
        }
    }
}

impl ClientOptions {
    pub(crate) fn credential_store(&self) -> Result<CredentialStore> {
        match &self.docker_config_dir {
            Some(d) => Ok(CredentialStore::new(d)),
            None => CredentialStore::from_env(),
        }
    }
}

/// A client of one registry. Cheap to clone; clones share tokens and limits.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// As given (`docker.io`, `localhost:5000`): for messages and credentials.
    registry: String,
    /// `host[:port]` spoken to.
    host: String,
    pub(crate) options: ClientOptions,
    /// For `http://` URLs when the registry is spoken to in plain HTTP only
    /// (`--protocol http`, or a loopback host): built without the system's
    /// CA certificates, whose loading is most of a small pull's start.
    plain: Option<reqwest::Client>,
    /// With TLS: for every URL of an HTTPS registry, and for the `https://`
    /// ones a plain-HTTP registry redirects to (built on first use then).
    tls: std::sync::OnceLock<reqwest::Client>,
    /// Names whose `certs.d` directories hold this registry's TLS material.
    tls_names: Vec<String>,
    base: OnceCell<Url>,
    auth: Mutex<AuthState>,
    transfers: Arc<Semaphore>,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: Vec<Token>,
    refresh_token: Option<String>,
    credential: Option<Option<Credential>>,
}

/// A request body: bytes can be sent again (after a 401 or a redirect), a stream cannot.
pub(crate) enum ReqBody {
    Empty,
    Bytes(Bytes),
    Stream(Option<reqwest::Body>),
}

pub(crate) struct Req {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: ReqBody,
    pub scope: Scope,
    pub repo: Option<String>,
}

impl Req {
    pub fn new(method: Method, url: Url) -> Req {
        Req {
            method,
            url,
            headers: HeaderMap::new(),
            body: ReqBody::Empty,
            scope: Scope::none(),
            repo: None,
        }
    }
    pub fn header(mut self, name: HeaderName, value: &str) -> Req {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }
    pub fn scope(mut self, scope: Scope) -> Req {
        self.scope = scope;
        self
    }
    pub fn repo(mut self, repo: &str) -> Req {
        self.repo = Some(repo.to_string());
        self
    }
    pub fn bytes(mut self, b: Bytes) -> Req {
        self.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(b.len() as u64));
        self.body = ReqBody::Bytes(b);
        self
    }
    pub fn stream(mut self, body: reqwest::Body, len: u64) -> Req {
        self.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        self.body = ReqBody::Stream(Some(body));
        self
    }
}

fn strip_query(u: &Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// Installs ring as rustls' process-wide crypto provider (once; harmless when one is set).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Client {
    /// A client for `registry` (`docker.io`, `quay.io`, `localhost:5000`, `[::1]:5000`).
    pub fn new(registry: &str, options: ClientOptions) -> Result<Client> {
        let ok = !registry.is_empty()
            && registry.len() <= 255
            && registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
        if !ok {
            return Err(RegistryError::Invalid(format!(
                "invalid registry {registry:?}: expected HOST[:PORT]"
            )));
        }
        install_crypto_provider();
        let host = api_host(registry);
        let mut options = options;
        if !options.insecure && is_listed_insecure(&options.insecure_registries, registry, &host) {
            options.insecure = true;
        }
        let mut names = vec![host.clone()];
        if registry != host {
            names.push(registry.to_string());
        }
        let http_only = match options.protocol {
            Protocol::Http => true,
            Protocol::Auto => is_loopback(&host),
            Protocol::Https => false,
        };
        let tls = std::sync::OnceLock::new();
        let plain = if http_only {
            Some(crate::tls::build_http(registry, &options, &host, None)?)
        } else {
            let material = crate::tls::load(&options.certs_dir, &names)?;
            let _ = tls.set(crate::tls::build_http(registry, &options, &host, Some(material))?);
            None
        };
        let transfers = Arc::new(Semaphore::new(options.max_concurrent_transfers.max(1)));
        Ok(Client {
            inner: Arc::new(Inner {
                registry: registry.to_string(),
                host,
                options,
                plain,
                tls,
                tls_names: names,
                base: OnceCell::new(),
                auth: Mutex::new(AuthState::default()),
                transfers,
            }),
        })
    }

    /// The HTTP client for `url`.
    fn http_for(&self, url: &Url) -> Result<&reqwest::Client> {
        let inner = &self.inner;
        if let Some(plain) = &inner.plain
            && url.scheme() == "http"
        {
            return Ok(plain);
        }
        if let Some(c) = inner.tls.get() {
            return Ok(c);
        }
        let material = crate::tls::load(&inner.options.certs_dir, &inner.tls_names)?;
        let built = crate::tls::build_http(&inner.registry, &inner.options, &inner.host, Some(material))?;
        Ok(inner.tls.get_or_init(|| built))
    }

    /// A client for the registry of `reference`.
    pub fn for_reference(reference: &strata_oci::Reference, options: ClientOptions) -> Result<Client> {
        Client::new(reference.domain(), options)
    }

    /// The registry name as given.
    pub fn registry(&self) -> &str {
        &self.inner.registry
    }

    /// `host[:port]` spoken to.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    pub(crate) fn site(&self, repo: Option<&str>) -> Box<Site> {
        Box::new(Site {
            registry: self.inner.registry.clone(),
            repository: repo.map(str::to_string),
        })
    }

    /// Waits for a transfer slot (see [`ClientOptions::max_concurrent_transfers`]).
    pub(crate) async fn transfer_permit(&self) -> OwnedSemaphorePermit {
        self.inner
            .transfers
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// The base URL (`https://host/` or `http://host/`), found on first use
    /// by a `GET /v2/` that also learns how the registry authenticates.
    pub async fn base_url(&self) -> Result<Url> {
        self.inner.base.get_or_try_init(|| self.discover()).await.cloned()
    }

    async fn discover(&self) -> Result<Url> {
        let host = &self.inner.host;
        let schemes: &[&str] = match self.inner.options.protocol {
            Protocol::Http => &["http"],
            Protocol::Https => &["https"],
            Protocol::Auto if is_loopback(host) => &["http"],
            Protocol::Auto if self.inner.options.insecure => &["https", "http"],
            Protocol::Auto => &["https"],
        };
        let mut last = None;
        for scheme in schemes {
            let base = Url::parse(&format!("{scheme}://{host}/"))
                .map_err(|e| RegistryError::Invalid(format!("invalid registry {host:?}: {e}")))?;
            match self.probe_retried(&base).await {
                Ok(challenge) => {
                    self.inner.auth.lock().await.challenge = challenge;
                    return Ok(base);
                }
                Err(e @ RegistryError::Connection { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one scheme was tried"))
    }

    /// [`Client::probe`], tried again as the retry policy says.
    async fn probe_retried(&self, base: &Url) -> Result<Option<Challenge>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.probe(base).await {
                Err(e) if e.is_transient() => match self.inner.options.retry.delay(attempt, e.retry_after()) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(e),
                },
                r => return r,
            }
        }
    }

    /// `GET /v2/` without credentials: Ok(None) when open, Ok(challenge) on 401.
    async fn probe(&self, base: &Url) -> Result<Option<Challenge>> {
        let url = base.join("v2/").expect("static path");
        let resp = self
            .http_for(&url)?
            .get(url.clone())
            .send()
            .await
            .map_err(|e| self.connection_error(&e, &Method::GET, &url, None))?;
        match resp.status() {
            s if s.is_success() => Ok(None),
            StatusCode::UNAUTHORIZED => Ok(pick_challenge(&challenges_of(resp.headers()))),
            s if s.is_redirection() => Ok(None),
            StatusCode::NOT_FOUND => Err(RegistryError::Protocol {
                site: self.site(None),
                message: format!(
                    "{} does not serve the registry API v2 (GET /v2/ answered 404)",
                    strip_query(&url)
                ),
            }),
            _ => Err(self.error_for(resp, None).await),
        }
    }

    /// Checks that the registry answers the API v2 (reachable, TLS fine).
    /// Credentials are not needed; see [`Client::check_credentials`].
    pub async fn ping(&self) -> Result<()> {
        let base = self.base_url().await?;
        self.probe(&base).await.map(|_| ())
    }

    /// Checks that the configured credentials open the registry
    /// (`GET /v2/` with Basic credentials or a token with no scope).
    pub async fn check_credentials(&self) -> Result<()> {
        let base = self.base_url().await?;
        let url = base.join("v2/").expect("static path");
        let resp = self.send(Req::new(Method::GET, url)).await?;
        self.expect(resp, &[StatusCode::OK], None).await.map(|_| ())
    }

    pub(crate) async fn url(&self, path: &str) -> Result<Url> {
        let base = self.base_url().await?;
        base.join(path)
            .map_err(|e| RegistryError::Invalid(format!("invalid URL path {path:?}: {e}")))
    }

    /// Resolves a `Location` (or `Link`) against the URL it came with.
    pub(crate) fn resolve_location(&self, against: &Url, location: &str, repo: Option<&str>) -> Result<Url> {
        let u = against.join(location).map_err(|e| RegistryError::Protocol {
            site: self.site(repo),
            message: format!("the registry sent an invalid location {location:?}: {e}"),
        })?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(RegistryError::Protocol {
                site: self.site(repo),
                message: format!("the registry sent a location with scheme {:?}", u.scheme()),
            });
        }
        Ok(u)
    }

    async fn credential(&self, st: &mut AuthState) -> Result<Option<Credential>> {
        if let Some(c) = &st.credential {
            return Ok(c.clone());
        }
        let c = match &self.inner.options.credentials {
            Credentials::Anonymous => None,
            Credentials::Explicit(c) => Some(c.clone()),
            Credentials::DockerConfig => {
                let store = match self.inner.options.credential_store() {
                    Ok(s) => s,
                    // No HOME and no DOCKER_CONFIG: anonymous.
                    Err(_) => {
                        st.credential = Some(None);
                        return Ok(None);
                    }
                };
                let registry = self.inner.registry.clone();
                tokio::task::spawn_blocking(move || store.get(&registry))
                    .await
                    .map_err(|e| RegistryError::Credentials(format!("reading credentials: {e}")))??
            }
        };
        st.credential = Some(c.clone());
        Ok(c)
    }

    /// The `Authorization` value for a request needing `scope`, if any is needed.
    async fn authorization(&self, scope: &Scope, repo: Option<&str>) -> Result<Option<HeaderValue>> {
        let mut st = self.inner.auth.lock().await;
        let Some(ch) = st.challenge.clone() else {
            return Ok(None);
        };
        if ch.is_basic() {
            return Ok(match self.credential(&mut st).await? {
                Some(c) if !c.is_identity_token() => Some(basic_header(&c)),
                _ => None,
            });
        }
        if !ch.is_bearer() {
            return Ok(None);
        }
        st.tokens.retain(Token::fresh);
        if let Some(t) = st.tokens.iter().rev().find(|t| t.scope.covers(scope)) {
            return Ok(Some(bearer_header(&t.value)));
        }
        let t = self.fetch_token(&mut st, &ch, scope, repo).await?;
        let v = bearer_header(&t.value);
        st.tokens.push(t);
        Ok(Some(v))
    }

    async fn fetch_token(
        &self,
        st: &mut AuthState,
        ch: &Challenge,
        scope: &Scope,
        repo: Option<&str>,
    ) -> Result<Token> {
        let site = self.site(repo);
        let realm = ch.param("realm").unwrap_or_default();
        let realm_url = Url::parse(realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| RegistryError::Protocol {
                site: site.clone(),
                message: format!("the token realm {realm:?} is not an http(s) URL"),
            })?;
        let service = ch.param("service").map(str::to_string);
        let cred = self.credential(st).await?;
        let identity = cred
            .as_ref()
            .filter(|c| c.is_identity_token())
            .map(|c| c.secret.clone());
        let refresh = identity.clone().or_else(|| st.refresh_token.clone());
        if let Some(rt) = refresh {
            // OAuth2: POST grant_type=refresh_token.
            let mut form = Url::parse("http://form/").expect("static URL");
            {
                let mut q = form.query_pairs_mut();
                q.append_pair("grant_type", "refresh_token");
                q.append_pair("refresh_token", &rt);
                q.append_pair("client_id", "strata");
                if let Some(s) = &service {
                    q.append_pair("service", s);
                }
                if !scope.is_empty() {
                    q.append_pair("scope", &scope.key());
                }
            }
            let body = form.query().unwrap_or_default().to_string();
            let resp = self
                .http_for(&realm_url)?
                .post(realm_url.clone())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .map_err(|e| self.connection_error(&e, &Method::POST, &realm_url, repo))?;
            if resp.status().is_success() {
                return self.token_from(resp, scope, st, repo, &realm_url).await;
            }
            if identity.is_some() {
                let status = resp.status();
                let detail = self.error_for(resp, repo).await;
                return Err(RegistryError::Unauthorized {
                    site,
                    message: format!(
                        "the token service {} refused the stored identity token (HTTP {}): {detail}; log in again",
                        strip_query(&realm_url),
                        status.as_u16()
                    ),
                });
            }
            st.refresh_token = None;
        }
        let mut url = realm_url.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = &service {
                q.append_pair("service", s);
            }
            for s in scope.strings() {
                q.append_pair("scope", &s);
            }
            if let Some(c) = &cred {
                q.append_pair("account", &c.username);
                q.append_pair("client_id", "strata");
                q.append_pair("offline_token", "true");
            }
        }
        let mut rb = self.http_for(&url)?.get(url.clone());
        if let Some(c) = &cred {
            rb = rb.header(header::AUTHORIZATION, basic_header(c));
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| self.connection_error(&e, &Method::GET, &url, repo))?;
        match resp.status() {
            s if s.is_success() => self.token_from(resp, scope, st, repo, &realm_url).await,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let detail = api_message(resp).await;
                Err(RegistryError::Unauthorized {
                    site,
                    message: match &cred {
                        Some(c) => format!(
                            "the token service {} refused the credentials of user {:?}{detail}",
                            strip_query(&realm_url),
                            c.username
                        ),
                        None => format!(
                            "the token service {} refused anonymous access{detail}; log in with `strata login {}`",
                            strip_query(&realm_url),
                            self.inner.registry
                        ),
                    },
                })
            }
            _ => Err(self.error_for(resp, repo).await),
        }
    }

    async fn token_from(
        &self,
        resp: Response,
        scope: &Scope,
        st: &mut AuthState,
        repo: Option<&str>,
        realm: &Url,
    ) -> Result<Token> {
        let site = self.site(repo);
        let body = read_limited(resp, 1024 * 1024)
            .await
            .map_err(|e| RegistryError::Connection {
                site: site.clone(),
                what: format!("reading a token from {}", strip_query(realm)),
                cause: e.to_string(),
            })?;
        let tr: TokenResponse = serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
            site: site.clone(),
            message: format!(
                "the token service {} answered with invalid JSON: {e}",
                strip_query(realm)
            ),
        })?;
        let value = tr.value().ok_or_else(|| RegistryError::Protocol {
            site: site.clone(),
            message: format!("the token service {} answered without a token", strip_query(realm)),
        })?;
        if HeaderValue::from_str(&format!("Bearer {value}")).is_err() {
            return Err(RegistryError::Protocol {
                site: site.clone(),
                message: "the token service sent a token that cannot go in a header".into(),
            });
        }
        if let Some(rt) = tr.refresh_token.as_ref().filter(|t| !t.is_empty()) {
            st.refresh_token = Some(rt.clone());
        }
        Ok(Token {
            value: value.to_string(),
            expires: Instant::now() + tr.lifetime(),
            scope: scope.clone(),
        })
    }

    /// The client's retry policy (the transfers above it follow it too).
    pub fn retry_policy(&self) -> &crate::RetryPolicy {
        &self.inner.options.retry
    }

    /// Sends a request with authentication (see [`Client::send_authed`]);
    /// a request whose body can be sent again is tried again as the retry
    /// policy says when the connection fails or the registry answers
    /// "later" (429, 5xx), waiting its `Retry-After`. The last answer is
    /// returned as it is (its error names the registry's message).
    pub(crate) async fn send(&self, mut req: Req) -> Result<Response> {
        let policy = &self.inner.options.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let replayable = !matches!(req.body, ReqBody::Stream(_));
            let r = self.send_authed(&mut req).await;
            let wait = match &r {
                Ok(resp) if replayable && crate::retry::retryable_status(resp.status()) => {
                    policy.delay(attempt, crate::retry::retry_after(resp.headers()))
                }
                Err(RegistryError::Connection { .. }) if replayable => policy.delay(attempt, None),
                _ => None,
            };
            match wait {
                Some(wait) => {
                    drop(r);
                    tokio::time::sleep(wait).await;
                }
                None => return r,
            }
        }
    }

    /// Sends a request with authentication, retrying once on 401 with what
    /// the fresh challenge asks for; follows redirects.
    async fn send_authed(&self, req: &mut Req) -> Result<Response> {
        self.base_url().await?;
        let repo = req.repo.clone();
        let mut scope = req.scope.clone();
        let mut attempt = 0;
        loop {
            let auth = self.authorization(&scope, repo.as_deref()).await?;
            let resp = self.send_once(req, auth.as_ref()).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let picked = pick_challenge(&challenges_of(resp.headers()));
            let replayable = !matches!(req.body, ReqBody::Stream(_));
            if attempt > 0 || !replayable || picked.is_none() {
                return Err(self.unauthorized(resp, &scope, auth.is_some(), repo.as_deref()).await);
            }
            attempt += 1;
            let mut st = self.inner.auth.lock().await;
            if let Some(used) = &auth {
                st.tokens.retain(|t| bearer_header(&t.value) != *used);
            }
            let ch = picked.expect("checked");
            if let Some(s) = ch.param("scope") {
                scope.merge_text(s);
            }
            st.challenge = Some(ch);
        }
    }

    /// One request, following redirects by hand: `Authorization` goes only to
    /// the registry's own origin.
    async fn send_once(&self, req: &mut Req, auth: Option<&HeaderValue>) -> Result<Response> {
        let base = self.base_url().await?;
        let mut url = req.url.clone();
        let mut method = req.method.clone();
        let mut drop_body = false;
        for _hop in 0..10 {
            let mut rb = self.http_for(&url)?.request(method.clone(), url.clone());
            for (k, v) in &req.headers {
                if drop_body && (k == header::CONTENT_LENGTH || k == header::CONTENT_TYPE) {
                    continue;
                }
                rb = rb.header(k, v);
            }
            if let Some(a) = auth
                && same_origin(&url, &base)
            {
                rb = rb.header(header::AUTHORIZATION, a.clone());
            }
            if !drop_body {
                match &mut req.body {
                    ReqBody::Empty => {}
                    ReqBody::Bytes(b) => rb = rb.body(b.clone()),
                    ReqBody::Stream(s) => match s.take() {
                        Some(b) => rb = rb.body(b),
                        None => {
                            return Err(RegistryError::Protocol {
                                site: self.site(req.repo.as_deref()),
                                message: format!(
                                    "{method} {} was redirected or refused after its body was sent, and a stream cannot be sent twice",
                                    strip_query(&req.url)
                                ),
                            });
                        }
                    },
                }
            }
            let resp = rb
                .send()
                .await
                .map_err(|e| self.connection_error(&e, &method, &url, req.repo.as_deref()))?;
            let status = resp.status();
            let location = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_string);
            match (status, location) {
                (
                    StatusCode::MOVED_PERMANENTLY
                    | StatusCode::FOUND
                    | StatusCode::SEE_OTHER
                    | StatusCode::TEMPORARY_REDIRECT
                    | StatusCode::PERMANENT_REDIRECT,
                    Some(loc),
                ) => {
                    let next = self.resolve_location(&url, &loc, req.repo.as_deref())?;
                    if status == StatusCode::SEE_OTHER
                        || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                            && method == Method::POST)
                    {
                        if method != Method::HEAD {
                            method = Method::GET;
                        }
                        drop_body = true;
                    }
                    url = next;
                }
                _ => return Ok(resp),
            }
        }
        Err(RegistryError::Protocol {
            site: self.site(req.repo.as_deref()),
            message: format!("{} {}: too many redirects", req.method, strip_query(&req.url)),
        })
    }

    pub(crate) fn connection_error(
        &self,
        e: &reqwest::Error,
        method: &Method,
        url: &Url,
        repo: Option<&str>,
    ) -> RegistryError {
        let target = strip_query(url);
        let what = if e.is_connect() {
            format!("cannot connect to {target}")
        } else if e.is_timeout() {
            format!("{method} {target} timed out")
        } else {
            format!("{method} {target} failed")
        };
        RegistryError::Connection {
            site: self.site(repo),
            what,
            cause: chain(e),
        }
    }

    /// Turns a 401 into an error that says what to do.
    async fn unauthorized(&self, resp: Response, scope: &Scope, sent_auth: bool, repo: Option<&str>) -> RegistryError {
        let insufficient = challenges_of(resp.headers())
            .iter()
            .any(|c| c.param("error") == Some("insufficient_scope"));
        let detail = api_message(resp).await;
        let cred = {
            let mut st = self.inner.auth.lock().await;
            self.credential(&mut st).await.ok().flatten()
        };
        let wanted = if scope.is_empty() {
            String::new()
        } else {
            format!(" (needed: {})", scope.key())
        };
        let message = match cred {
            None => format!(
                "authentication required{wanted}{detail}; no credentials for {r}: log in with `strata login {r}`",
                r = self.inner.registry
            ),
            Some(c) if insufficient || !sent_auth => format!(
                "access denied to user {:?}{wanted}{detail}",
                if c.is_identity_token() {
                    "<identity token>"
                } else {
                    &c.username
                }
            ),
            Some(c) => format!(
                "the registry refused the credentials of user {:?}{detail}",
                if c.is_identity_token() {
                    "<identity token>"
                } else {
                    &c.username
                }
            ),
        };
        RegistryError::Unauthorized {
            site: self.site(repo),
            message,
        }
    }

    /// Ok when the status is one of `ok`, else the error the response describes.
    pub(crate) async fn expect(&self, resp: Response, ok: &[StatusCode], repo: Option<&str>) -> Result<Response> {
        if ok.contains(&resp.status()) {
            Ok(resp)
        } else {
            Err(self.error_for(resp, repo).await)
        }
    }

    /// The error a non-successful response describes.
    pub(crate) async fn error_for(&self, resp: Response, repo: Option<&str>) -> RegistryError {
        let status = resp.status();
        let retry_after = crate::retry::retry_after(resp.headers()).map(|d| d.as_secs());
        let errors = api_errors(resp).await;
        let site = self.site(repo);
        match status {
            StatusCode::TOO_MANY_REQUESTS => RegistryError::TooManyRequests {
                site,
                message: if errors.is_empty() {
                    "too many requests".into()
                } else {
                    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
                },
                retry_after,
            },
            StatusCode::UNAUTHORIZED => RegistryError::Unauthorized {
                site,
                message: if errors.is_empty() {
                    "authentication required".into()
                } else {
                    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
                },
            },
            _ => RegistryError::Api {
                site,
                status: status.as_u16(),
                errors,
                retry_after,
            },
        }
    }
}

fn basic_header(c: &Credential) -> HeaderValue {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.secret));
    let mut v = HeaderValue::from_str(&format!("Basic {b64}")).expect("base64 is a valid header value");
    v.set_sensitive(true);
    v
}

fn bearer_header(token: &str) -> HeaderValue {
    let mut v =
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    v.set_sensitive(true);
    v
}

pub(crate) fn challenges_of(headers: &HeaderMap) -> Vec<Challenge> {
    headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .collect()
}

/// Why [`read_limited`] stopped.
#[derive(Debug)]
pub(crate) enum ReadLimited {
    /// The body has more than this many bytes.
    TooLarge(u64),
    /// The connection broke (the error chain).
    Broken(String),
}

impl std::fmt::Display for ReadLimited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadLimited::TooLarge(limit) => write!(f, "the response is larger than {limit} bytes"),
            ReadLimited::Broken(cause) => f.write_str(cause),
        }
    }
}

/// Reads at most `limit` bytes of a body.
pub(crate) async fn read_limited(mut resp: Response, limit: u64) -> std::result::Result<Vec<u8>, ReadLimited> {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if out.len() as u64 + c.len() as u64 > limit {
                    return Err(ReadLimited::TooLarge(limit));
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(ReadLimited::Broken(chain(&e))),
        }
    }
}

/// The spec's error entries of a response body; a text body becomes one entry.
async fn api_errors(resp: Response) -> Vec<ApiErrorEntry> {
    let status = resp.status();
    let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        errors: Vec<ApiErrorEntry>,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(&body)
        && !env.errors.is_empty()
    {
        return env.errors;
    }
    let text = String::from_utf8_lossy(&body);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() || text.starts_with('<') {
        return vec![];
    }
    let mut short: String = text.chars().take(200).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    vec![ApiErrorEntry {
        code: format!("HTTP {}", status.as_u16()),
        message: short,
        detail: None,
    }]
}

/// `: CODE: message` of a response, or nothing.
async fn api_message(resp: Response) -> String {
    let errors = api_errors(resp).await;
    if errors.is_empty() {
        String::new()
    } else {
        format!(
            ": {}",
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
        )
    }
}

pub use crate::insecure::{
    api_host, insecure_registries_of_daemon_json, is_listed_insecure, is_loopback, system_insecure_registries,
};

#[cfg(test)]
mod tests;
