//! CORS: Put/Get/DeleteBucketCors, the answer to a browser's preflight (`OPTIONS` with
//! `Origin` and `Access-Control-Request-Method`) from the bucket's rules, and the
//! `Access-Control-*` headers on an answer to a request whose origin and method a rule
//! allows. The first matching rule decides, as in S3.

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::error::not_found;
use super::{BucketsS3, store_error};
use crate::storage::{CorsRule, Store};

/// Most rules a bucket's CORS configuration may have.
const MAX_RULES: usize = 100;
const METHODS: &[&str] = &["GET", "PUT", "HEAD", "POST", "DELETE"];

/// `*` anywhere in a pattern stands for any run of characters (one `*` at most, as S3
/// allows); other characters compare exactly, or without case for header names.
fn wildcard_matches(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| if ignore_case { a.eq_ignore_ascii_case(b) } else { a == b };
    match pattern.split_once('*') {
        None => eq(pattern, value),
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.is_char_boundary(head.len())
                && value.is_char_boundary(value.len() - tail.len())
                && eq(&value[..head.len()], head)
                && eq(&value[value.len() - tail.len()..], tail)
        }
    }
}

fn rules_of(configuration: &CORSConfiguration) -> S3Result<Vec<CorsRule>> {
    let rules = &configuration.cors_rules;
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(s3_error!(MalformedXML, "A CORS configuration has 1 to {MAX_RULES} rules"));
    }
    let mut out = Vec::new();
    for rule in rules {
        if let Some(method) = rule.allowed_methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
            return Err(s3_error!(
                InvalidRequest,
                "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            ));
        }
        if rule.allowed_methods.is_empty() || rule.allowed_origins.is_empty() {
            return Err(s3_error!(MalformedXML, "Every CORS rule names an AllowedOrigin and an AllowedMethod"));
        }
        let headers = rule.allowed_headers.clone().unwrap_or_default();
        for value in rule.allowed_origins.iter().chain(&headers) {
            if value.matches('*').count() > 1 {
                return Err(s3_error!(
                    InvalidRequest,
                    "AllowedOrigin and AllowedHeader can have at most one * wildcard: {value}"
                ));
            }
        }
        out.push(CorsRule {
            id: rule.id.clone(),
            allowed_origins: rule.allowed_origins.clone(),
            allowed_methods: rule.allowed_methods.clone(),
            allowed_headers: headers,
            expose_headers: rule.expose_headers.clone().unwrap_or_default(),
            max_age_seconds: rule.max_age_seconds,
        });
    }
    Ok(out)
}

fn dto_of(rule: &CorsRule) -> CORSRule {
    CORSRule {
        id: rule.id.clone(),
        allowed_origins: rule.allowed_origins.clone(),
        allowed_methods: rule.allowed_methods.clone(),
        allowed_headers: (!rule.allowed_headers.is_empty()).then(|| rule.allowed_headers.clone()),
        expose_headers: (!rule.expose_headers.is_empty()).then(|| rule.expose_headers.clone()),
        max_age_seconds: rule.max_age_seconds,
    }
}

impl BucketsS3 {
    pub(super) async fn put_bucket_cors_impl(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let rules = rules_of(&req.input.cors_configuration)?;
        self.store
            .update_bucket_settings(&req.input.bucket, |meta| {
                meta.cors = rules;
                Ok(())
            })
            .await
            .map_err(store_error)?;
        Ok(S3Response::new(PutBucketCorsOutput::default()))
    }

    pub(super) async fn get_bucket_cors_impl(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let meta = self.store.head_bucket(&req.input.bucket).await.map_err(store_error)?.meta;
        if meta.cors.is_empty() {
            return Err(not_found(S3ErrorCode::NoSuchCORSConfiguration, "The CORS configuration does not exist"));
        }
        Ok(S3Response::new(GetBucketCorsOutput { cors_rules: Some(meta.cors.iter().map(dto_of).collect()) }))
    }

    pub(super) async fn delete_bucket_cors_impl(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.store
            .update_bucket_settings(&req.input.bucket, |meta| {
                meta.cors.clear();
                Ok(())
            })
            .await
            .map_err(store_error)?;
        Ok(S3Response::with_status(DeleteBucketCorsOutput::default(), http::StatusCode::NO_CONTENT))
    }
}

/// A cross-origin request: its bucket, origin and method (`Access-Control-Request-Method`
/// for a preflight).
pub struct CrossOrigin {
    bucket: String,
    origin: String,
    method: String,
    /// `Access-Control-Request-Headers` of a preflight.
    headers: Vec<String>,
    preflight: bool,
}

