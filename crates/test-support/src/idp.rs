//! The test identity provider (`idp/`, the npm package `oidc-provider` configured with
//! test users and clients) run as a child process, a signer for hand-made tokens, and a
//! [`Browser`]: a cookie jar that follows redirects and submits forms, to walk the real
//! login flow without a real browser.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// The `idp/` directory; its npm dependencies are installed on first use.
fn idp_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("idp");
    if !dir.join("node_modules").exists() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("run npm ci for the test identity provider (Node.js 20+ is needed)");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    dir
}

/// A running test provider.
pub struct Idp {
    child: Child,
    pub issuer: String,
    pub port: u16,
    /// Its private signing keys, `{"keys": [...]}`.
    pub jwks: Value,
    users: Value,
}

impl Idp {
    /// Starts a provider on a free port with these users (login name → claims).
    pub async fn start(users: Value) -> Self {
        Self::spawn(users, None, None).await
    }

    async fn spawn(users: Value, port: Option<u16>, jwks: Option<&Value>) -> Self {
        let dir = idp_dir();
        let mut command = Command::new("node");
        command
            .arg(dir.join("server.mjs"))
            .env("IDP_USERS", users.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(port) = port {
            command.args(["--port", &port.to_string()]);
        }
        let keys_file = jwks.map(|jwks| {
            let path = std::env::temp_dir().join(format!("idp-keys-{}.json", uuid::Uuid::new_v4()));
            std::fs::write(&path, jwks.to_string()).expect("write keys");
            command.arg("--jwks-file").arg(&path);
            path
        });
        let mut child = command.spawn().expect("start node idp/server.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the identity provider did not start within 60 s")
            .expect("read its stdout")
            .expect("it exited before serving");
        if let Some(path) = keys_file {
            drop(std::fs::remove_file(path));
        }
        let ready: Value = serde_json::from_str(
            line.strip_prefix("IDP_READY ")
                .unwrap_or_else(|| panic!("unexpected first line: {line}")),
        )
        .expect("IDP_READY JSON");
        let issuer = ready["issuer"].as_str().expect("issuer").to_owned();
        let port = issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in issuer");
        Self {
            child,
            issuer,
            port,
            jwks: ready["jwks"].clone(),
            users,
        }
    }

    /// Stops this provider and starts another on the same port (same issuer) with new
    /// keys, as a provider rotating its keys would appear.
    pub async fn rotate_keys(self) -> Self {
        let (port, users) = (self.port, self.users.clone());
        self.stop().await;
        Self::spawn(users, Some(port), None).await
    }

    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            drop(self.child.kill().await);
        }
    }

    /// The first private signing key.
    pub fn key(&self) -> &Value {
        &self.jwks["keys"][0]
    }

    /// An access token of the machine client `ci` (client_credentials) for `scope`.
    pub async fn client_credentials(&self, scope: &str) -> String {
        let discovery: Value =
            reqwest::get(format!("{}/.well-known/openid-configuration", self.issuer))
                .await
                .expect("discovery")
                .json()
                .await
                .expect("discovery JSON");
        let response: Value = reqwest::Client::new()
            .post(
                discovery["token_endpoint"]
                    .as_str()
                    .expect("token_endpoint"),
            )
            .basic_auth("ci", Some("ci-secret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&scope={}",
                scope.replace(' ', "%20").replace(':', "%3A")
            ))
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token JSON");
        response["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {response}"))
            .to_owned()
    }
}

