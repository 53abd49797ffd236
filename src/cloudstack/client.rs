//! A blocking CloudStack API client: one signed GET per call (`command`, `apiKey`,
//! `response=json`, `signatureVersion=3`, `expires`), JSON answers unwrapped from their
//! `<command>response` object, list calls paged with `page`/`pagesize`, and async jobs
//! polled with `queryAsyncJobResult` until they finish or a deadline passes.
//!
//! Every call has a bounded connect time and a bounded total time. Errors are typed and
//! name the API call; CloudStack's own `errortext` is kept because it tells the admin what
//! to fix. Neither key ever reaches a log line: only the command and its plain parameters
//! are logged.

use super::sign;
use crate::secret::Secret;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the management server is and how to sign for it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The API endpoint, e.g. `https://cloud.example.org/client/api`.
    pub url: String,
    pub api_key: Secret,
    pub secret_key: Secret,
    pub connect_timeout: Duration,
    /// The whole of one call: connect, send, receive.
    pub call_timeout: Duration,
    /// Extra PEM CA certificates to trust (an internal CA); else the system's.
    pub ca_file: Option<PathBuf>,
}

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error (CloudStack: 401, 431, 432, 530...).
    #[error("{command}: HTTP {status}{}: {text}", errorcode_suffix(*.errorcode, *.status))]
    Server {
        command: String,
        status: u16,
        errorcode: Option<u64>,
        text: String,
    },
    /// No answer: connection refused, TLS, time-out.
    #[error("{command}: {url}: {message}")]
    Transport {
        command: String,
        url: String,
        message: String,
    },
    /// An answer that is not what CloudStack sends.
    #[error("{command}: unexpected answer: {message}")]
    Unexpected { command: String, message: String },
    /// Bad configuration (URL, CA file).
    #[error("{0}")]
    Config(String),
}

/// An answer to `command` that is not what CloudStack sends.
pub(super) fn unexpected(command: &str, message: impl Into<String>) -> ApiError {
    let (command, message) = (command.into(), message.into());
    ApiError::Unexpected { command, message }
}

fn errorcode_suffix(code: Option<u64>, status: u16) -> String {
    match code {
        Some(c) if c != u64::from(status) => format!(" (errorcode {c})"),
        _ => String::new(),
    }
}

/// How an async job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// `jobstatus` 1; the job's result object.
    Done(Value),
    /// `jobstatus` 2; CloudStack's `errortext`.
    Failed(String),
    /// Still `jobstatus` 0 when the deadline passed.
    Pending,
}

