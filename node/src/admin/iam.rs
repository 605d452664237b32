//! The identity store on the admin API: `/admin/v1/iam/users`, `…/keys`, `…/groups` and
//! `…/policies` (docs/admin-api.md).

use buckets_api::AdminErrorCode as Code;
use buckets_api::iam::{Attachment, MemberChange, NewKey, NewName, NewPolicy};
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use super::{json_error, json_ok};
use crate::iam::{Iam, IamError};

fn refused(error: IamError) -> Response<Full<Bytes>> {
    let (status, code) = match &error {
        IamError::NoSuchUser(_) => (StatusCode::NOT_FOUND, Code::NoSuchUser),
        IamError::NoSuchGroup(_) => (StatusCode::NOT_FOUND, Code::NoSuchGroup),
        IamError::NoSuchPolicy(_) => (StatusCode::NOT_FOUND, Code::NoSuchPolicy),
        IamError::NoSuchKey(_) => (StatusCode::NOT_FOUND, Code::NoSuchKey),
        IamError::AlreadyExists(_) => (StatusCode::CONFLICT, Code::AlreadyExists),
        IamError::Invalid(_) => (StatusCode::BAD_REQUEST, Code::InvalidArgument),
        IamError::MalformedPolicy(_) => (StatusCode::BAD_REQUEST, Code::MalformedPolicy),
        IamError::PolicyInUse(_) => (StatusCode::CONFLICT, Code::PolicyInUse),
        IamError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
    };
    json_error(status, code, &error.to_string())
}

fn answer<T: serde::Serialize>(result: Result<T, IamError>) -> Response<Full<Bytes>> {
    match result {
        Ok(value) => json_ok(&value),
        Err(e) => refused(e),
    }
}

fn done(result: Result<(), IamError>) -> Response<Full<Bytes>> {
    answer(result.map(|()| serde_json::json!({})))
}

/// Parses a request body (none reads as `{}`), or says why it cannot be read.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

macro_rules! body {
    ($body:expr) => {
        match parse($body) {
            Ok(value) => value,
            Err(why) => return json_error(StatusCode::BAD_REQUEST, Code::MalformedRequest, &why),
        }
    };
}

/// Answers `/iam/…` (the segments after `iam`).
pub async fn handle(iam: &Iam, method: &Method, segments: &[&str], body: &Bytes) -> Response<Full<Bytes>> {
    match (method, segments) {
        (&Method::GET, ["users"]) => json_ok(&iam.users()),
        (&Method::POST, ["users"]) => {
            let request: NewName = body!(body);
            answer(iam.add_user(&request.name).await)
        }
        (&Method::GET, ["users", name]) => answer(iam.user(name)),
        (&Method::DELETE, ["users", name]) => done(iam.remove_user(name).await),
        (&Method::POST, ["users", name, "enable"]) => answer(iam.set_enabled(name, true).await),
        (&Method::POST, ["users", name, "disable"]) => answer(iam.set_enabled(name, false).await),
        (&Method::GET, ["users", name, "keys"]) => answer(iam.user(name).map(|u| u.keys)),
        (&Method::POST, ["users", name, "keys"]) => {
            let request: NewKey = body!(body);
            answer(iam.create_key(name, request.expires).await)
        }
        (&Method::DELETE, ["keys", access_key]) => done(iam.remove_key(access_key).await),
        (&Method::GET, ["groups"]) => json_ok(&iam.groups()),
        (&Method::POST, ["groups"]) => {
            let request: NewName = body!(body);
            answer(iam.add_group(&request.name).await)
        }
        (&Method::GET, ["groups", name]) => answer(iam.group(name)),
        (&Method::DELETE, ["groups", name]) => done(iam.remove_group(name).await),
        (&Method::POST, ["groups", name, "members"]) => {
            let request: MemberChange = body!(body);
            answer(iam.change_members(name, &request).await)
        }
        (&Method::GET, ["policies"]) => json_ok(&iam.policies()),
        (&Method::POST, ["policies"]) => {
            let request: NewPolicy = body!(body);
            answer(iam.put_policy(&request.name, &request.document, false).await)
        }
        (&Method::PUT, ["policies", name]) => {
            let document = String::from_utf8_lossy(body);
            answer(iam.put_policy(name, &document, true).await)
        }
        (&Method::GET, ["policies", name]) => answer(iam.policy(name)),
        (&Method::DELETE, ["policies", name]) => done(iam.remove_policy(name).await),
        (&Method::POST, ["policies", name, action @ ("attach" | "detach")]) => {
            let request: Attachment = body!(body);
            answer(iam.attach(name, &request, *action == "attach").await)
        }
        _ => json_error(StatusCode::NOT_FOUND, Code::NotFound, "no such admin endpoint"),
    }
}
