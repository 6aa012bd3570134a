//! The client side of the CLI: `client.json` (node URLs, owners, oracles) and a small
//! blocking HTTP client for the node's API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use lf_record::OwnerSecret;
use serde::{Deserialize, Serialize};

use crate::common::{home, random};

/// Default node URL.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9980";

/// One owner in `client.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OwnerEntry {
    /// `@` + base62 public key.
    pub public: String,
    /// SEC1 PEM private key.
    pub private: String,
    /// Whether this is the default owner.
    #[serde(default)]
    pub default: bool,
}

/// `client.json` (field names as in the seed).
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
pub struct ClientConfig {
    /// Node URLs, tried in order.
    #[serde(rename = "URLs", default)]
    pub urls: Vec<String>,
    /// Trusted oracles (used from the trust issue on).
    #[serde(rename = "Oracles", default)]
    pub oracles: Vec<String>,
    /// Owners by name.
    #[serde(rename = "Owners", default)]
    pub owners: BTreeMap<String, OwnerEntry>,
    #[serde(skip)]
    path: PathBuf,
}

impl ClientConfig {
    /// Loads `<home>/client.json`, or defaults if it does not exist.
    pub fn load(home: &Path) -> anyhow::Result<Self> {
        let path = home.join("client.json");
        let mut c = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice::<ClientConfig>(&b)
                .with_context(|| format!("{} is not valid client configuration", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ClientConfig::default(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if c.urls.is_empty() {
            c.urls.push(DEFAULT_URL.into());
        }
        c.path = path;
        Ok(c)
    }

    /// Saves (mode 0600: it holds private keys), keeping exactly one default owner.
    pub fn save(&mut self) -> anyhow::Result<()> {
        if !self.owners.values().any(|o| o.default)
            && let Some(o) = self.owners.values_mut().next()
        {
            o.default = true;
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        home::write_private(&self.path, &serde_json::to_vec_pretty(self)?)
    }

    /// Adds an owner; the first one becomes the default.
    pub fn add_owner(&mut self, name: &str, owner: &OwnerSecret) -> anyhow::Result<()> {
        if self.owners.contains_key(name) {
            bail!("an owner named {name:?} already exists");
        }
        let first = self.owners.is_empty();
        self.owners.insert(
            name.into(),
            OwnerEntry {
                public: owner.public().to_string(),
                private: owner.to_pem(),
                default: first,
            },
        );
        Ok(())
    }

    /// The owner named `name`, or the default one (made, named after the user, if
    /// there is none yet, as the seed does).
    pub fn owner(&mut self, name: Option<&str>) -> anyhow::Result<(String, OwnerSecret)> {
        let entry = match name {
            Some(n) => self
                .owners
                .get_key_value(n)
                .ok_or_else(|| anyhow!("no owner named {n:?} (see lf owner list)"))?,
            None => {
                if self.owners.is_empty() {
                    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
                    self.add_owner(&user, &random::new_owner())?;
                    self.save()?;
                }
                self.owners
                    .iter()
                    .find(|(_, o)| o.default)
                    .or_else(|| self.owners.iter().next())
                    .ok_or_else(|| anyhow!("no owners"))?
            }
        };
        let secret = OwnerSecret::from_pem(&entry.1.private)
            .with_context(|| format!("owner {:?} in client.json", entry.0))?;
        Ok((entry.0.clone(), secret))
    }
}

/// A blocking client for the node's HTTP API, trying each URL in order.
pub struct Api {
    agent: ureq::Agent,
    urls: Vec<String>,
    token: Option<String>,
}

impl Api {
    /// A client for `urls` (an explicit `-url` wins over client.json).
    pub fn new(urls: Vec<String>, token: Option<String>) -> Self {
        // Timeouts per phase, not one for the whole call: with a global (or per-call,
        // or resolve) timeout, ureq resolves the host on a thread of its own, even an
        // IP address, so each command started and tore down a thread (a tenth of an
        // `lf get`). Without one, a host name resolves with the system's own timeouts.
        // Buffers of 16 KiB, not ureq's 128 KiB: it zero-fills them up front, 64 page
        // faults per command; bodies stream through them either way.
        let minute = Some(Duration::from_secs(60));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_send_request(minute)
            .timeout_send_body(minute)
            .timeout_recv_response(minute)
            .timeout_recv_body(minute)
            .input_buffer_size(16 << 10)
            .output_buffer_size(16 << 10)
            .build()
            .into();
        Api { agent, urls, token }
    }

    fn call(
        &self,
        f: impl Fn(&ureq::Agent, &str) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        path: &str,
    ) -> anyhow::Result<Vec<u8>> {
        self.call_paged(f, path).map(|(b, _)| b)
    }

    /// Like `call`, with the answer's `X-LF-Next-Cursor` (more pages follow).
    fn call_paged(
        &self,
        f: impl Fn(&ureq::Agent, &str) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        path: &str,
    ) -> anyhow::Result<(Vec<u8>, Option<String>)> {
        let mut last = None;
        for base in &self.urls {
            let url = format!("{}{path}", base.trim_end_matches('/'));
            match f(&self.agent, &url) {
                Ok(mut resp) => {
                    let status = resp.status();
                    let next = resp
                        .headers()
                        .get("X-LF-Next-Cursor")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                    let body = resp
                        .body_mut()
                        .with_config()
                        .limit(64 << 20)
                        .read_to_vec()?;
                    if status.is_success() {
                        return Ok((body, next));
                    }
                    let msg = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v.get("Message").and_then(|m| m.as_str()).map(String::from))
                        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
                    bail!("node at {base} answered {}: {msg}", status.as_u16());
                }
                Err(e) => last = Some(anyhow!("cannot reach node at {base}: {e}")),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no node URL configured")))
    }

    /// GET returning JSON.
    pub fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let b = self.call(|a, u| a.get(u).call(), path)?;
        serde_json::from_slice(&b).with_context(|| format!("unexpected answer to GET {path}"))
    }

    /// POST a JSON body, returning JSON.
    pub fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        let b = self.post_json_raw(path, body)?;
        serde_json::from_slice(&b).with_context(|| format!("unexpected answer to POST {path}"))
    }

    /// POST a JSON body, returning the answer's bytes.
    pub fn post_json_raw(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<Vec<u8>> {
        let text = serde_json::to_vec(body)?;
        let token = self.token.clone();
        self.call(
            |a, u| {
                let mut r = a.post(u).header("Content-Type", "application/json");
                if let Some(t) = &token {
                    r = r.header("Authorization", format!("Bearer {t}"));
                }
                r.send(&text[..])
            },
            path,
        )
    }

    /// Runs a query through every page (the node answers at most 1000 result sets at
    /// a time, with a cursor for the rest).
    pub fn query_all(
        &self,
        q: &crate::common::api_json::QueryRequest,
    ) -> anyhow::Result<Vec<Vec<crate::common::api_json::QueryResult>>> {
        let mut q = q.clone();
        let mut all = Vec::new();
        loop {
            let text = serde_json::to_vec(&q)?;
            let (b, next) = self.call_paged(
                |a, u| {
                    a.post(u)
                        .header("Content-Type", "application/json")
                        .send(&text[..])
                },
                "/query",
            )?;
            let page: Vec<Vec<crate::common::api_json::QueryResult>> =
                serde_json::from_slice(&b).context("unexpected answer to POST /query")?;
            all.extend(page);
            match next {
                Some(c) if q.cursor.as_ref() != Some(&c) => q.cursor = Some(c),
                _ => return Ok(all),
            }
        }
    }

    /// POST raw bytes, returning JSON.
    pub fn post_bytes<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &[u8],
    ) -> anyhow::Result<T> {
        let b = self.call(
            |a, u| {
                a.post(u)
                    .header("Content-Type", "application/octet-stream")
                    .send(body)
            },
            path,
        )?;
        serde_json::from_slice(&b).with_context(|| format!("unexpected answer to POST {path}"))
    }
}
