//! Authentication and authorization: none, htpasswd (bcrypt) Basic, or
//! bearer tokens from the built-in token service (`/token`, Docker's token
//! protocol). Who may do what comes from the `access` rules of the config.
//!
//! Tokens are verified only with the configured key and algorithm: whatever a
//! token's header says about keys (`jwk`, `jku`, `x5c`, `x5u`) is refused, and
//! `alg: none` never parses.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{AccessRule, Config, TokenConfig};
use crate::error::{ApiError, Error};

/// How long a verified password is remembered (bcrypt is slow on purpose).
const PASSWORD_CACHE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

/// What a request needs: actions on a repository, or the catalog.
#[derive(Debug, Clone)]
pub enum Scope {
    Repository(String, Vec<Action>),
    Catalog,
}

impl Scope {
    fn text(&self) -> String {
        match self {
            Scope::Repository(name, actions) => format!(
                "repository:{name}:{}",
                actions.iter().map(|a| a.name()).collect::<Vec<_>>().join(",")
            ),
            Scope::Catalog => "registry:catalog:*".into(),
        }
    }
}

/// Who is asking and what they may do.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: Option<String>,
    grants: Grants,
}

#[derive(Debug, Clone)]
enum Grants {
    /// No authentication configured.
    All,
    /// Decided by the access rules (Basic auth).
    Rules,
    /// What the token lists (name → actions); catalog when `catalog`.
    Token {
        access: HashMap<String, Vec<String>>,
        catalog: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResourceActions {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    #[serde(default)]
    access: Vec<ResourceActions>,
}

struct TokenService {
    cfg: TokenConfig,
    alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

pub struct Auth {
    users: HashMap<String, String>,
    basic_realm: Option<String>,
    token: Option<TokenService>,
    rules: Vec<AccessRule>,
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    base_url: Option<String>,
    tls: bool,
}

fn load_htpasswd(path: &std::path::Path) -> Result<HashMap<String, String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadHtpasswd {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |i: usize, problem| Error::Htpasswd {
        path: path.to_path_buf(),
        line: i + 1,
        problem,
    };
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err(bad(i, "expected user:hash"));
        };
        if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
            return Err(bad(i, "only bcrypt hashes are supported (htpasswd -B)"));
        }
        users.insert(user.to_string(), hash.to_string());
    }
    Ok(users)
}

impl TokenService {
    fn new(cfg: &TokenConfig) -> Result<TokenService, Error> {
        let (alg, encoding, decoding) = match (&cfg.secret, &cfg.key, &cfg.publickey) {
            (_, Some(key), Some(public)) => {
                let read = |what, path: &std::path::PathBuf| {
                    std::fs::read(path).map_err(|source| Error::ReadTokenKey {
                        what,
                        path: path.clone(),
                        source,
                    })
                };
                let k = read("key", key)?;
                let p = read("public key", public)?;
                if let (Ok(e), Ok(d)) = (EncodingKey::from_ec_pem(&k), DecodingKey::from_ec_pem(&p)) {
                    (Algorithm::ES256, e, d)
                } else if let (Ok(e), Ok(d)) = (EncodingKey::from_rsa_pem(&k), DecodingKey::from_rsa_pem(&p)) {
                    (Algorithm::RS256, e, d)
                } else if let (Ok(e), Ok(d)) = (EncodingKey::from_ed_pem(&k), DecodingKey::from_ed_pem(&p)) {
                    (Algorithm::EdDSA, e, d)
                } else {
                    return Err(Error::InvalidConfig(
                        "auth.token: key/publickey must be a PEM EC P-256, RSA or Ed25519 key pair".into(),
                    ));
                }
            }
            (Some(secret), _, _) => {
                if secret.len() < 16 {
                    return Err(Error::InvalidConfig(
                        "auth.token.secret must be at least 16 characters".into(),
                    ));
                }
                (
                    Algorithm::HS256,
                    EncodingKey::from_secret(secret.as_bytes()),
                    DecodingKey::from_secret(secret.as_bytes()),
                )
            }
            _ => {
                // A secret only this process knows: fine for one process.
                let s = crate::util::random_id() + &crate::util::random_id();
                (
                    Algorithm::HS256,
                    EncodingKey::from_secret(s.as_bytes()),
                    DecodingKey::from_secret(s.as_bytes()),
                )
            }
        };
        Ok(TokenService {
            cfg: cfg.clone(),
            alg,
            encoding,
            decoding,
        })
    }

    fn verify(&self, token: &str) -> Result<Claims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        if header.jwk.is_some() || header.jku.is_some() || header.x5c.is_some() || header.x5u.is_some() {
            return Err("token header names its own key; keys come only from the registry's configuration".into());
        }
        if header.alg != self.alg {
            return Err(format!(
                "token algorithm {:?} is not the configured {:?}",
                header.alg, self.alg
            ));
        }
        let mut v = Validation::new(self.alg);
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&[&self.cfg.service]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        v.leeway = 30;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| format!("invalid token: {e}"))
    }
}

