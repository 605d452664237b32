//! Put/Get/DeleteBucketLifecycleConfiguration with S3's validation, turned into the rules
//! the store keeps (`format::bucket::LifecycleRule`); the worker applies them.
//! Transitions to other storage classes are not offered: Buckets has one storage class.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::{BucketsS3, store_error};
use crate::format::bucket::{self, LifecycleFilter, NoncurrentExpiration};

/// Longest rule id (the S3 limit).
const MAX_RULE_ID_CHARS: usize = 255;
/// Most noncurrent versions a rule may keep (the S3 limit).
const MAX_NEWER_NONCURRENT_VERSIONS: i32 = 100;
const DAY_NS: i64 = 86_400 * 1_000_000_000;

fn malformed() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, message.into())
}

fn request(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, message.into())
}

fn positive(value: Option<i32>, what: &str) -> S3Result<Option<u32>> {
    match value {
        None => Ok(None),
        Some(n) if n > 0 => Ok(Some(n as u32)),
        Some(_) => Err(invalid(format!("'{what}' must be a positive integer"))),
    }
}

fn tag_pair(tag: &Tag) -> S3Result<(String, String)> {
    Ok((tag.key.clone().ok_or_else(malformed)?, tag.value.clone().unwrap_or_default()))
}

fn size(value: Option<i64>) -> S3Result<Option<u64>> {
    value.map(|v| u64::try_from(v).map_err(|_| invalid("Object size filters must not be negative"))).transpose()
}

/// A rule's filter: the legacy top-level Prefix, or exactly one Filter predicate (And
/// combining several).
fn filter_of(rule: &LifecycleRule) -> S3Result<LifecycleFilter> {
    match (&rule.prefix, &rule.filter) {
        (Some(_), Some(_)) => Err(malformed()),
        (Some(prefix), None) => Ok(LifecycleFilter { prefix: prefix.clone(), ..Default::default() }),
        (None, None) => Err(malformed()),
        (None, Some(filter)) => {
            let given = [
                filter.prefix.is_some(),
                filter.tag.is_some(),
                filter.and.is_some(),
                filter.object_size_greater_than.is_some(),
                filter.object_size_less_than.is_some(),
            ];
            match given.iter().filter(|g| **g).count() {
                0 => return Ok(LifecycleFilter::default()),
                1 => {}
                _ => return Err(malformed()),
            }
            if let Some(and) = &filter.and {
                return Ok(LifecycleFilter {
                    prefix: and.prefix.clone().unwrap_or_default(),
                    tags: and.tags.iter().flatten().map(tag_pair).collect::<S3Result<_>>()?,
                    size_greater_than: size(and.object_size_greater_than)?,
                    size_less_than: size(and.object_size_less_than)?,
                });
            }
            Ok(LifecycleFilter {
                prefix: filter.prefix.clone().unwrap_or_default(),
                tags: filter.tag.iter().map(tag_pair).collect::<S3Result<_>>()?,
                size_greater_than: size(filter.object_size_greater_than)?,
                size_less_than: size(filter.object_size_less_than)?,
            })
        }
    }
}

fn expiration_of(expiration: &LifecycleExpiration) -> S3Result<Option<bucket::Expiration>> {
    let marker = expiration.expired_object_delete_marker == Some(true);
    match (expiration.days, &expiration.date, marker) {
        (Some(days), None, false) => {
            Ok(Some(bucket::Expiration::Days(positive(Some(days), "Days' for Expiration action")?.expect("given"))))
        }
        (None, Some(date), false) => {
            let ns = time::OffsetDateTime::from(date.clone()).unix_timestamp_nanos();
            let ns = i64::try_from(ns).map_err(|_| invalid("'Date' is out of range"))?;
            if ns.rem_euclid(DAY_NS) != 0 {
                return Err(invalid("'Date' must be at midnight GMT"));
            }
            Ok(Some(bucket::Expiration::Date(ns)))
        }
        (None, None, true) => Ok(Some(bucket::Expiration::ExpiredObjectDeleteMarker)),
        (None, None, false) if expiration.expired_object_delete_marker == Some(false) => Ok(None),
        _ => Err(malformed()),
    }
}

