//! Condition operators as IAM documents them, and how one condition holds for a request:
//! a key's request values against the policy's values. Several policy values of one key
//! are OR'ed; the caller ANDs keys and operators.

use std::net::IpAddr;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::pattern::{Pattern, Variables};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Order),
    Date(Order),
    Bool,
    BinaryEquals,
    IpAddress,
    ArnLike,
    Null,
}

/// The comparison of a Numeric or Date operator (`NotEquals` is `Equals` negated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Equals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    /// No set qualifier: a key with several request values holds when any matches.
    Single,
    /// `ForAnyValue:` at least one request value matches (false without values).
    ForAnyValue,
    /// `ForAllValues:` every request value matches (true without values).
    ForAllValues,
}

/// A parsed condition operator, e.g. `ForAllValues:StringNotLikeIfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    pub kind: Kind,
    /// `…Not…`: holds when no policy value matches.
    pub negated: bool,
    pub qualifier: Qualifier,
    /// `…IfExists`: holds when the request has no value for the key.
    pub if_exists: bool,
}

impl Operator {
    pub fn parse(name: &str) -> Result<Operator, String> {
        let unknown = || format!("Unknown condition operator {name}");
        let (qualifier, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (Qualifier::ForAnyValue, rest)
        } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (Qualifier::ForAllValues, rest)
        } else {
            (Qualifier::Single, name)
        };
        let (if_exists, base) = match rest.strip_suffix("IfExists") {
            Some(base) => (true, base),
            None => (false, rest),
        };
        let order = |suffix: &str| match suffix {
            "Equals" => Some((Order::Equals, false)),
            "NotEquals" => Some((Order::Equals, true)),
            "LessThan" => Some((Order::LessThan, false)),
            "LessThanEquals" => Some((Order::LessThanEquals, false)),
            "GreaterThan" => Some((Order::GreaterThan, false)),
            "GreaterThanEquals" => Some((Order::GreaterThanEquals, false)),
            _ => None,
        };
        let (kind, negated) = match base {
            "StringEquals" => (Kind::StringEquals, false),
            "StringNotEquals" => (Kind::StringEquals, true),
            "StringEqualsIgnoreCase" => (Kind::StringEqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (Kind::StringEqualsIgnoreCase, true),
            "StringLike" => (Kind::StringLike, false),
            "StringNotLike" => (Kind::StringLike, true),
            "Bool" => (Kind::Bool, false),
            "BinaryEquals" => (Kind::BinaryEquals, false),
            "IpAddress" => (Kind::IpAddress, false),
            "NotIpAddress" => (Kind::IpAddress, true),
            "ArnEquals" | "ArnLike" => (Kind::ArnLike, false),
            "ArnNotEquals" | "ArnNotLike" => (Kind::ArnLike, true),
            "Null" => (Kind::Null, false),
            other => {
                if let Some((order, negated)) = other.strip_prefix("Numeric").and_then(order) {
                    (Kind::Numeric(order), negated)
                } else if let Some((order, negated)) = other.strip_prefix("Date").and_then(order) {
                    (Kind::Date(order), negated)
                } else {
                    return Err(unknown());
                }
            }
        };
        if kind == Kind::Null && (if_exists || qualifier != Qualifier::Single) {
            return Err(unknown());
        }
        Ok(Operator { kind, negated, qualifier, if_exists })
    }

    /// Whether a policy value is one this operator can compare (checked when a policy is
    /// stored, so a bad value is a clear error, not a condition that never holds).
    pub fn check_value(&self, value: &str) -> Result<(), String> {
        let ok = match self.kind {
            Kind::Numeric(_) => value.trim().parse::<f64>().is_ok(),
            Kind::Date(_) => parse_date(value).is_some(),
            Kind::Bool | Kind::Null => value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"),
            Kind::IpAddress => parse_cidr(value).is_some(),
            _ => true,
        };
        if ok { Ok(()) } else { Err(format!("Invalid value {value:?} for a {:?} condition", self.kind)) }
    }

