//! Lifecycle rules, evaluated: what the enabled rules of a bucket do to each version of a
//! key, and to incomplete multipart uploads, at a given time. Pure: no I/O and no clock
//! (the time and the length of a day come in, so tests can shorten a day). The store's
//! worker (`storage::lifecycle`) carries the actions out under the key's lock, after
//! object lock had its say.
//!
//! Times follow S3: a rule of N days is due at the first midnight UTC (the first day
//! boundary, for a shortened day) at least N days after the object was written — for a
//! noncurrent version, after it became noncurrent, which is when its successor was
//! written.

use crate::format::bucket::{Expiration, LifecycleFilter, LifecycleRule};

/// What the rules know of one version of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionFacts<'a> {
    pub size: u64,
    pub tags: &'a [(String, String)],
    pub modified_ns: i64,
    pub delete_marker: bool,
}

/// What a rule does to one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The latest version expires: it goes from an unversioned bucket; a versioned one
    /// gets a delete marker on top.
    ExpireLatest,
    /// A noncurrent version goes.
    DeleteNoncurrent,
    /// A delete marker that is the only version left goes.
    RemoveExpiredMarker,
}

/// The first day boundary at or after `ns`.
fn round_up_to_day(ns: i64, day_ns: i64) -> i64 {
    ns.div_euclid(day_ns).saturating_add(i64::from(ns.rem_euclid(day_ns) != 0)).saturating_mul(day_ns)
}

/// When something written (or made noncurrent) at `since_ns` is `days` days old.
fn due_after(since_ns: i64, days: u32, day_ns: i64) -> i64 {
    round_up_to_day(since_ns.saturating_add(i64::from(days).saturating_mul(day_ns)), day_ns)
}

fn matches(filter: &LifecycleFilter, key: &str, version: &VersionFacts) -> bool {
    key.starts_with(&filter.prefix)
        && filter.tags.iter().all(|wanted| version.tags.contains(wanted))
        && filter.size_greater_than.is_none_or(|min| version.size > min)
        && filter.size_less_than.is_none_or(|max| version.size < max)
}

fn enabled(rules: &[LifecycleRule]) -> impl Iterator<Item = &LifecycleRule> {
    rules.iter().filter(|rule| rule.enabled)
}

/// When the latest version (an object) expires, and by which rule: the earliest due.
pub fn expiry(rules: &[LifecycleRule], key: &str, latest: &VersionFacts, day_ns: i64) -> Option<(i64, String)> {
    if latest.delete_marker {
        return None;
    }
    enabled(rules)
        .filter(|rule| matches(&rule.filter, key, latest))
        .filter_map(|rule| {
            let due = match rule.expiration? {
                Expiration::Days(days) => due_after(latest.modified_ns, days, day_ns),
                Expiration::Date(date) => date,
                Expiration::ExpiredObjectDeleteMarker => return None,
            };
            Some((due, rule.id.clone()))
        })
        .min_by_key(|(due, _)| *due)
}

/// The actions due at `now_ns` on a key's versions (newest first): each with the index of
/// its version and the rule that takes it.
pub fn actions(
    rules: &[LifecycleRule],
    key: &str,
    versions: &[VersionFacts],
    now_ns: i64,
    day_ns: i64,
) -> Vec<(usize, Action, String)> {
    let mut out = Vec::new();
    let Some(latest) = versions.first() else { return out };
    if let Some((due, rule)) = expiry(rules, key, latest, day_ns)
        && due <= now_ns
    {
        out.push((0, Action::ExpireLatest, rule));
    }
    if latest.delete_marker && versions.len() == 1 {
        let rule = enabled(rules)
            .filter(|rule| rule.filter.tags.is_empty() && key.starts_with(&rule.filter.prefix))
            .find(|rule| rule.expiration == Some(Expiration::ExpiredObjectDeleteMarker));
        if let Some(rule) = rule {
            out.push((0, Action::RemoveExpiredMarker, rule.id.clone()));
        }
    }
    for (index, version) in versions.iter().enumerate().skip(1) {
        // Noncurrent since its successor was written; `index - 1` noncurrent versions are
        // newer than it.
        let since = versions[index - 1].modified_ns;
        let rule = enabled(rules).filter(|rule| matches(&rule.filter, key, version)).find(|rule| {
            rule.noncurrent_expiration.is_some_and(|expiration| {
                let kept = expiration.newer_noncurrent_versions.unwrap_or(0) as usize;
                index > kept && due_after(since, expiration.noncurrent_days, day_ns) <= now_ns
            })
        });
        if let Some(rule) = rule {
            out.push((index, Action::DeleteNoncurrent, rule.id.clone()));
        }
    }
    out
}