/// How [`sign`] signs.
pub enum Signer<'a> {
    /// RS256/384/512 with a private JWK (the header's `alg` says which).
    Key(&'a Value),
    /// An HMAC (HS256…) with this secret.
    Secret(&'a str),
    /// An HMAC keyed with the PEM of this (private) JWK's public key.
    HmacWithPublicKey(&'a Value),
    /// `alg: none`, no signature.
    Unsigned,
}

/// A JWT with exactly this header and payload.
pub async fn sign(header: &Value, payload: &Value, signer: Signer<'_>) -> String {
    let mut input = json!({"header": header, "payload": payload});
    match signer {
        Signer::Key(jwk) => input["jwk"] = jwk.clone(),
        Signer::Secret(secret) => input["secret"] = json!(secret),
        Signer::HmacWithPublicKey(jwk) => {
            input["jwk"] = jwk.clone();
            input["hmac_with_public_key"] = json!(true);
        }
        Signer::Unsigned => {}
    }
    let mut child = Command::new("node")
        .arg(idp_dir().join("sign.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run node idp/sign.mjs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.to_string().as_bytes())
        .await
        .expect("write");
    drop(stdin);
    let output = child.wait_with_output().await.expect("sign.mjs output");
    assert!(output.status.success(), "sign.mjs failed");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// A minimal browser: one cookie jar (cookies are per host, not per port, as in real
/// browsers), redirects followed by hand, HTML forms submitted with their hidden fields.
pub struct Browser {
    http: reqwest::Client,
    pub jar: HashMap<String, String>,
}

/// The end of a sign-in.
pub struct SignedIn {
    pub location: reqwest::Url,
    /// The callback URL the provider sent the browser to (with code and state).
    pub callback: reqwest::Url,
    /// The callback's `Set-Cookie` headers.
    pub set_cookies: Vec<String>,
}

/// A page the browser ended on.
pub struct Page {
    pub url: reqwest::Url,
    pub status: u16,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            jar: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, headers: &reqwest::header::HeaderMap) {
        for value in headers.get_all(reqwest::header::SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let deleted = text.to_ascii_lowercase().contains("max-age=0") || value.is_empty();
            if deleted {
                self.jar.remove(name.trim());
            } else {
                self.jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    /// One request, no redirect followed.
    pub async fn request(
        &mut self,
        method: &str,
        url: &str,
        form: Option<&[(String, String)]>,
    ) -> Page {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, url)
            .header(reqwest::header::COOKIE, self.cookie_header());
        if let Some(form) = form {
            let body: String = form
                .iter()
                .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
                .collect::<Vec<_>>()
                .join("&");
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let response = request.send().await.expect("request");
        self.remember(response.headers());
        Page {
            url: response.url().clone(),
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        }
    }

    /// Follows redirects from `page` until a non-redirect, or until a URL `stop` accepts.
    pub async fn follow(&mut self, mut page: Page, stop: impl Fn(&reqwest::Url) -> bool) -> Page {
        for _ in 0..20 {
            if !matches!(page.status, 301 | 302 | 303 | 307 | 308) {
                return page;
            }
            let location = page
                .headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .expect("redirect without Location");
            let next = page.url.join(location).expect("Location URL");
            if stop(&next) {
                return Page {
                    url: next,
                    status: 0,
                    body: String::new(),
                    headers: reqwest::header::HeaderMap::new(),
                };
            }
            page = self.request("GET", next.as_str(), None).await;
        }
        panic!("too many redirects");
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let page = self.request("GET", url, None).await;
        self.follow(page, |_| false).await
    }

    /// Submits the page's first form with its hidden fields and `fields`; the answer is
    /// returned as is (redirects not followed).
    pub async fn submit(&mut self, page: &Page, fields: &[(&str, &str)]) -> Page {
        let form_start = page.body.find("<form").expect("a form on the page");
        let tag_end = form_start + page.body[form_start..].find('>').expect("form tag");
        let tag = &page.body[form_start..tag_end];
        let action = attribute(tag, "action").unwrap_or_default();
        let mut values: Vec<(String, String)> = Vec::new();
        for input in page.body[tag_end..].split("<input").skip(1) {
            let input = &input[..input.find('>').unwrap_or(input.len())];
            if attribute(input, "type").as_deref() == Some("hidden")
                && let (Some(name), Some(value)) =
                    (attribute(input, "name"), attribute(input, "value"))
            {
                values.push((name, value));
            }
        }
        for (name, value) in fields {
            values.retain(|(n, _)| n != name);
            values.push(((*name).to_owned(), (*value).to_owned()));
        }
        let url = page.url.join(&action).expect("form action");
        self.request("POST", url.as_str(), Some(&values)).await
    }

    /// Signs in at `gateway` through the provider as `login`: the login form, the consent
    /// form, back to the gateway's callback. Returns where the callback sent the browser
    /// (not fetched), e.g. `/evaluations` or `/sign-in?error=…`, and the cookies it set.
    pub async fn sign_in(&mut self, gateway: &str, return_to: &str, login: &str) -> SignedIn {
        let origin = reqwest::Url::parse(gateway).expect("gateway URL").origin();
        let on_gateway = |url: &reqwest::Url| url.origin() == origin;
        let start = self
            .request(
                "GET",
                &format!("{gateway}/auth/login?return_to={}", urlencode(return_to)),
                None,
            )
            .await;
        assert_eq!(
            start.status, 302,
            "login starts with a redirect: {}",
            start.body
        );
        let page = self.follow(start, on_gateway).await;
        assert_eq!(page.status, 200, "the provider's login page: {}", page.body);
        let page = self
            .submit(&page, &[("login", login), ("password", "any")])
            .await;
        let mut page = self.follow(page, on_gateway).await;
        // The consent screen, when the provider asks.
        if page.status == 200 && page.body.contains("<form") {
            let answer = self.submit(&page, &[]).await;
            page = self.follow(answer, on_gateway).await;
        }
        assert_eq!(
            page.status, 0,
            "ended back on the gateway, not at {} ({})",
            page.url, page.body
        );
        // Fetch the callback (sets the session) and return where it sends the browser.
        let callback = self.request("GET", page.url.as_str(), None).await;
        let location = callback
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("callback answered {} {}", callback.status, callback.body));
        SignedIn {
            location: callback.url.join(location).expect("Location URL"),
            callback: callback.url.clone(),
            set_cookies: callback
                .headers
                .get_all(reqwest::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect(),
        }
    }
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = start + tag[start..].find('"')?;
    Some(tag[start..end].replace("&amp;", "&"))
}

fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char);
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
