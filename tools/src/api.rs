//! `missivectl admin …`: the admin REST API of a running broker
//! (spec/openapi.yaml, `[api] listen`) over HTTP/1.1 with JSON bodies.
//!
//! Role: `admin call METHOD PATH [--data JSON]` reaches every endpoint; the
//! other subcommands are shortcuts for what an operator does by hand (health,
//! stats, audit, users, messages, word lists, webhooks, groups). The
//! credential is an API key (`--key`) or an admin token minted from the
//! broker's secret (`--secret`, user `admin`, valid 10 minutes).
//!
//! Invariants: every request is bounded by `--timeout`; a refusal (non-2xx)
//! prints the broker's `code` and `message` and exits with status 2; a 2xx
//! answer is printed as JSON (pretty unless `--json`, then one line).

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use missive_protocol::UserId;
use missive_protocol::token::{self, Claims, Role};
use serde_json::{Value, json};

use crate::admin::AdminRefused;

/// How to reach the admin REST API.
#[derive(Debug, Clone, Args)]
pub(crate) struct ApiArgs {
    /// Base URL of the broker's `[api] listen` address.
    #[arg(long, env = "MISSIVE_API", default_value = "http://127.0.0.1:7701")]
    pub(crate) api: String,
    /// An API key of `[api] keys`.
    #[arg(long, env = "MISSIVE_API_KEY", hide_env_values = true, conflicts_with = "secret")]
    pub(crate) key: Option<String>,
    /// The broker's token secret: an admin token is minted from it.
    #[arg(long, env = "MISSIVE_SECRET", hide_env_values = true)]
    pub(crate) secret: Option<String>,
    /// Timeout in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub(crate) timeout: f64,
}

/// `missivectl admin` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCmd {
    /// Any endpoint: `admin call POST /v1/users/import --data '{"users":[{"user_id":"a"}]}'`.
    Call {
        /// HTTP method (GET, POST, PUT, PATCH, DELETE).
        method: String,
        /// Path and query, e.g. /v1/stats.
        path: String,
        /// JSON body (`@FILE` reads it from a file).
        #[arg(long)]
        data: Option<String>,
    },
    /// Liveness and readiness.
    Health,
    /// Online users, registered users, groups, messages per second.
    Stats,
    /// The audit log, newest first.
    Audit {
        /// Records to show (1..=1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// The OpenAPI document.
    Openapi,
}

/// Runs one `admin` subcommand.
pub(crate) fn admin(json: bool, args: &ApiArgs, cmd: AdminCmd) -> anyhow::Result<()> {
    let c = Client::new(args)?;
    let v = match cmd {
        AdminCmd::Call { method, path, data } => {
            let body = match data {
                Some(d) => Some(parse_data(&d)?),
                None => None,
            };
            c.call(&method.to_ascii_uppercase(), &path, body.as_ref())?
        }
        AdminCmd::Health => {
            let live = c.call("GET", "/healthz", None)?;
            let ready = c.call("GET", "/readyz", None)?;
            json!({ "healthz": live, "readyz": ready })
        }
        AdminCmd::Stats => c.call("GET", "/v1/stats", None)?,
        AdminCmd::Audit { limit } => c.call("GET", &format!("/v1/audit?limit={limit}"), None)?,
        AdminCmd::Openapi => c.call("GET", "/openapi.json", None)?,
    };
    print(json, &v);
    Ok(())
}

fn print(json: bool, v: &Value) {
    if json {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
    }
}

/// `--data`: inline JSON or `@FILE`.
fn parse_data(d: &str) -> anyhow::Result<Value> {
    let text = match d.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
        None => d.to_owned(),
    };
    serde_json::from_str(&text).context("--data is not JSON")
}

/// A blocking REST client with one credential.
pub(crate) struct Client {
    base: String,
    bearer: String,
    agent: ureq::Agent,
}

impl Client {
    pub(crate) fn new(args: &ApiArgs) -> anyhow::Result<Self> {
        let bearer = match (&args.key, &args.secret) {
            (Some(k), _) => k.clone(),
            (None, Some(s)) if !s.is_empty() => admin_token(s)?,
            _ => bail!("give --key (an API key) or --secret (the broker's token secret)"),
        };
        let timeout = crate::commands::secs(args.timeout, "--timeout")?;
        let agent = ureq::AgentBuilder::new().timeout(timeout).build();
        Ok(Self { base: args.api.trim_end_matches('/').to_owned(), bearer, agent })
    }

    /// `METHOD path` with an optional JSON body; a non-2xx answer is an [`AdminRefused`].
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        if !path.starts_with('/') {
            bail!("the path must start with '/': {path}");
        }
        let req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.bearer));
        let res = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(anyhow!("{method} {}{path}: {e}", self.base)),
        };
        let status = resp.status();
        let text = resp.into_string().context("reading the response")?;
        let v: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            // NDJSON (history export) is returned as an array of its lines.
            serde_json::from_str(&text).unwrap_or_else(|_| {
                Value::Array(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
            })
        };
        if !(200..300).contains(&status) {
            let code = v["code"].as_u64().map(|c| c.to_string()).unwrap_or_else(|| format!("http_{status}"));
            let message = v["message"].as_str().map(str::to_owned).unwrap_or_else(|| text.trim().to_owned());
            return Err(AdminRefused::new(status, code, message).into());
        }
        Ok(v)
    }
}

/// An admin-role token for user `admin`, valid 10 minutes.
fn admin_token(secret: &str) -> anyhow::Result<String> {
    let now_ms = crate::commands::now_ms();
    let claims = Claims {
        user: UserId::new("admin").map_err(|e| anyhow!("{e}"))?,
        expires_at: now_ms / 1000 + 600,
        issued_at_ms: now_ms,
        role: Role::Admin,
        device: None,
        platform: None,
    };
    Ok(token::mint(secret.as_bytes(), &claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_inline_json_or_a_file() {
        assert_eq!(parse_data(r#"{"a":1}"#).expect("inline")["a"], 1);
        assert!(parse_data("not json").is_err());
        let dir = std::env::temp_dir().join(format!("missivectl-data-{}", std::process::id()));
        std::fs::write(&dir, r#"[1,2]"#).expect("write");
        assert_eq!(parse_data(&format!("@{}", dir.display())).expect("file"), json!([1, 2]));
        let _ = std::fs::remove_file(dir);
    }

    #[test]
    fn a_credential_is_required() {
        let args = ApiArgs { api: "http://127.0.0.1:1".into(), key: None, secret: None, timeout: 1.0 };
        assert!(Client::new(&args).is_err());
    }
}
