//! Policies in the AWS IAM policy language, and whether they allow a request: a pure
//! evaluator (no I/O) for identity policies (of users, groups, sessions) and bucket
//! policies. A policy is checked when it is stored, with AWS's rules and a clear reason;
//! evaluating a stored policy never fails. How the decision is made (docs/policies.md):
//! an explicit Deny in any policy wins, else any Allow allows, else the request is denied.

mod actions;
pub mod condition;
pub mod pattern;

use std::collections::BTreeMap;

use serde_json::Value;

use condition::Operator;
use pattern::{Pattern, Variables};

pub use actions::S3_ACTIONS;

/// The largest bucket policy S3 takes, in bytes.
pub const MAX_BUCKET_POLICY_BYTES: usize = 20 * 1024;
/// The largest identity policy IAM takes, in characters other than white space.
pub const MAX_IDENTITY_POLICY_CHARS: usize = 6 * 1024;

/// Where a policy is attached, which decides what it may say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Of a user, a group or a session: no Principal; any S3 resource.
    Identity,
    /// Of this bucket: a Principal in every statement; resources in this bucket only.
    Bucket(String),
}

/// Why a policy is refused, said so a user can fix it (S3's MalformedPolicy message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn refuse<T>(message: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(message.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// Who a bucket policy statement names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principals {
    Everyone,
    /// User ARNs and canonical ids.
    Listed(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    operator: Operator,
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    effect: Effect,
    /// `(who, NotPrincipal)`; `None` in identity policies.
    principal: Option<(Principals, bool)>,
    /// `(patterns, NotAction)`
    actions: (Vec<String>, bool),
    /// `(patterns, NotResource)`
    resources: (Vec<String>, bool),
    conditions: Vec<Condition>,
}

/// A checked policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Version 2012-10-17 (policy variables); 2008-10-17 reads `${…}` as text.
    variables: bool,
    statements: Vec<Statement>,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    User { arn: String, canonical_id: String },
}

/// The request's condition keys (names compared without regard to case), each with one
/// or more values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context(BTreeMap<String, Vec<String>>);

impl Context {
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.insert(key, value);
        self
    }

    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        self.0.entry(key.to_ascii_lowercase()).or_default().push(value.into());
    }

    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.0.get(&key.to_ascii_lowercase()).map(Vec::as_slice)
    }
}

/// One request, as a policy sees it.
pub struct Request<'a> {
    pub principal: &'a Principal,
    /// `s3:GetObject`
    pub action: &'a str,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`
    pub resource: &'a str,
    pub context: &'a Context,
}

/// What a set of policies decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A statement denies it: nothing else can allow it.
    ExplicitDeny,
    /// No statement allows it.
    ImplicitDeny,
}

/// The decision of policies that apply to one request in one account (identity policies
/// and the bucket's policy): an explicit Deny anywhere wins, then any Allow.
pub fn decide<'p>(policies: impl IntoIterator<Item = &'p Policy>, request: &Request<'_>) -> Decision {
    let mut allowed = false;
    for policy in policies {
        match policy.effect_on(request) {
            Some(Effect::Deny) => return Decision::ExplicitDeny,
            Some(Effect::Allow) => allowed = true,
            None => {}
        }
    }
    if allowed { Decision::Allow } else { Decision::ImplicitDeny }
}