pub struct Client {
    agent: ureq::Agent,
    config: ClientConfig,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, ApiError> {
        let lower = config.url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(ApiError::Config(format!(
                "--api-url {:?} must start with http:// or https:// (e.g. https://HOST:8080/client/api)",
                config.url
            )));
        }
        if config.url.contains(['?', '#']) {
            return Err(ApiError::Config(format!(
                "--api-url {:?} must not carry a query; give the endpoint only",
                config.url
            )));
        }
        let roots = match &config.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    ApiError::Config(format!("cannot read CA file {}: {e}", path.display()))
                })?;
                let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    return Err(ApiError::Config(format!(
                        "CA file {} holds no PEM certificate",
                        path.display()
                    )));
                }
                ureq::tls::RootCerts::new_with_certs(&certs)
            }
            None => ureq::tls::RootCerts::PlatformVerifier,
        };
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            .root_certs(roots)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_global(Some(config.call_timeout))
            .max_redirects(0)
            .user_agent(concat!("systemvm/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Client { agent, config })
    }

    /// The parameters of a request, signed: what goes on the wire, in order.
    fn signed_query(&self, command: &str, params: &[(&str, String)]) -> String {
        let mut all: Vec<(String, String)> = vec![("command".into(), command.into())];
        all.extend(params.iter().map(|(k, v)| (k.to_string(), v.clone())));
        all.push(("response".into(), "json".into()));
        all.push(("apiKey".into(), self.config.api_key.expose().into()));
        all.push(("signatureVersion".into(), "3".into()));
        let expires = crate::epoch::now() + sign::DEFAULT_EXPIRY_SECS;
        all.push(("expires".into(), sign::expires_at(expires)));
        let signature = sign::signature(&all, &self.config.secret_key);
        sign::query(&all, &signature)
    }

    /// One call; the object inside `<command>response`.
    pub fn call(&self, command: &str, params: &[(&str, String)]) -> Result<Value, ApiError> {
        self.call_within(command, params, None)
    }

    /// One call that gives up after `limit` (if shorter than the configured call time).
    fn call_within(
        &self,
        command: &str,
        params: &[(&str, String)],
        limit: Option<Duration>,
    ) -> Result<Value, ApiError> {
        let shown: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        tracing::debug!("CloudStack API: {command} {}", shown.join(" "));
        let url = format!("{}?{}", self.config.url, self.signed_query(command, params));
        let transport = |message: String| ApiError::Transport {
            command: command.into(),
            url: self.config.url.clone(),
            message,
        };
        let timeout = limit.map_or(self.config.call_timeout, |l| {
            l.clamp(Duration::from_millis(100), self.config.call_timeout)
        });
        let mut response = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call()
            .map_err(|e| transport(describe(&e)))?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            return Err(redirected(command, status, &response));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| transport(describe(&e)))?;
        let json: Option<Value> = serde_json::from_str(&body).ok();
        let inner = json.as_ref().and_then(|v| unwrap_response(v, command));
        if !(200..300).contains(&status) {
            return Err(refused(command, status, inner, &body));
        }
        match inner {
            Some(v) => Ok(v.clone()),
            None if json.is_none() => Err(unexpected(
                command,
                format!("not JSON: {}", truncate(body.trim(), 120)),
            )),
            None => {
                let message = format!("no {}response object", command.to_ascii_lowercase());
                Err(unexpected(command, message))
            }
        }
    }

    /// Every item of a list call, page by page. `key` is the array's name (`host`,
    /// `systemvm`, `router`). Stops at the reported `count`, at a short page, or after a
    /// bound on pages, whichever comes first.
    pub fn list(
        &self,
        command: &str,
        key: &str,
        params: &[(&str, String)],
        page_size: usize,
    ) -> Result<Vec<Value>, ApiError> {
        let page_size = page_size.max(1);
        let mut items = Vec::new();
        for page in 1..=10_000usize {
            let mut p: Vec<(&str, String)> = params.to_vec();
            p.push(("page", page.to_string()));
            p.push(("pagesize", page_size.to_string()));
            let answer = self.call(command, &p)?;
            let batch = match answer.get(key) {
                None => Vec::new(),
                Some(Value::Array(a)) => a.clone(),
                Some(_) => return Err(unexpected(command, format!("{key} is not a list"))),
            };
            let count = answer.get("count").and_then(Value::as_u64);
            let got = batch.len();
            items.extend(batch);
            let all_in = count.is_some_and(|c| items.len() as u64 >= c);
            if got < page_size || all_in {
                break;
            }
        }
        Ok(items)
    }

    /// Start an async command and return its `jobid`.
    pub fn start_job(&self, command: &str, params: &[(&str, String)]) -> Result<String, ApiError> {
        let answer = self.call(command, params)?;
        answer
            .get("jobid")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| unexpected(command, "no jobid in the answer"))
    }

    /// Poll a job every `interval` until it ends or `deadline` passes. A poll that gets no
    /// answer before the deadline counts as still pending, so a stalled server cannot
    /// stretch the deadline by a whole call time.
    pub fn wait_job(
        &self,
        jobid: &str,
        interval: Duration,
        deadline: Instant,
    ) -> Result<JobOutcome, ApiError> {
        const COMMAND: &str = "queryAsyncJobResult";
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer =
                match self.call_within(COMMAND, &[("jobid", jobid.to_string())], Some(left)) {
                    Ok(answer) => answer,
                    Err(ApiError::Transport { .. }) if Instant::now() >= deadline => {
                        return Ok(JobOutcome::Pending)
                    }
                    Err(e) => return Err(e),
                };
            let status = answer.get("jobstatus").and_then(Value::as_u64);
            let result = answer.get("jobresult").cloned().unwrap_or(Value::Null);
            match status {
                Some(0) => {}
                Some(1) => return Ok(JobOutcome::Done(result)),
                Some(2) => {
                    let text = result
                        .get("errortext")
                        .and_then(Value::as_str)
                        .unwrap_or("the job failed without an error text");
                    return Ok(JobOutcome::Failed(text.to_string()));
                }
                other => {
                    let message = format!("job {jobid}: jobstatus {other:?}");
                    return Err(unexpected(COMMAND, message));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(JobOutcome::Pending);
            }
            std::thread::sleep(interval.min(deadline - now));
        }
    }
}