/// One rule, checked as S3 checks it.
fn rule_of(rule: &LifecycleRule) -> S3Result<bucket::LifecycleRule> {
    let id = rule.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    if id.chars().count() > MAX_RULE_ID_CHARS {
        return Err(invalid(format!("ID length should not exceed allowed limit of {MAX_RULE_ID_CHARS}")));
    }
    let enabled = match rule.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(malformed()),
    };
    if rule.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || rule.noncurrent_version_transitions.as_ref().is_some_and(|t| !t.is_empty())
    {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidStorageClass,
            "The storage class you specified is not valid: Buckets keeps every object in STANDARD",
        ));
    }
    let filter = filter_of(rule)?;
    let expiration = rule.expiration.as_ref().map(expiration_of).transpose()?.flatten();
    let noncurrent_expiration = match &rule.noncurrent_version_expiration {
        None => None,
        Some(expiration) => {
            let days = positive(expiration.noncurrent_days, "NoncurrentDays' for NoncurrentVersionExpiration action")?
                .ok_or_else(malformed)?;
            let newer = match expiration.newer_noncurrent_versions {
                None => None,
                Some(n) if (1..=MAX_NEWER_NONCURRENT_VERSIONS).contains(&n) => Some(n as u32),
                Some(_) => {
                    return Err(invalid(format!(
                        "'NewerNoncurrentVersions' must be from 1 to {MAX_NEWER_NONCURRENT_VERSIONS}"
                    )));
                }
            };
            Some(NoncurrentExpiration { noncurrent_days: days, newer_noncurrent_versions: newer })
        }
    };
    let abort_incomplete_upload_days = rule
        .abort_incomplete_multipart_upload
        .as_ref()
        .map(|abort| positive(abort.days_after_initiation, "DaysAfterInitiation").and_then(|d| d.ok_or_else(malformed)))
        .transpose()?;
    if expiration.is_none() && noncurrent_expiration.is_none() && abort_incomplete_upload_days.is_none() {
        return Err(request("At least one action needs to be specified in a rule"));
    }
    if !filter.tags.is_empty() && abort_incomplete_upload_days.is_some() {
        return Err(request("Tag-based filter cannot be used with AbortIncompleteMultipartUpload action"));
    }
    if !filter.tags.is_empty() && expiration == Some(bucket::Expiration::ExpiredObjectDeleteMarker) {
        return Err(request("Tag-based filter cannot be used with ExpiredObjectDeleteMarker action"));
    }
    Ok(bucket::LifecycleRule { id, enabled, filter, expiration, noncurrent_expiration, abort_incomplete_upload_days })
}

/// The whole configuration: at most 1000 rules, ids unique.
pub(super) fn rules_of(configuration: &BucketLifecycleConfiguration) -> S3Result<Vec<bucket::LifecycleRule>> {
    if configuration.rules.is_empty() {
        return Err(malformed());
    }
    if configuration.rules.len() > crate::storage::lifecycle::MAX_LIFECYCLE_RULES {
        return Err(invalid("A lifecycle configuration may have at most 1000 rules"));
    }
    let rules: Vec<bucket::LifecycleRule> = configuration.rules.iter().map(rule_of).collect::<S3Result<_>>()?;
    for (index, rule) in rules.iter().enumerate() {
        if rules[..index].iter().any(|other| other.id == rule.id) {
            return Err(invalid("Rule ID must be unique. Found same ID for more than one rule"));
        }
    }
    Ok(rules)
}

/// A stored rule as S3 shows it.
fn dto_of(rule: &bucket::LifecycleRule) -> LifecycleRule {
    let tag = |(key, value): &(String, String)| Tag { key: Some(key.clone()), value: Some(value.clone()) };
    let f = &rule.filter;
    let conditions = usize::from(!f.prefix.is_empty())
        + f.tags.len()
        + usize::from(f.size_greater_than.is_some())
        + usize::from(f.size_less_than.is_some());
    let filter = if conditions > 1 {
        LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: (!f.prefix.is_empty()).then(|| f.prefix.clone()),
                tags: (!f.tags.is_empty()).then(|| f.tags.iter().map(tag).collect()),
                object_size_greater_than: f.size_greater_than.map(|s| s as i64),
                object_size_less_than: f.size_less_than.map(|s| s as i64),
            }),
            ..Default::default()
        }
    } else {
        LifecycleRuleFilter {
            prefix: Some(f.prefix.clone()).filter(|p| !p.is_empty() || conditions == 0),
            tag: f.tags.first().map(tag),
            object_size_greater_than: f.size_greater_than.map(|s| s as i64),
            object_size_less_than: f.size_less_than.map(|s| s as i64),
            ..Default::default()
        }
    };
    let expiration = rule.expiration.map(|expiration| match expiration {
        bucket::Expiration::Days(days) => LifecycleExpiration { days: Some(days as i32), ..Default::default() },
        bucket::Expiration::Date(ns) => {
            LifecycleExpiration { date: Some(super::timestamp_from_ns(ns)), ..Default::default() }
        }
        bucket::Expiration::ExpiredObjectDeleteMarker => {
            LifecycleExpiration { expired_object_delete_marker: Some(true), ..Default::default() }
        }
    });
    LifecycleRule {
        id: Some(rule.id.clone()),
        status: ExpirationStatus::from_static(if rule.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        filter: Some(filter),
        expiration,
        noncurrent_version_expiration: rule.noncurrent_expiration.map(|n| NoncurrentVersionExpiration {
            noncurrent_days: Some(n.noncurrent_days as i32),
            newer_noncurrent_versions: n.newer_noncurrent_versions.map(|v| v as i32),
        }),
        abort_incomplete_multipart_upload: rule
            .abort_incomplete_upload_days
            .map(|days| AbortIncompleteMultipartUpload { days_after_initiation: Some(days as i32) }),
        prefix: None,
        transitions: None,
        noncurrent_version_transitions: None,
    }
}