fn parse_actions(list: &str) -> Vec<String> {
    list.split(',').filter(|a| !a.is_empty()).map(str::to_string).collect()
}

impl Auth {
    pub fn new(cfg: &Config) -> Result<Auth, Error> {
        let users = match &cfg.auth.htpasswd {
            Some(h) => load_htpasswd(&h.path)?,
            None => HashMap::new(),
        };
        Ok(Auth {
            users,
            basic_realm: cfg.auth.htpasswd.as_ref().map(|h| h.realm.clone()),
            token: cfg.auth.token.as_ref().map(TokenService::new).transpose()?,
            rules: cfg.access.clone(),
            verified: Mutex::new(HashMap::new()),
            base_url: cfg.http.host.clone(),
            tls: cfg.http.tls.is_some(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.basic_realm.is_some() || self.token.is_some()
    }

    /// May `user` (None: anonymous) do `action` on `repo` by the access rules?
    pub fn rules_allow(&self, user: Option<&str>, repo: &str, action: &str) -> bool {
        if self.rules.is_empty() {
            return user.is_some();
        }
        self.rules.iter().any(|r| {
            let who = r.users.iter().any(|u| match (u.as_str(), user) {
                ("*", Some(_)) => true,
                ("anonymous", None) => true,
                (name, Some(u)) => name == u,
                _ => false,
            });
            who && r.actions.iter().any(|a| a == action || a == "*")
                && r.repositories.iter().any(|p| crate::util::glob_match(p, repo))
        })
    }

    /// Checks a user's password (bcrypt), remembering recent successes.
    pub async fn check_password(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user).cloned() else {
            return false;
        };
        let key: [u8; 32] = {
            let d = strata_oci::Digest::sha256_of(format!("{user}\0{password}\0{hash}").as_bytes());
            let mut k = [0u8; 32];
            for (i, c) in d.hex().as_bytes().chunks(2).enumerate() {
                k[i] = u8::from_str_radix(std::str::from_utf8(c).unwrap_or("0"), 16).unwrap_or(0);
            }
            k
        };
        if let Some(t) = self.verified.lock().expect("cache").get(&key)
            && t.elapsed() < PASSWORD_CACHE
        {
            return true;
        }
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pw, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if ok {
            let mut c = self.verified.lock().expect("cache");
            if c.len() > 10_000 {
                c.clear();
            }
            c.insert(key, Instant::now());
        }
        ok
    }

    fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(b) = &self.base_url {
            return b.trim_end_matches('/').to_string();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
            .unwrap_or("localhost");
        format!("{}://{host}", if self.tls { "https" } else { "http" })
    }

    fn challenge(&self, headers: &HeaderMap, scopes: &[Scope], insufficient: bool) -> String {
        if let Some(t) = &self.token {
            let realm = t
                .cfg
                .realm
                .clone()
                .unwrap_or_else(|| format!("{}/token", self.base_url(headers)));
            let mut c = format!("Bearer realm=\"{realm}\",service=\"{}\"", t.cfg.service);
            if !scopes.is_empty() {
                let s: Vec<String> = scopes.iter().map(Scope::text).collect();
                c.push_str(&format!(",scope=\"{}\"", s.join(" ")));
            }
            if insufficient {
                c.push_str(",error=\"insufficient_scope\"");
            }
            c
        } else {
            format!("Basic realm=\"{}\"", self.basic_realm.as_deref().unwrap_or("registry"))
        }
    }

    fn unauthorized(&self, headers: &HeaderMap, scopes: &[Scope], msg: &str, insufficient: bool) -> ApiError {
        ApiError::unauthorized(msg)
            .with_header(header::WWW_AUTHENTICATE, &self.challenge(headers, scopes, insufficient))
    }

    /// Basic credentials of a request, if any.
    fn basic(headers: &HeaderMap) -> Option<(String, String)> {
        let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, rest) = v.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }

    fn bearer(headers: &HeaderMap) -> Option<&str> {
        let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    }

    /// Authenticates a request and checks that it may do all of `scopes`
    /// (an empty list: any authenticated request, as for `/v2/`).
    pub async fn authorize(&self, headers: &HeaderMap, scopes: &[Scope]) -> Result<Identity, ApiError> {
        if let Some(t) = &self.token {
            let Some(token) = Self::bearer(headers) else {
                return Err(self.unauthorized(headers, scopes, "authentication required", false));
            };
            let claims = t
                .verify(token)
                .map_err(|m| self.unauthorized(headers, scopes, &m, false))?;
            let mut access: HashMap<String, Vec<String>> = HashMap::new();
            let mut catalog = false;
            for ra in claims.access {
                match ra.kind.as_str() {
                    "repository" => access.entry(ra.name).or_default().extend(ra.actions),
                    "registry" if ra.name == "catalog" => catalog = ra.actions.iter().any(|a| a == "*"),
                    _ => {}
                }
            }
            let id = Identity {
                user: (claims.sub != "anonymous" && !claims.sub.is_empty()).then_some(claims.sub),
                grants: Grants::Token { access, catalog },
            };
            if !scopes.iter().all(|s| self.permits(&id, s)) {
                return Err(self.unauthorized(headers, scopes, "the token does not grant this access", true));
            }
            return Ok(id);
        }
        if self.basic_realm.is_some() {
            let user = match Self::basic(headers) {
                Some((u, p)) => {
                    if !self.check_password(&u, &p).await {
                        return Err(self.unauthorized(headers, scopes, "invalid username or password", false));
                    }
                    Some(u)
                }
                None => None,
            };
            let id = Identity {
                user,
                grants: Grants::Rules,
            };
            if scopes.is_empty() && id.user.is_none() {
                return Err(self.unauthorized(headers, scopes, "authentication required", false));
            }
            if !scopes.iter().all(|s| self.permits(&id, s)) {
                if id.user.is_none() {
                    return Err(self.unauthorized(headers, scopes, "authentication required", false));
                }
                return Err(ApiError::denied("access to the requested resource is not allowed"));
            }
            return Ok(id);
        }
        Ok(Identity {
            user: None,
            grants: Grants::All,
        })
    }

    /// Does `id` hold `scope`?
    pub fn permits(&self, id: &Identity, scope: &Scope) -> bool {
        match (&id.grants, scope) {
            (Grants::All, _) => true,
            (Grants::Rules, Scope::Repository(name, actions)) => actions
                .iter()
                .all(|a| self.rules_allow(id.user.as_deref(), name, a.name())),
            (Grants::Rules, Scope::Catalog) => id.user.is_some(),
            (Grants::Token { access, .. }, Scope::Repository(name, actions)) => {
                access.get(name).is_some_and(|granted| {
                    actions
                        .iter()
                        .all(|a| granted.iter().any(|g| g == a.name() || g == "*"))
                })
            }
            (Grants::Token { catalog, .. }, Scope::Catalog) => *catalog,
        }
    }

    /// Catalog entries this identity may see (those it may pull).
    pub fn may_list(&self, id: &Identity, repo: &str) -> bool {
        match &id.grants {
            Grants::All => true,
            _ => self.rules_allow(id.user.as_deref(), repo, "pull"),
        }
    }

    /// The token endpoint: `GET /token?service=S&scope=repository:NAME:pull,push`
    /// (Basic credentials optional), or the OAuth2 form POST.
    pub async fn issue_token(
        &self,
        headers: &HeaderMap,
        params: &[(String, String)],
    ) -> Result<serde_json::Value, ApiError> {
        let Some(t) = &self.token else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "UNSUPPORTED",
                "no token service configured",
            ));
        };
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let creds =
            Self::basic(headers).or_else(
                || match (get("grant_type").as_deref(), get("username"), get("password")) {
                    (Some("password"), Some(u), Some(p)) => Some((u, p)),
                    _ => None,
                },
            );
        let user = match creds {
            Some((u, p)) => {
                if !self.check_password(&u, &p).await {
                    return Err(ApiError::unauthorized("invalid username or password")
                        .with_header(header::WWW_AUTHENTICATE, &format!("Basic realm=\"{}\"", t.cfg.service)));
                }
                Some(u)
            }
            None => None,
        };
        if let Some(s) = get("service")
            && s != t.cfg.service
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                format!(
                    "this token service issues tokens for service {:?}, not {s:?}",
                    t.cfg.service
                ),
            ));
        }
        let mut access: Vec<ResourceActions> = Vec::new();
        let scopes = params
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' '));
        for scope in scopes {
            let mut parts = scope.splitn(3, ':');
            let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            match kind {
                "repository" => {
                    if crate::registry::check_name(name).is_err() {
                        continue;
                    }
                    let granted: Vec<String> = parse_actions(actions)
                        .into_iter()
                        .filter(|a| matches!(a.as_str(), "pull" | "push" | "delete"))
                        .filter(|a| self.rules_allow(user.as_deref(), name, a))
                        .collect();
                    access.push(ResourceActions {
                        kind: "repository".into(),
                        name: name.into(),
                        actions: granted,
                    });
                }
                "registry" if name == "catalog" && user.is_some() => access.push(ResourceActions {
                    kind: "registry".into(),
                    name: "catalog".into(),
                    actions: vec!["*".into()],
                }),
                _ => {}
            }
        }
        let now = crate::util::unix_now();
        let claims = Claims {
            iss: t.cfg.issuer.clone(),
            sub: user.unwrap_or_else(|| "anonymous".into()),
            aud: t.cfg.service.clone(),
            exp: now + t.cfg.expiration,
            nbf: now.saturating_sub(5),
            iat: now,
            jti: crate::util::random_id(),
            access,
        };
        let token = jsonwebtoken::encode(&Header::new(t.alg), &claims, &t.encoding)
            .map_err(|e| ApiError::internal(format!("signing token: {e}")))?;
        Ok(serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": t.cfg.expiration,
            "issued_at": now,
        }))
    }
}