impl CrossOrigin {
    /// The cross-origin facts of a request to a bucket, if it carries an `Origin`.
    /// `domain`: `BUCKETS_DOMAIN`, for virtual-hosted-style requests.
    pub fn of<B>(request: &http::Request<B>, domain: Option<&str>) -> Option<CrossOrigin> {
        let headers = request.headers();
        let origin = headers.get(http::header::ORIGIN)?.to_str().ok()?.to_string();
        let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let host = host
            .rsplit_once(':')
            .map_or(host, |(name, port)| if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host });
        let virtual_bucket = domain.and_then(|d| host.strip_suffix(d)?.strip_suffix('.').map(str::to_string));
        let bucket = match virtual_bucket {
            Some(bucket) if !bucket.is_empty() => bucket,
            _ => request.uri().path().trim_start_matches('/').split('/').next()?.to_string(),
        };
        if bucket.is_empty() {
            return None;
        }
        let preflight = request.method() == http::Method::OPTIONS;
        let method = if preflight {
            headers.get(http::header::ACCESS_CONTROL_REQUEST_METHOD).and_then(|v| v.to_str().ok())?.to_string()
        } else {
            request.method().as_str().to_string()
        };
        let requested = headers
            .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect())
            .unwrap_or_default();
        Some(CrossOrigin { bucket, origin, method, headers: requested, preflight })
    }

    pub fn is_preflight(&self) -> bool {
        self.preflight
    }

    fn rule<'r>(&self, rules: &'r [CorsRule]) -> Option<&'r CorsRule> {
        rules.iter().find(|rule| {
            rule.allowed_origins.iter().any(|o| wildcard_matches(o, &self.origin, false))
                && rule.allowed_methods.contains(&self.method)
                && self.headers.iter().all(|h| rule.allowed_headers.iter().any(|a| wildcard_matches(a, h, true)))
        })
    }

    fn allow(&self, rule: &CorsRule, headers: &mut http::HeaderMap) {
        let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
        let mut set = |name: &'static str, value: &str| {
            if let Ok(value) = http::HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set("access-control-allow-origin", if any_origin { "*" } else { &self.origin });
        if !any_origin {
            set("access-control-allow-credentials", "true");
        }
        set("access-control-allow-methods", &rule.allowed_methods.join(", "));
        if !rule.expose_headers.is_empty() {
            set("access-control-expose-headers", &rule.expose_headers.join(", "));
        }
        if self.preflight {
            if !self.headers.is_empty() {
                set("access-control-allow-headers", &self.headers.join(", "));
            }
            if let Some(age) = rule.max_age_seconds {
                set("access-control-max-age", &age.to_string());
            }
        }
        set("vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method");
    }

    /// The answer to a preflight: 200 with the allowing rule's headers, or 403.
    pub async fn answer_preflight(&self, store: &Store) -> http::Response<s3s::Body> {
        let rules = store.bucket_settings(&self.bucket).await.map(|m| m.cors.clone()).unwrap_or_default();
        let mut response = http::Response::new(s3s::Body::empty());
        match self.rule(&rules) {
            Some(rule) => self.allow(rule, response.headers_mut()),
            None => {
                *response.status_mut() = http::StatusCode::FORBIDDEN;
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessForbidden</Code>\
                    <Message>CORSResponse: This CORS request is not allowed. This is usually because the evalution of \
                    Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not \
                    whitelisted by the resource's CORS spec.</Message></Error>";
                *response.body_mut() = s3s::Body::from(body.to_string());
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
            }
        }
        response
    }

    /// Adds the `Access-Control-*` headers to the answer of an actual request that a rule
    /// allows.
    pub async fn decorate(&self, store: &Store, headers: &mut http::HeaderMap) {
        let Ok(meta) = store.bucket_settings(&self.bucket).await else { return };
        if let Some(rule) = self.rule(&meta.cors) {
            self.allow(rule, headers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_headers_match_with_one_wildcard() {
        assert!(wildcard_matches("*", "https://a.example", false));
        assert!(wildcard_matches("https://*.example.com", "https://app.example.com", false));
        assert!(!wildcard_matches("https://*.example.com", "https://example.com.evil", false));
        assert!(!wildcard_matches("https://*.example.com", "http://app.example.com", false));
        assert!(wildcard_matches("x-amz-*", "X-Amz-Date", true));
        assert!(!wildcard_matches("https://a.example", "https://A.example", false));
        assert!(!wildcard_matches("ab*ba", "aba", false));
    }

    fn cross(method: &str, origin: &str, headers: &[&str]) -> CrossOrigin {
        CrossOrigin {
            bucket: "b".into(),
            origin: origin.into(),
            method: method.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            preflight: true,
        }
    }

    #[test]
    fn the_first_rule_that_allows_origin_method_and_headers_decides() {
        let rules = vec![
            CorsRule {
                id: Some("read".into()),
                allowed_origins: vec!["*".into()],
                allowed_methods: vec!["GET".into()],
                ..CorsRule::default()
            },
            CorsRule {
                id: Some("upload".into()),
                allowed_origins: vec!["http://app.test".into()],
                allowed_methods: vec!["PUT".into(), "POST".into()],
                allowed_headers: vec!["content-type".into(), "x-amz-*".into()],
                max_age_seconds: Some(600),
                ..CorsRule::default()
            },
        ];
        let rule = |c: CrossOrigin| c.rule(&rules).and_then(|r| r.id.clone());
        assert_eq!(rule(cross("GET", "http://any.test", &[])).as_deref(), Some("read"));
        assert_eq!(rule(cross("PUT", "http://app.test", &["content-type", "x-amz-date"])).as_deref(), Some("upload"));
        assert_eq!(rule(cross("PUT", "http://other.test", &[])), None);
        assert_eq!(rule(cross("PUT", "http://app.test", &["authorization"])), None);
        assert_eq!(rule(cross("DELETE", "http://app.test", &[])), None);
        let mut headers = http::HeaderMap::new();
        let upload = cross("PUT", "http://app.test", &["content-type"]);
        upload.allow(upload.rule(&rules).unwrap(), &mut headers);
        assert_eq!(headers["access-control-allow-origin"], "http://app.test");
        assert_eq!(headers["access-control-allow-credentials"], "true");
        assert_eq!(headers["access-control-max-age"], "600");
        assert_eq!(headers["access-control-allow-headers"], "content-type");
    }
}
