//! A client of the admin API (`buckets-admin` and the operator use it): signs each
//! request with the root credentials (`auth`) and turns the server's JSON errors into
//! `AdminError`s that say what the server said.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::rpc::client::PeerClient;

/// Longest an admin call may take (a set change formats drives on other nodes first).
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// The server answered with an error: its status, code (`SetNotEmpty`, …) and message.
    #[error("{code} ({status}): {message}")]
    Refused { status: u16, code: String, message: String },
    #[error("the server's answer is malformed: {0}")]
    Malformed(String),
}

impl AdminError {
    /// The server's error code, when it answered with one.
    pub fn code(&self) -> Option<&str> {
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
    client: PeerClient,
}

impl AdminClient {
    pub fn new(
        endpoint: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
        client: PeerClient,
    ) -> Self {
        AdminClient { endpoint: endpoint.into(), user: user.into(), password: password.into(), client }
    }

    /// One signed call; any HTTP status comes back as is.
    pub async fn call(&self, method: &str, path: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), AdminError> {
        let unreachable = |reason: String| AdminError::Unreachable { endpoint: self.endpoint.clone(), reason };
        let now = crate::clock::unix_now();
        let authorization = super::auth::authorization(&self.user, self.password.as_bytes(), method, path, &body, now);
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
}

/// The server's error, from its JSON body (`{"error": code, "message": …}`) or raw text.
pub fn refusal(status: u16, body: &[u8]) -> AdminError {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => AdminError::Refused {
            status,
            code: value["error"].as_str().unwrap_or("Error").to_string(),
            message: value["message"].as_str().unwrap_or_default().to_string(),
        },
        Err(_) => AdminError::Refused {
            status,
            code: format!("HTTP{status}"),
            message: String::from_utf8_lossy(body).trim().to_string(),
        },
    }
}
