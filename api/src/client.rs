//! A client of the admin API (`buckets-admin` and the operator use it): signs each
//! request with the root credentials (`auth`) and turns the server's JSON errors into
//! `AdminError`s that say what the server said. `http_client` builds the pooled HTTP(S)
//! client it runs on (the node's peer transport uses the same one).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::AdminErrorCode;

/// Longest an admin call may take (a set change formats drives on other nodes first).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle pooled connections per node the admin client keeps.
const ADMIN_POOL_IDLE_PER_HOST: usize = 4;
/// A node on a working network accepts in milliseconds.
const ADMIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pooled HTTP/1 client for `http://` and `https://` endpoints; with `tls`, `https://`
/// servers are verified against its roots (without, only plain `http://` can succeed).
pub fn http_client(
    tls: Option<Arc<rustls::ClientConfig>>,
    pool_idle_per_host: usize,
    connect_timeout: Duration,
) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.enforce_http(false);
    connector.set_connect_timeout(Some(connect_timeout));
    let config = match tls {
        Some(config) => (*config).clone(),
        None => rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("default protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(pool_idle_per_host).build(https)
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// The server answered with an error: its status, code and message.
    #[error("{code} ({status}): {message}")]
    Refused { status: u16, code: AdminErrorCode, message: String },
    #[error("the server's answer is malformed: {0}")]
    Malformed(String),
}

impl AdminError {
    /// The server's error code, when it answered with one.
    pub fn code(&self) -> Option<&AdminErrorCode> {
        match self {
            AdminError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

pub struct AdminClient {
    pub endpoint: String,
    user: String,
    password: String,
    client: HttpClient,
}

impl AdminClient {
    pub fn new(
        endpoint: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
        client: HttpClient,
    ) -> Self {
        AdminClient { endpoint: endpoint.into(), user: user.into(), password: password.into(), client }
    }

    /// The HTTP client an admin client runs on; one is enough for any number of nodes.
    pub fn http(tls: Option<Arc<rustls::ClientConfig>>) -> HttpClient {
        http_client(tls, ADMIN_POOL_IDLE_PER_HOST, ADMIN_CONNECT_TIMEOUT)
    }

    /// One signed call; any HTTP status comes back as is.
    pub async fn call(&self, method: &str, path: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), AdminError> {
        let unreachable = |reason: String| AdminError::Unreachable { endpoint: self.endpoint.clone(), reason };
        let now = crate::auth::unix_now();
        let authorization = crate::auth::authorization(&self.user, self.password.as_bytes(), method, path, &body, now);
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.endpoint.trim_end_matches('/'), path))
            .header(http::header::AUTHORIZATION, authorization)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| unreachable(e.to_string()))?;
        let response = tokio::time::timeout(CALL_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| unreachable(format!("no answer in {} s", CALL_TIMEOUT.as_secs())))?
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| unreachable(e.to_string()))?.to_bytes().to_vec();
        Ok((status, body))
    }

    /// Calls the API and parses a 200 answer; anything else is the server's error.
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, AdminError> {
        let (status, body) = self.call(method, path, body).await?;
        if status != 200 {
            return Err(refusal(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| AdminError::Malformed(e.to_string()))
    }

    /// `json` with a typed request body.
    pub async fn send<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<T, AdminError> {
        let body = serde_json::to_vec(body).map_err(|e| AdminError::Malformed(e.to_string()))?;
        self.json(method, path, body).await
    }
}

/// The server's error, from its JSON body (`{"error": code, "message": …}`) or raw text.
pub fn refusal(status: u16, body: &[u8]) -> AdminError {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => AdminError::Refused {
            status,
            code: AdminErrorCode::parse(value["error"].as_str().unwrap_or("Error")),
            message: value["message"].as_str().unwrap_or_default().to_string(),
        },
        Err(_) => AdminError::Refused {
            status,
            code: AdminErrorCode::Other(format!("HTTP{status}")),
            message: String::from_utf8_lossy(body).trim().to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorBody;

    #[test]
    fn refusals_carry_the_servers_code_or_the_status() {
        let body = serde_json::to_vec(&ErrorBody::new(&AdminErrorCode::SetNotEmpty, "set 1 holds 3 objects")).unwrap();
        let refused = refusal(409, &body);
        assert_eq!(refused.code(), Some(&AdminErrorCode::SetNotEmpty));
        assert_eq!(refused.to_string(), "SetNotEmpty (409): set 1 holds 3 objects");
        assert_eq!(refusal(502, b"bad gateway\n").code(), Some(&AdminErrorCode::Other("HTTP502".into())));
    }
}
