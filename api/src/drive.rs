//! Drive URLs of a cluster, `http(s)://HOST:PORT/PATH`: the node that serves the drive
//! (its admin listener) and the drive's path on that node.

/// One drive of a multi-node cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DriveUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// `HOST:PORT` of the node's admin listener.
    pub authority: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct DriveUrlError {
    pub url: String,
    pub reason: &'static str,
}

impl DriveUrl {
    pub fn parse(url: &str) -> Result<DriveUrl, DriveUrlError> {
        let bad = |reason| DriveUrlError { url: url.to_string(), reason };
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
            ("http", rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            ("https", rest)
        } else {
            return Err(bad("drive URLs start with http:// or https://"));
        };
        let slash = rest.find('/').ok_or_else(|| bad("expected http://HOST:PORT/PATH"))?;
        let (authority, path) = rest.split_at(slash);
        if authority.is_empty() || !authority.contains(':') {
            return Err(bad("the drive URL needs HOST:PORT (the node's admin address)"));
        }
        if path.len() < 2 || path.split('/').any(|s| s == "..") {
            return Err(bad("the drive path must be absolute and plain"));
        }
        Ok(DriveUrl { scheme: scheme.to_string(), authority: authority.to_string(), path: path.to_string() })
    }
}