/// `{"listhostsresponse": {...}}` to the inner object. CloudStack lower-cases the command.
fn unwrap_response<'a>(value: &'a Value, command: &str) -> Option<&'a Value> {
    let obj = value.as_object()?;
    let wanted = format!("{}response", command.to_ascii_lowercase());
    // A few commands answer under another name (e.g. errors of unknown commands).
    let sole = || obj.values().next().filter(|_| obj.len() == 1);
    obj.get(&wanted).or_else(sole).filter(|v| v.is_object())
}

/// A ureq error as one short phrase, without the URL (it carries the signature).
/// A redirect: CloudStack answers API calls itself, so the URL is wrong; say where it points.
fn redirected(command: &str, status: u16, response: &ureq::http::Response<ureq::Body>) -> ApiError {
    let to = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| l.split('?').next().unwrap_or("").to_string())
        .unwrap_or_default();
    ApiError::Server {
        command: command.into(),
        status,
        errorcode: None,
        text: format!("redirected to {to:?}; give that as --api-url"),
    }
}

/// A refusal: CloudStack's own `errortext` and `errorcode`, or what the status means.
fn refused(command: &str, status: u16, inner: Option<&Value>, body: &str) -> ApiError {
    let field = |key: &str| inner.and_then(|v| v.get(key));
    let errortext = field("errortext")
        .and_then(Value::as_str)
        .map(str::to_string);
    let text = errortext.unwrap_or_else(|| {
        let first = body.lines().next().unwrap_or("").trim();
        let reason = match status {
            401 => "signature or API key refused; check the keys and this machine's clock",
            404 => "no API here; the endpoint usually ends in /client/api",
            _ => "",
        };
        match (reason, first.is_empty()) {
            ("", true) => "no error text".to_string(),
            ("", false) => truncate(first, 200),
            (r, _) => r.to_string(),
        }
    });
    ApiError::Server {
        command: command.into(),
        status,
        errorcode: field("errorcode").and_then(Value::as_u64),
        text,
    }
}

fn describe(err: &ureq::Error) -> String {
    match err {
        ureq::Error::Timeout(what) => format!("timed out ({what:?})"),
        ureq::Error::Io(e) => e.to_string(),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::NativeTls(e) => {
            format!("TLS: {e} (an internal CA? pass --api-ca-file with its certificate)")
        }
        other => {
            let text = other.to_string();
            // Never echo a URL back: it holds the apiKey and the signature.
            match text.find("http") {
                Some(i) => text[..i].trim_end().to_string(),
                None => text,
            }
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unwraps_the_command_object() {
        let v = json!({"listhostsresponse": {"count": 1, "host": []}});
        assert_eq!(
            unwrap_response(&v, "listHosts").and_then(|v| v.get("count")),
            Some(&json!(1))
        );
        assert!(unwrap_response(&json!([1]), "listHosts").is_none());
    }

    #[test]
    fn server_errors_name_the_call_and_keep_errortext() {
        let e = ApiError::Server {
            command: "stopSystemVm".into(),
            status: 431,
            errorcode: Some(431),
            text: "Unable to execute API command stopsystemvm due to missing parameter id".into(),
        };
        assert_eq!(
            e.to_string(),
            "stopSystemVm: HTTP 431: Unable to execute API command stopsystemvm due to missing parameter id"
        );
    }
}