impl Policy {
    /// Parses and checks `document` as a policy of `kind`.
    pub fn parse(document: &str, kind: &Kind) -> Result<Policy, PolicyError> {
        match kind {
            Kind::Bucket(_) if document.len() > MAX_BUCKET_POLICY_BYTES => {
                return refuse(format!("Policies must be at most {MAX_BUCKET_POLICY_BYTES} bytes"));
            }
            Kind::Identity if document.chars().filter(|c| !c.is_whitespace()).count() > MAX_IDENTITY_POLICY_CHARS => {
                return refuse(format!(
                    "Policies must be at most {MAX_IDENTITY_POLICY_CHARS} characters, not counting white space"
                ));
            }
            _ => {}
        }
        let value: Value =
            serde_json::from_str(document).map_err(|e| PolicyError(format!("This policy is not valid JSON: {e}")))?;
        let Value::Object(fields) = value else { return refuse("A policy is a JSON object") };
        let mut variables = false;
        let mut statements = None;
        for (name, field) in &fields {
            match name.as_str() {
                "Version" => {
                    variables = match field.as_str() {
                        Some("2012-10-17") => true,
                        Some("2008-10-17") => false,
                        _ => return refuse("The policy Version must be \"2012-10-17\" or \"2008-10-17\""),
                    }
                }
                "Id" => {
                    if !field.is_string() {
                        return refuse("Id must be a string");
                    }
                }
                "Statement" => statements = Some(field),
                other => return refuse(format!("Unknown field {other} in the policy")),
            }
        }
        let statements = match statements {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect::<Vec<_>>(),
            Some(statement @ Value::Object(_)) => vec![statement],
            _ => return refuse("Missing required field Statement (an object, or a non-empty list of them)"),
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(index, s)| statement(s, index + 1, kind))
            .collect::<Result<_, _>>()?;
        Ok(Policy { variables, statements })
    }

    /// Why a bucket's Block Public Access switches refuse to store this policy on it, if
    /// they do: a public policy while `BlockPublicPolicy` is on. PutBucketPolicy and the
    /// admin API both ask.
    pub fn refused_by_block_public_policy(&self, block_public_policy: bool) -> Option<&'static str> {
        (block_public_policy && self.is_public())
            .then_some("The bucket's Block Public Access settings refuse a public policy")
    }

    /// Whether the policy grants anything to everyone, as S3's Block Public Access and
    /// GetBucketPolicyStatus judge it: an Allow to `*` that no condition pins to fixed
    /// values of a key that names who or where from (an address range narrower than the
    /// whole Internet, an account, a user id).
    /// Whether a condition of the policy uses a key that starts with `prefix` (ignoring
    /// case), so the caller knows which costly keys to fill in.
    pub fn uses_key(&self, prefix: &str) -> bool {
        let prefix = prefix.to_ascii_lowercase();
        self.statements.iter().flat_map(|s| &s.conditions).any(|c| c.key.to_ascii_lowercase().starts_with(&prefix))
    }

    pub fn is_public(&self) -> bool {
        const PINNING_KEYS: &[&str] = &[
            "aws:sourceip",
            "aws:sourcearn",
            "aws:sourcevpc",
            "aws:sourcevpce",
            "aws:sourceaccount",
            "aws:sourceowner",
            "aws:principalorgid",
            "aws:principalaccount",
            "aws:principalarn",
            "aws:userid",
            "aws:username",
        ];
        let pins = |condition: &Condition| {
            let operator = condition.operator;
            !operator.negated
                && !operator.if_exists
                && operator.qualifier == condition::Qualifier::Single
                && matches!(
                    operator.kind,
                    condition::Kind::StringEquals
                        | condition::Kind::StringEqualsIgnoreCase
                        | condition::Kind::IpAddress
                        | condition::Kind::ArnLike
                )
                && PINNING_KEYS.contains(&condition.key.to_ascii_lowercase().as_str())
                && condition.values.iter().all(|v| !v.contains(['*', '?']) && !v.ends_with("/0") && !v.contains("${"))
        };
        self.statements.iter().any(|statement| {
            statement.effect == Effect::Allow
                && matches!(statement.principal, Some((Principals::Everyone, false)))
                && !statement.conditions.iter().any(pins)
        })
    }

    /// What this policy says of `request`: the Deny or Allow of a matching statement
    /// (Deny if any denies), or nothing.
    pub fn effect_on(&self, request: &Request<'_>) -> Option<Effect> {
        let mut effect = None;
        for statement in &self.statements {
            if self.applies(statement, request) {
                if statement.effect == Effect::Deny {
                    return Some(Effect::Deny);
                }
                effect = Some(Effect::Allow);
            }
        }
        effect
    }

    fn applies(&self, statement: &Statement, request: &Request<'_>) -> bool {
        let context = request.context;
        let resolve_values = |name: &str| context.get(name).and_then(|values| values.first().cloned());
        // Version 2008-10-17 reads `${…}` as text: a variable stands for itself.
        let literal = |name: &str| Some(format!("${{{name}}}"));
        let resolve: &dyn Fn(&str) -> Option<String> = if self.variables { &resolve_values } else { &literal };
        if let Some((principals, negated)) = &statement.principal {
            let named = match (principals, request.principal) {
                (Principals::Everyone, _) => true,
                (Principals::Listed(_), Principal::Anonymous) => false,
                (Principals::Listed(list), Principal::User { arn, canonical_id }) => {
                    list.iter().any(|p| p == "*" || p == arn || p == canonical_id)
                }
            };
            if named == *negated {
                return false;
            }
        }
        let (actions, not_action) = &statement.actions;
        if actions.iter().any(|a| pattern::matches(a, request.action, true)) == *not_action {
            return false;
        }
        let (resources, not_resource) = &statement.resources;
        let mut resource_named = false;
        for resource in resources {
            match Pattern::compile(resource, Variables::Resolve(resolve)) {
                Some(pattern) if pattern.matches(request.resource, false) => resource_named = true,
                Some(_) => {}
                // A variable without a value: the statement does not apply at all (never
                // widening a NotResource).
                None => return false,
            }
        }
        if resource_named == *not_resource {
            return false;
        }
        statement.conditions.iter().all(|c| c.operator.holds(context.get(&c.key), &c.values, resolve))
    }
}