/// The rule that aborts an upload of `key` begun at `initiated_ns`, if one is due.
pub fn upload_expired(
    rules: &[LifecycleRule],
    key: &str,
    initiated_ns: i64,
    now_ns: i64,
    day_ns: i64,
) -> Option<String> {
    enabled(rules)
        .filter(|rule| rule.filter.tags.is_empty() && key.starts_with(&rule.filter.prefix))
        .find(|rule| {
            rule.abort_incomplete_upload_days.is_some_and(|days| due_after(initiated_ns, days, day_ns) <= now_ns)
        })
        .map(|rule| rule.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::bucket::NoncurrentExpiration;

    /// A day of 100 ns keeps the numbers readable.
    const DAY: i64 = 100;

    fn object(modified_ns: i64) -> VersionFacts<'static> {
        VersionFacts { size: 10, tags: &[], modified_ns, delete_marker: false }
    }

    fn marker(modified_ns: i64) -> VersionFacts<'static> {
        VersionFacts { size: 0, tags: &[], modified_ns, delete_marker: true }
    }

    fn rule(id: &str, edit: impl FnOnce(&mut LifecycleRule)) -> LifecycleRule {
        let mut rule = LifecycleRule { id: id.into(), enabled: true, ..LifecycleRule::default() };
        edit(&mut rule);
        rule
    }

    fn kinds(actions: Vec<(usize, Action, String)>) -> Vec<(usize, Action)> {
        actions.into_iter().map(|(index, action, _)| (index, action)).collect()
    }

    #[test]
    fn days_are_counted_to_the_next_day_boundary() {
        assert_eq!(due_after(130, 1, DAY), 300, "written during day 1: due at the start of day 3");
        assert_eq!(due_after(200, 1, DAY), 300, "written on a boundary: exactly a day");
        assert_eq!(round_up_to_day(0, DAY), 0);
    }

    #[test]
    fn current_versions_expire_after_their_days_or_on_their_date() {
        let days = vec![rule("days", |r| r.expiration = Some(Expiration::Days(2)))];
        assert!(actions(&days, "k", &[object(150)], 399, DAY).is_empty(), "not yet");
        assert_eq!(kinds(actions(&days, "k", &[object(150)], 400, DAY)), [(0, Action::ExpireLatest)]);
        assert_eq!(expiry(&days, "k", &object(150), DAY), Some((400, "days".into())));
        let date = vec![rule("date", |r| r.expiration = Some(Expiration::Date(1000)))];
        assert!(actions(&date, "k", &[object(5)], 999, DAY).is_empty());
        assert_eq!(kinds(actions(&date, "k", &[object(5)], 1000, DAY)), [(0, Action::ExpireLatest)]);
        // A delete marker on top is not expired again.
        assert!(actions(&days, "k", &[marker(150), object(100)], 10_000, DAY).is_empty());
        // Disabled rules do nothing.
        let off = vec![rule("off", |r| {
            r.enabled = false;
            r.expiration = Some(Expiration::Days(1));
        })];
        assert!(actions(&off, "k", &[object(0)], 10_000, DAY).is_empty());
    }

    #[test]
    fn filters_choose_the_objects() {
        let tags = [("class".to_string(), "temp".to_string())];
        let tagged = VersionFacts { size: 500, tags: &tags, modified_ns: 0, delete_marker: false };
        let cases: Vec<(LifecycleFilter, bool)> = vec![
            (LifecycleFilter { prefix: "logs/".into(), ..Default::default() }, true),
            (LifecycleFilter { prefix: "data/".into(), ..Default::default() }, false),
            (LifecycleFilter { tags: tags.to_vec(), ..Default::default() }, true),
            (LifecycleFilter { tags: vec![("class".into(), "keep".into())], ..Default::default() }, false),
            (LifecycleFilter { size_greater_than: Some(499), ..Default::default() }, true),
            (LifecycleFilter { size_greater_than: Some(500), ..Default::default() }, false),
            (LifecycleFilter { size_less_than: Some(501), ..Default::default() }, true),
            (LifecycleFilter { size_less_than: Some(500), ..Default::default() }, false),
            (
                LifecycleFilter {
                    prefix: "logs/".into(),
                    tags: tags.to_vec(),
                    size_greater_than: Some(100),
                    size_less_than: Some(1000),
                },
                true,
            ),
        ];
        for (filter, expected) in cases {
            let rules = vec![rule("f", |r| {
                r.filter = filter.clone();
                r.expiration = Some(Expiration::Days(1));
            })];
            assert_eq!(!actions(&rules, "logs/a", &[tagged], 10_000, DAY).is_empty(), expected, "{filter:?}");
        }
    }

    #[test]
    fn noncurrent_versions_expire_after_they_became_noncurrent_keeping_the_newest() {
        let rules = vec![rule("old", |r| {
            r.noncurrent_expiration = Some(NoncurrentExpiration { noncurrent_days: 1, newer_noncurrent_versions: None })
        })];
        // v3 at 350 (latest), v2 at 250, v1 at 150: v2 noncurrent since 350 (due 500), v1
        // since 250 (due 400).
        let versions = [object(350), object(250), object(150)];
        assert!(actions(&rules, "k", &versions, 399, DAY).is_empty());
        assert_eq!(kinds(actions(&rules, "k", &versions, 400, DAY)), [(2, Action::DeleteNoncurrent)]);
        assert_eq!(
            kinds(actions(&rules, "k", &versions, 500, DAY)),
            [(1, Action::DeleteNoncurrent), (2, Action::DeleteNoncurrent)]
        );
        let keep_one = vec![rule("keep", |r| {
            r.noncurrent_expiration =
                Some(NoncurrentExpiration { noncurrent_days: 1, newer_noncurrent_versions: Some(1) })
        })];
        assert_eq!(kinds(actions(&keep_one, "k", &versions, 10_000, DAY)), [(2, Action::DeleteNoncurrent)]);
    }

    #[test]
    fn a_lone_delete_marker_goes_with_expired_object_delete_marker() {
        let rules = vec![rule("markers", |r| r.expiration = Some(Expiration::ExpiredObjectDeleteMarker))];
        assert_eq!(kinds(actions(&rules, "k", &[marker(5)], 6, DAY)), [(0, Action::RemoveExpiredMarker)]);
        assert!(actions(&rules, "k", &[marker(5), object(1)], 10_000, DAY).is_empty(), "versions left behind it");
        assert!(actions(&rules, "k", &[object(5)], 10_000, DAY).is_empty());
    }

    #[test]
    fn incomplete_uploads_are_aborted_after_their_days() {
        let rules = vec![rule("uploads", |r| {
            r.filter.prefix = "tmp/".into();
            r.abort_incomplete_upload_days = Some(1);
        })];
        assert_eq!(upload_expired(&rules, "tmp/big", 150, 300, DAY), Some("uploads".into()));
        assert_eq!(upload_expired(&rules, "tmp/big", 150, 299, DAY), None);
        assert_eq!(upload_expired(&rules, "keep/big", 150, 10_000, DAY), None);
    }
}