    /// Whether the condition holds: `request` is the key's values in the request (`None`
    /// when absent), `policy` the policy's values (variables already resolved where the
    /// operator takes them).
    pub fn holds(
        &self,
        request: Option<&[String]>,
        policy: &[String],
        resolve: &dyn Fn(&str) -> Option<String>,
    ) -> bool {
        let present = request.filter(|values| !values.is_empty());
        if self.kind == Kind::Null {
            let absent = present.is_none();
            return policy.iter().any(|value| value.eq_ignore_ascii_case("true") == absent);
        }
        let Some(values) = present else {
            return self.if_exists
                || match self.qualifier {
                    Qualifier::ForAllValues => true,
                    Qualifier::ForAnyValue => false,
                    Qualifier::Single => self.negated,
                };
        };
        let matches_any = |value: &String| policy.iter().any(|p| self.compare(value, p, resolve));
        match (self.qualifier, self.negated) {
            (Qualifier::Single, false) | (Qualifier::ForAnyValue, false) => values.iter().any(matches_any),
            (Qualifier::Single, true) => !values.iter().any(matches_any),
            (Qualifier::ForAnyValue, true) => values.iter().any(|v| !matches_any(v)),
            (Qualifier::ForAllValues, false) => values.iter().all(matches_any),
            (Qualifier::ForAllValues, true) => values.iter().all(|v| !matches_any(v)),
        }
    }

    /// One request value against one policy value, by the operator's kind.
    fn compare(&self, value: &str, policy: &str, resolve: &dyn Fn(&str) -> Option<String>) -> bool {
        match self.kind {
            Kind::StringEquals => substitute(policy, resolve).is_some_and(|p| p == value),
            Kind::StringEqualsIgnoreCase => {
                substitute(policy, resolve).is_some_and(|p| p.to_lowercase() == value.to_lowercase())
            }
            Kind::StringLike => {
                Pattern::compile(policy, Variables::Resolve(resolve)).is_some_and(|p| p.matches(value, false))
            }
            Kind::Numeric(order) => match (value.trim().parse::<f64>(), policy.trim().parse::<f64>()) {
                (Ok(value), Ok(policy)) => ordered(order, value.partial_cmp(&policy)),
                _ => false,
            },
            Kind::Date(order) => match (parse_date(value), parse_date(policy)) {
                (Some(value), Some(policy)) => ordered(order, Some(value.cmp(&policy))),
                _ => false,
            },
            Kind::Bool => value.eq_ignore_ascii_case(policy),
            Kind::BinaryEquals => value == policy,
            Kind::IpAddress => match (value.parse::<IpAddr>(), parse_cidr(policy)) {
                (Ok(ip), Some(network)) => network.contains(&ip),
                _ => false,
            },
            Kind::ArnLike => arn_like(policy, value, resolve),
            Kind::Null => false,
        }
    }
}

fn ordered(order: Order, comparison: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::*;
    match (order, comparison) {
        (_, None) => false,
        (Order::Equals, Some(c)) => c == Equal,
        (Order::LessThan, Some(c)) => c == Less,
        (Order::LessThanEquals, Some(c)) => c != Greater,
        (Order::GreaterThan, Some(c)) => c == Greater,
        (Order::GreaterThanEquals, Some(c)) => c != Less,
    }
}