/// Strings of a field that is one string or a list of them.
fn strings(value: &Value, field: &str, index: usize) -> Result<Vec<String>, PolicyError> {
    let list = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| PolicyError(format!("{field} in statement {index} must be strings")))?,
        _ => return refuse(format!("{field} in statement {index} must be a string or a non-empty list of strings")),
    };
    Ok(list)
}

fn statement(value: &Value, index: usize, kind: &Kind) -> Result<Statement, PolicyError> {
    let Value::Object(fields) = value else { return refuse(format!("Statement {index} is not an object")) };
    let mut effect = None;
    let mut principal = None;
    let mut actions = None;
    let mut resources = None;
    let mut conditions = Vec::new();
    for (name, field) in fields {
        match name.as_str() {
            "Sid" => {
                if !field.is_string() {
                    return refuse(format!("Sid in statement {index} must be a string"));
                }
            }
            "Effect" => {
                effect = Some(match field.as_str() {
                    Some("Allow") => Effect::Allow,
                    Some("Deny") => Effect::Deny,
                    _ => return refuse(format!("Effect in statement {index} must be \"Allow\" or \"Deny\"")),
                })
            }
            "Principal" | "NotPrincipal" => {
                if principal.is_some() {
                    return refuse(format!("Statement {index} has both Principal and NotPrincipal"));
                }
                principal = Some((principals(field, index)?, name == "NotPrincipal"));
            }
            "Action" | "NotAction" => {
                if actions.is_some() {
                    return refuse(format!("Statement {index} has both Action and NotAction"));
                }
                let list = strings(field, name, index)?;
                if let Some(unknown) = list.iter().find(|a| !actions::is_known(a)) {
                    return refuse(format!("Policy has invalid action: {unknown} (statement {index})"));
                }
                actions = Some((list, name == "NotAction"));
            }
            "Resource" | "NotResource" => {
                if resources.is_some() {
                    return refuse(format!("Statement {index} has both Resource and NotResource"));
                }
                let list = strings(field, name, index)?;
                if let Some(bad) = list.iter().find(|r| !resource_allowed(r, kind)) {
                    return refuse(match kind {
                        Kind::Bucket(bucket) => format!(
                            "Policy has invalid resource: {bad} (statement {index}); a bucket policy names \
                             arn:aws:s3:::{bucket} or objects under arn:aws:s3:::{bucket}/"
                        ),
                        Kind::Identity => format!(
                            "Policy has invalid resource: {bad} (statement {index}); resources are \"*\" or \
                             arn:aws:s3:::bucket[/key]"
                        ),
                    });
                }
                resources = Some((list, name == "NotResource"));
            }
            "Condition" => conditions = parse_conditions(field, index)?,
            other => return refuse(format!("Unknown field {other} in statement {index}")),
        }
    }
    let Some(effect) = effect else { return refuse(format!("Missing required field Effect in statement {index}")) };
    let Some(actions) = actions else {
        return refuse(format!("Missing required field Action in statement {index}"));
    };
    let Some(resources) = resources else {
        return refuse(format!("Missing required field Resource in statement {index}"));
    };
    match (kind, &principal) {
        (Kind::Identity, Some(_)) => {
            return refuse(format!("An identity policy does not name a Principal (statement {index})"));
        }
        (Kind::Bucket(_), None) => return refuse(format!("Missing required field Principal in statement {index}")),
        (_, Some((_, true))) if effect == Effect::Allow => {
            return refuse(format!("NotPrincipal is allowed only with \"Effect\": \"Deny\" (statement {index})"));
        }
        _ => {}
    }
    Ok(Statement { effect, principal, actions, resources, conditions })
}