impl BucketsS3 {
    pub(super) async fn put_bucket_lifecycle_configuration_impl(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let input = req.input;
        let configuration = input.lifecycle_configuration.ok_or_else(malformed)?;
        let rules = rules_of(&configuration)?;
        self.store.put_bucket_lifecycle(&input.bucket, rules).await.map_err(store_error)?;
        Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
    }

    pub(super) async fn get_bucket_lifecycle_configuration_impl(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let rules = self.store.get_bucket_lifecycle(&req.input.bucket).await.map_err(store_error)?;
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(rules.iter().map(dto_of).collect()),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_bucket_lifecycle_impl(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.store.delete_bucket_lifecycle(&req.input.bucket).await.map_err(store_error)?;
        Ok(S3Response::with_status(DeleteBucketLifecycleOutput::default(), http::StatusCode::NO_CONTENT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(edit: impl FnOnce(&mut LifecycleRule)) -> LifecycleRule {
        let mut rule = LifecycleRule {
            id: Some("r".into()),
            status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
            filter: Some(LifecycleRuleFilter { prefix: Some("logs/".into()), ..Default::default() }),
            expiration: Some(LifecycleExpiration { days: Some(3), ..Default::default() }),
            abort_incomplete_multipart_upload: None,
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: None,
            transitions: None,
        };
        edit(&mut rule);
        rule
    }

    fn code(rules: Vec<LifecycleRule>) -> Result<(), String> {
        rules_of(&BucketLifecycleConfiguration { rules }).map(|_| ()).map_err(|e| e.code().as_str().to_string())
    }

    #[test]
    fn configurations_are_checked_as_s3_checks_them() {
        assert_eq!(code(vec![rule(|_| {})]), Ok(()));
        let cases: Vec<(LifecycleRule, &str)> = vec![
            (rule(|r| r.id = Some("x".repeat(256))), "InvalidArgument"),
            (rule(|r| r.status = ExpirationStatus::from("Sometimes".to_string())), "MalformedXML"),
            (
                rule(|r| r.expiration = Some(LifecycleExpiration { days: Some(0), ..Default::default() })),
                "InvalidArgument",
            ),
            (rule(|r| r.expiration = None), "InvalidRequest"),
            (rule(|r| r.prefix = Some("a".into())), "MalformedXML"),
            (rule(|r| r.filter = None), "MalformedXML"),
            (
                rule(|r| {
                    r.filter = Some(LifecycleRuleFilter {
                        prefix: Some("a".into()),
                        object_size_greater_than: Some(5),
                        ..Default::default()
                    })
                }),
                "MalformedXML",
            ),
            (
                rule(|r| {
                    r.expiration = Some(LifecycleExpiration {
                        date: Some(super::super::timestamp_from_ns(1_000_000_000)),
                        ..Default::default()
                    })
                }),
                "InvalidArgument",
            ),
            (
                rule(|r| {
                    r.expiration = Some(LifecycleExpiration {
                        days: Some(1),
                        expired_object_delete_marker: Some(true),
                        ..Default::default()
                    })
                }),
                "MalformedXML",
            ),
            (
                rule(|r| {
                    r.filter = Some(LifecycleRuleFilter {
                        tag: Some(Tag { key: Some("k".into()), value: Some("v".into()) }),
                        ..Default::default()
                    });
                    r.abort_incomplete_multipart_upload =
                        Some(AbortIncompleteMultipartUpload { days_after_initiation: Some(1) });
                }),
                "InvalidRequest",
            ),
            (
                rule(|r| {
                    r.noncurrent_version_expiration = Some(NoncurrentVersionExpiration {
                        noncurrent_days: Some(1),
                        newer_noncurrent_versions: Some(101),
                    })
                }),
                "InvalidArgument",
            ),
            (
                rule(|r| r.transitions = Some(vec![Transition { days: Some(30), ..Default::default() }])),
                "InvalidStorageClass",
            ),
        ];
        for (rule, expected) in cases {
            assert_eq!(code(vec![rule.clone()]), Err(expected.to_string()), "{rule:?}");
        }
        assert_eq!(code(vec![rule(|_| {}), rule(|_| {})]), Err("InvalidArgument".into()), "duplicate ids");
        assert_eq!(code(vec![]), Err("MalformedXML".into()));
    }

    #[test]
    fn rules_read_back_as_they_were_given() {
        let given = rule(|r| {
            r.filter = Some(LifecycleRuleFilter {
                and: Some(LifecycleRuleAndOperator {
                    prefix: Some("logs/".into()),
                    tags: Some(vec![Tag { key: Some("k".into()), value: Some("v".into()) }]),
                    ..Default::default()
                }),
                ..Default::default()
            });
            r.noncurrent_version_expiration =
                Some(NoncurrentVersionExpiration { noncurrent_days: Some(7), newer_noncurrent_versions: Some(2) });
        });
        let stored = rules_of(&BucketLifecycleConfiguration { rules: vec![given.clone()] }).unwrap();
        assert_eq!(dto_of(&stored[0]), given);
    }
}