/// `text` with its variables replaced (and `${*}`-style escapes), `None` when one has no
/// value in the request.
pub fn substitute(text: &str, resolve: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if !text.contains("${") {
        return Some(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let inner = &rest[at + 2..];
        let Some(end) = inner.find('}') else {
            out.push_str(&rest[at..]);
            return Some(out);
        };
        match &inner[..end] {
            escape @ ("*" | "?" | "$") => out.push_str(escape),
            name => out.push_str(&resolve(name)?),
        }
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// ARNs compared part by part (`arn:partition:service:region:account:resource`), each
/// part with wildcards; the resource part takes the rest of the string.
fn arn_like(policy: &str, value: &str, resolve: &dyn Fn(&str) -> Option<String>) -> bool {
    let policy_parts: Vec<&str> = policy.splitn(6, ':').collect();
    let value_parts: Vec<&str> = value.splitn(6, ':').collect();
    policy_parts.len() == 6
        && value_parts.len() == 6
        && policy_parts.iter().zip(&value_parts).all(|(p, v)| {
            Pattern::compile(p, Variables::Resolve(resolve)).is_some_and(|pattern| pattern.matches(v, false))
        })
}

/// A date as IAM takes it: RFC 3339 / ISO 8601 (`2026-01-01T00:00:00Z`, or a day,
/// `2026-01-01`), or seconds since the epoch.
pub fn parse_date(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return OffsetDateTime::from_unix_timestamp(seconds).ok();
    }
    if let Ok(date) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(date);
    }
    let day = time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(day.midnight().assume_utc())
}

/// A network as IAM writes it: `203.0.113.0/24`, `2001:db8::/32`, or one address.
fn parse_cidr(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| text.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (operator, request values (None: key absent), policy values, holds)
    type Row = (&'static str, Option<&'static [&'static str]>, &'static [&'static str], bool);

    fn check(table: &[Row]) {
        let resolve = |name: &str| (name == "aws:username").then(|| "alice".to_string());
        for &(operator, request, policy, expected) in table {
            let op = Operator::parse(operator).unwrap_or_else(|e| panic!("{e}"));
            let request: Option<Vec<String>> = request.map(|v| v.iter().map(|s| s.to_string()).collect());
            let policy: Vec<String> = policy.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                op.holds(request.as_deref(), &policy, &resolve),
                expected,
                "{operator} with request {request:?} and policy {policy:?}"
            );
        }
    }

    #[test]
    fn string_operators() {
        check(&[
            ("StringEquals", Some(&["a"]), &["a"], true),
            ("StringEquals", Some(&["a"]), &["b", "a"], true),
            ("StringEquals", Some(&["A"]), &["a"], false),
            ("StringEquals", None, &["a"], false),
            ("StringNotEquals", Some(&["a"]), &["a", "b"], false),
            ("StringNotEquals", Some(&["c"]), &["a", "b"], true),
            ("StringNotEquals", None, &["a"], true),
            ("StringEqualsIgnoreCase", Some(&["ÄBC"]), &["äbc"], true),
            ("StringNotEqualsIgnoreCase", Some(&["ABC"]), &["abc"], false),
            ("StringLike", Some(&["home/alice/x"]), &["home/*/x"], true),
            ("StringLike", Some(&["home/alice/x"]), &["home/?/x"], false),
            ("StringLike", Some(&["home/alice/x"]), &["home/${aws:username}/*"], true),
            ("StringLike", Some(&["home/bob/x"]), &["home/${aws:username}/*"], false),
            ("StringEquals", Some(&["alice"]), &["${aws:username}"], true),
            ("StringEquals", Some(&["x"]), &["${aws:userid}"], false),
            ("StringNotLike", Some(&["logs/1"]), &["tmp/*"], true),
            ("StringNotLike", Some(&["tmp/1"]), &["tmp/*"], false),
            ("StringEqualsIfExists", None, &["a"], true),
            ("StringEqualsIfExists", Some(&["b"]), &["a"], false),
            ("StringNotEqualsIfExists", Some(&["a"]), &["a"], false),
        ]);
    }

    #[test]
    fn numeric_date_bool_binary_operators() {
        check(&[
            ("NumericEquals", Some(&["10"]), &["10"], true),
            ("NumericEquals", Some(&["10.0"]), &["10"], true),
            ("NumericNotEquals", Some(&["10"]), &["10"], false),
            ("NumericLessThan", Some(&["9"]), &["10"], true),
            ("NumericLessThan", Some(&["10"]), &["10"], false),
            ("NumericLessThanEquals", Some(&["10"]), &["10"], true),
            ("NumericGreaterThan", Some(&["11"]), &["10"], true),
            ("NumericGreaterThanEquals", Some(&["9"]), &["10"], false),
            ("NumericLessThan", Some(&["many"]), &["10"], false),
            ("NumericLessThanIfExists", None, &["10"], true),
            ("DateLessThan", Some(&["2026-01-01T00:00:00Z"]), &["2026-06-01"], true),
            ("DateGreaterThan", Some(&["2026-01-01T00:00:00Z"]), &["2026-06-01"], false),
            ("DateEquals", Some(&["1767225600"]), &["2026-01-01T00:00:00Z"], true),
            ("DateNotEquals", Some(&["1767225600"]), &["2026-01-01T00:00:00Z"], false),
            ("DateLessThanEquals", Some(&["2026-01-01T01:00:00+01:00"]), &["2026-01-01T00:00:00Z"], true),
            ("DateGreaterThanEquals", Some(&["2025-12-31T23:59:59Z"]), &["2026-01-01"], false),
            ("Bool", Some(&["true"]), &["true"], true),
            ("Bool", Some(&["false"]), &["true"], false),
            ("Bool", Some(&["TRUE"]), &["true"], true),
            ("Bool", None, &["false"], false),
            ("BoolIfExists", None, &["false"], true),
            ("BinaryEquals", Some(&["QmluYXJ5"]), &["QmluYXJ5"], true),
            ("BinaryEquals", Some(&["qmluyxj5"]), &["QmluYXJ5"], false),
        ]);
    }

    #[test]
    fn address_arn_and_null_operators() {
        check(&[
            ("IpAddress", Some(&["203.0.113.9"]), &["203.0.113.0/24"], true),
            ("IpAddress", Some(&["203.0.114.9"]), &["203.0.113.0/24"], false),
            ("IpAddress", Some(&["127.0.0.1"]), &["127.0.0.1"], true),
            ("IpAddress", Some(&["2001:db8::1"]), &["2001:db8::/32"], true),
            ("IpAddress", Some(&["2001:db9::1"]), &["2001:db8::/32", "10.0.0.0/8"], false),
            ("NotIpAddress", Some(&["203.0.113.9"]), &["203.0.113.0/24"], false),
            ("NotIpAddress", Some(&["198.51.100.1"]), &["203.0.113.0/24"], true),
            ("NotIpAddress", None, &["203.0.113.0/24"], true),
            ("ArnLike", Some(&["arn:aws:iam::buckets:user/alice"]), &["arn:aws:iam::*:user/*"], true),
            ("ArnLike", Some(&["arn:aws:iam::buckets:user/alice"]), &["arn:aws:iam::*:role/*"], false),
            // A wildcard stays within its part.
            ("ArnLike", Some(&["arn:aws:s3:::b/k"]), &["arn:*"], false),
            ("ArnEquals", Some(&["arn:aws:s3:::b/k"]), &["arn:aws:s3:::b/k"], true),
            ("ArnNotLike", Some(&["arn:aws:s3:::b/k"]), &["arn:aws:s3:::other/*"], true),
            ("ArnNotEquals", Some(&["arn:aws:s3:::b/k"]), &["arn:aws:s3:::b/k"], false),
            ("ArnLike", Some(&["not-an-arn"]), &["arn:*:*:*:*:*"], false),
            ("Null", None, &["true"], true),
            ("Null", Some(&["x"]), &["true"], false),
            ("Null", Some(&["x"]), &["false"], true),
            ("Null", None, &["false"], false),
        ]);
    }

    #[test]
    fn set_qualifiers() {
        check(&[
            ("ForAnyValue:StringEquals", Some(&["a", "z"]), &["a", "b"], true),
            ("ForAnyValue:StringEquals", Some(&["y", "z"]), &["a", "b"], false),
            ("ForAnyValue:StringEquals", None, &["a"], false),
            ("ForAnyValue:StringEquals", Some(&[]), &["a"], false),
            ("ForAnyValue:StringNotEquals", Some(&["a", "z"]), &["a", "b"], true),
            ("ForAnyValue:StringNotEquals", Some(&["a", "b"]), &["a", "b"], false),
            ("ForAllValues:StringEquals", Some(&["a", "b"]), &["a", "b", "c"], true),
            ("ForAllValues:StringEquals", Some(&["a", "z"]), &["a", "b"], false),
            ("ForAllValues:StringEquals", None, &["a"], true),
            ("ForAllValues:StringEquals", Some(&[]), &["a"], true),
            ("ForAllValues:StringNotEquals", Some(&["y", "z"]), &["a", "b"], true),
            ("ForAllValues:StringNotEquals", Some(&["a", "z"]), &["a", "b"], false),
            ("ForAllValues:StringLike", Some(&["tag-a", "tag-b"]), &["tag-*"], true),
            ("ForAnyValue:StringLikeIfExists", None, &["tag-*"], true),
            ("ForAllValues:NumericLessThan", Some(&["1", "2"]), &["3"], true),
            // A single-valued operator on several request values: any of them.
            ("StringEquals", Some(&["z", "a"]), &["a"], true),
            ("StringNotEquals", Some(&["z", "a"]), &["a"], false),
        ]);
    }

    #[test]
    fn operator_names() {
        for good in ["StringLike", "ForAllValues:StringNotEqualsIgnoreCaseIfExists", "DateGreaterThanEquals", "Null"] {
            assert!(Operator::parse(good).is_ok(), "{good}");
        }
        for bad in ["StringLikes", "ForSomeValues:StringLike", "NullIfExists", "ForAnyValue:Null", "Numeric", ""] {
            assert!(Operator::parse(bad).is_err(), "{bad}");
        }
        let numeric = Operator::parse("NumericLessThan").unwrap();
        assert!(numeric.check_value("10").is_ok() && numeric.check_value("ten").is_err());
        let date = Operator::parse("DateLessThan").unwrap();
        assert!(date.check_value("2026-01-01").is_ok() && date.check_value("tomorrow").is_err());
        let ip = Operator::parse("IpAddress").unwrap();
        assert!(ip.check_value("10.0.0.0/8").is_ok() && ip.check_value("10.0.0.0/33").is_err());
    }
}