/// `"*"`, `{"AWS": "*"}`, `{"AWS": [arn, …]}`, `{"CanonicalUser": id}`.
fn principals(value: &Value, index: usize) -> Result<Principals, PolicyError> {
    match value {
        Value::String(s) if s == "*" => Ok(Principals::Everyone),
        Value::Object(kinds) if !kinds.is_empty() => {
            let mut listed = Vec::new();
            for (kind, ids) in kinds {
                if kind != "AWS" && kind != "CanonicalUser" {
                    return refuse(format!(
                        "Invalid principal in policy: {kind} (statement {index}); Buckets knows AWS and CanonicalUser"
                    ));
                }
                let ids = strings(ids, "Principal", index)?;
                if kind == "AWS" && ids.iter().any(|id| id == "*") {
                    return Ok(Principals::Everyone);
                }
                if let Some(bad) = ids.iter().find(|id| id.is_empty() || (id.contains('*') && *id != "*")) {
                    return refuse(format!("Invalid principal in policy: {bad:?} (statement {index})"));
                }
                listed.extend(ids);
            }
            Ok(Principals::Listed(listed))
        }
        _ => refuse(format!("Invalid principal in policy (statement {index})")),
    }
}

fn resource_allowed(resource: &str, kind: &Kind) -> bool {
    match kind {
        Kind::Identity => {
            resource == "*" || resource.strip_prefix("arn:aws:s3:::").is_some_and(|rest| !rest.is_empty())
        }
        Kind::Bucket(bucket) => resource
            .strip_prefix("arn:aws:s3:::")
            .and_then(|rest| rest.strip_prefix(bucket.as_str()))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
    }
}

fn parse_conditions(value: &Value, index: usize) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(operators) = value else {
        return refuse(format!("Condition in statement {index} must be an object"));
    };
    let mut conditions = Vec::new();
    for (name, keys) in operators {
        let operator = Operator::parse(name).map_err(|e| PolicyError(format!("{e} (statement {index})")))?;
        let Value::Object(keys) = keys else {
            return refuse(format!("Condition {name} in statement {index} must map keys to values"));
        };
        for (key, values) in keys {
            let lower = key.to_ascii_lowercase();
            if !(lower.starts_with("aws:") || lower.starts_with("s3:")) {
                return refuse(format!("Policy has an invalid condition key: {key} (statement {index})"));
            }
            let values: Vec<String> = match values {
                Value::Array(items) => items.iter().map(scalar).collect::<Option<_>>(),
                other => scalar(other).map(|v| vec![v]),
            }
            .ok_or_else(|| PolicyError(format!("Values of {name} {key} in statement {index} must be scalars")))?;
            for value in &values {
                operator.check_value(value).map_err(|e| PolicyError(format!("{e} (statement {index})")))?;
            }
            conditions.push(Condition { operator, key: key.clone(), values });
        }
    }
    Ok(conditions)
}

/// A condition value: a string, number or boolean, as text.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
