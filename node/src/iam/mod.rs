//! The identity store: users, their access keys, groups and policies, kept in the cluster
//! and cached on every node.
//!
//! The whole store is one document (`format::iam::IamDoc`) with a revision, stored as an
//! object in the system bucket `.buckets-iam` of *every* set (erasure-coded, with quorum,
//! healed like user data). It does not depend on the ring and nothing moves it: a
//! migration skips the bucket, and the highest revision any set holds is the current one.
//! A change takes the cluster-wide lock, reads the newest copy, raises the revision and
//! writes every set; a set that missed a change (it was down, or added since) gets the
//! newest copy at the next refresh. Every node re-reads the copies every
//! `REFRESH_INTERVAL`, so a change (a key disabled or removed) takes effect on every node
//! within a second. Secret keys are sealed (`seal`).
//!
//! Owns: who exists, their keys and which policies apply to them. Must never decide an
//! S3 request by itself: the policies it returns are evaluated by `policy`.

pub mod builtin;
mod seal;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::clock::unix_seconds;
use crate::error::{StoreError, StoreResult};
use crate::format::JsonFile;
use crate::format::iam::{IamDoc, StoredGroup, StoredKey, StoredPolicy, StoredUser};
use crate::policy::{Kind, Policy};
use crate::storage::set::{ErasureSet, Selector};
use crate::storage::{PutOptions, Store};

pub use builtin::is_builtin;
use seal::Sealer;

pub use crate::storage::IAM_BUCKET;
/// The store's object in every set.
const DOC_KEY: &str = "iam.bkt";
/// The name changes lock cluster-wide (not the object's own key: writing it takes that).
const LOCK_KEY: &str = "iam.lock";
/// How often every node re-reads the store.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(500);
/// Largest store document read back (about 30,000 users with a key each).
const MAX_DOC_BYTES: u64 = 32 * 1024 * 1024;
/// Access keys one user may have.
pub const MAX_KEYS_PER_USER: usize = 10;
/// The account part of every user's ARN.
pub const ACCOUNT: &str = "buckets";
/// Prefix of the access keys of users (temporary ones start with `BKTS`).
const USER_KEY_PREFIX: &str = "BKU";

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    #[error("no user named {0}")]
    NoSuchUser(String),
    #[error("no group named {0}")]
    NoSuchGroup(String),
    #[error("no policy named {0}")]
    NoSuchPolicy(String),
    #[error("no access key {0}")]
    NoSuchKey(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the policy is malformed: {0}")]
    MalformedPolicy(String),
    #[error("{0}")]
    PolicyInUse(String),
    #[error("the identity store cannot be read or written: {0}")]
    Store(#[from] StoreError),
}

/// A user making a request, with every policy that applies to them (their own and
/// their groups').
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub canonical_id: String,
    pub arn: String,
    pub policies: Vec<Arc<Policy>>,
    /// The session policy of temporary credentials: it narrows all the others.
    pub session: Option<Arc<Policy>>,
}

/// What an access key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    Unknown,
    /// Its user is disabled.
    Disabled,
    Expired,
    Valid {
        secret: String,
    },
}

/// The store as this node last read it, with its policies parsed and keys indexed.
struct Snapshot {
    doc: IamDoc,
    policies: HashMap<String, Arc<Policy>>,
    /// Access key → its user's name.
    keys: HashMap<String, String>,
}

impl Snapshot {
    fn of(doc: IamDoc) -> Snapshot {
        let mut policies = HashMap::new();
        for (name, document) in builtin::BUILTIN {
            let policy = Policy::parse(document, &Kind::Identity).expect("built-in policies are valid");
            policies.insert(name.to_string(), Arc::new(policy));
        }
        for (name, stored) in &doc.policies {
            // Checked when stored; one that a newer build wrote and this one cannot read
            // grants nothing rather than failing every request.
            match Policy::parse(&stored.document, &Kind::Identity) {
                Ok(policy) => {
                    policies.insert(name.clone(), Arc::new(policy));
                }
                Err(e) => tracing::warn!(policy = name, error = %e, "stored policy does not parse; it grants nothing"),
            }
        }
        let keys = doc
            .users
            .iter()
            .flat_map(|(name, user)| user.keys.iter().map(move |key| (key.access_key.clone(), name.clone())))
            .collect();
        Snapshot { doc, policies, keys }
    }
}

pub struct Iam {
    store: Arc<Store>,
    sealer: Sealer,
    current: RwLock<Arc<Snapshot>>,
    /// One change at a time from this node (the cluster lock orders nodes).
    changing: tokio::sync::Mutex<()>,
}

pub fn user_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{name}")
}

fn random_hex(bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes * 2 {
        out.push_str(&hex::encode(uuid::Uuid::new_v4().as_bytes()));
    }
    out.truncate(bytes * 2);
    out
}

/// A new access key: `BKU` and 17 characters of A-Z and 2-7 (20 in all, as AWS's).
fn new_access_key() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let random = uuid::Uuid::new_v4();
    let body: String = random
        .as_bytes()
        .iter()
        .chain(uuid::Uuid::new_v4().as_bytes())
        .take(17)
        .map(|b| ALPHABET[(*b % 32) as usize] as char)
        .collect();
    format!("{USER_KEY_PREFIX}{body}")
}

/// A new secret key: 40 characters, as AWS's.
fn new_secret_key() -> String {
    use base64::Engine as _;
    let mut bytes = uuid::Uuid::new_v4().as_bytes().to_vec();
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    text.chars().filter(|c| c.is_ascii_alphanumeric()).take(40).chain("0123456789".chars()).take(40).collect()
}

/// IAM's rule for user, group and policy names: letters, digits and `+=,.@_-`.
fn check_name(what: &str, name: &str, max: usize) -> Result<(), IamError> {
    if name.is_empty() || name.len() > max || !name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
    {
        return Err(IamError::Invalid(format!(
            "a {what} name is 1 to {max} characters of letters, digits and +=,.@_- (got {name:?})"
        )));
    }
    Ok(())
}

fn whole_doc() -> crate::storage::ReadPlan {
    Box::new(|info| {
        if info.size > MAX_DOC_BYTES {
            return Err(StoreError::InvalidArgument("identity store too large".into()));
        }
        Ok((0, info.size))
    })
}

/// The copy one set holds: `Ok(None)` when it has none.
async fn read_copy(set: &Arc<ErasureSet>) -> StoreResult<Option<IamDoc>> {
    let (_, _, _, mut stream) = match set.read_object(IAM_BUCKET, DOC_KEY, Selector::Latest, &whole_doc()).await {
        Ok(read) => read,
        Err(StoreError::NoSuchKey | StoreError::NoSuchBucket) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    match IamDoc::decode(&bytes) {
        Some(doc) => Ok(Some(doc)),
        None => Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the identity store's copy does not decode",
        ))),
    }
}

async fn write_copy(set: &Arc<ErasureSet>, encoded: Bytes) -> StoreResult<()> {
    let length = encoded.len() as u64;
    let stream: crate::storage::BodyStream = Box::pin(futures::stream::once(async move { Ok(encoded) }));
    let options = PutOptions { content_length: Some(length), ..PutOptions::default() };
    set.put_object(IAM_BUCKET, DOC_KEY, stream, options).await.map(|_| ())
}

impl Iam {
    /// The store as the cluster holds it now (empty if it cannot be read yet: the
    /// refresh loop keeps trying).
    pub async fn open(store: Arc<Store>, secret: &[u8]) -> Arc<Iam> {
        let iam = Arc::new(Iam {
            store,
            sealer: Sealer::new(secret),
            current: RwLock::new(Arc::new(Snapshot::of(IamDoc::default()))),
            changing: tokio::sync::Mutex::new(()),
        });
        if let Err(e) = iam.refresh().await {
            tracing::warn!(error = %e, "could not read the identity store at start; users are refused until it reads");
        }
        iam
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().expect("iam cache").clone()
    }

    fn install(&self, doc: IamDoc) {
        let mut current = self.current.write().expect("iam cache");
        if doc.revision >= current.doc.revision {
            *current = Arc::new(Snapshot::of(doc));
        }
    }

    /// The newest copy any set holds, and which sets hold an older one (or none).
    async fn read_newest(&self) -> StoreResult<(IamDoc, Vec<Arc<ErasureSet>>)> {
        let sets = self.store.sets();
        let copies = futures::future::join_all(sets.iter().map(read_copy)).await;
        let mut newest: Option<IamDoc> = None;
        let mut first_error = None;
        let mut revisions = Vec::new();
        for copy in copies {
            match copy {
                Ok(doc) => {
                    let revision = doc.as_ref().map_or(0, |d| d.revision);
                    revisions.push(Some(revision));
                    if let Some(doc) = doc
                        && newest.as_ref().is_none_or(|n| doc.revision > n.revision)
                    {
                        newest = Some(doc);
                    }
                }
                Err(e) => {
                    revisions.push(None);
                    first_error.get_or_insert(e);
                }
            }
        }
        if revisions.iter().all(Option::is_none)
            && let Some(e) = first_error
        {
            return Err(e);
        }
        let newest = newest.unwrap_or_default();
        let stale = sets
            .iter()
            .zip(&revisions)
            .filter(|(_, revision)| revision.is_some_and(|r| r < newest.revision))
            .map(|(set, _)| set.clone())
            .collect();
        Ok((newest, stale))
    }

    /// Re-reads the store; returns whether some set holds an older copy than the newest.
    pub async fn refresh(&self) -> StoreResult<bool> {
        let (doc, stale) = self.read_newest().await?;
        self.install(doc);
        Ok(!stale.is_empty())
    }

    /// Writes the newest copy to the sets that hold an older one (under the lock, so a
    /// change in between is never overwritten).
    async fn sync(&self) -> StoreResult<()> {
        let _local = self.changing.lock().await;
        let _cluster = self.store.lock_key(IAM_BUCKET, LOCK_KEY).await?;
        let (doc, stale) = self.read_newest().await?;
        let encoded = Bytes::from(doc.encode());
        for set in stale {
            write_copy(&set, encoded.clone()).await?;
        }
        Ok(())
    }

    /// Re-reads the store every `REFRESH_INTERVAL`, and brings sets that missed a change
    /// up to date.
    pub async fn run_refresh(self: Arc<Self>) {
        loop {
            tokio::time::sleep(REFRESH_INTERVAL).await;
            match self.refresh().await {
                Ok(true) => {
                    if let Err(e) = self.sync().await {
                        tracing::debug!(error = %e, "identity store: could not bring every set up to date");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "identity store: refresh failed"),
            }
        }
    }

    /// Applies `change` to the newest store and writes it to every set. Succeeds once a
    /// set holds the new revision (the highest revision is the current one); sets that
    /// could not take it get it from the next refresh.
    async fn change<T>(&self, change: impl FnOnce(&mut IamDoc) -> Result<T, IamError>) -> Result<T, IamError> {
        let _local = self.changing.lock().await;
        let _cluster = self.store.lock_key(IAM_BUCKET, LOCK_KEY).await?;
        let (mut doc, _) = self.read_newest().await?;
        let answer = change(&mut doc)?;
        doc.revision += 1;
        let encoded = Bytes::from(doc.encode());
        let sets = self.store.sets();
        let written = futures::future::join_all(sets.iter().map(|set| write_copy(set, encoded.clone()))).await;
        let failed: Vec<StoreError> = written.into_iter().filter_map(Result::err).collect();
        if failed.len() == sets.len() {
            return Err(failed.into_iter().next().expect("at least one set").into());
        }
        if !failed.is_empty() {
            tracing::warn!(
                failed = failed.len(),
                sets = sets.len(),
                "identity store change written to some sets; the others get it when they answer"
            );
        }
        self.install(doc);
        Ok(answer)
    }

    // Lookups, from the cache.

    /// What `access_key` is, and its secret if it may sign requests now.
    pub fn key(&self, access_key: &str) -> KeyLookup {
        let snapshot = self.snapshot();
        let Some(user) = snapshot.keys.get(access_key).and_then(|name| snapshot.doc.users.get(name)) else {
            return KeyLookup::Unknown;
        };
        let Some(key) = user.keys.iter().find(|k| k.access_key == access_key) else { return KeyLookup::Unknown };
        if !user.enabled {
            return KeyLookup::Disabled;
        }
        if key.expires.is_some_and(|expires| expires <= unix_seconds()) {
            return KeyLookup::Expired;
        }
        match self.sealer.open(access_key, &key.sealed_secret) {
            Some(secret) => KeyLookup::Valid { secret },
            None => {
                tracing::warn!(access_key, "a secret key does not open: was the cluster secret changed?");
                KeyLookup::Unknown
            }
        }
    }

    /// The user an access key belongs to, with the policies that apply to them.
    pub fn caller(&self, access_key: &str) -> Option<Caller> {
        let snapshot = self.snapshot();
        let name = snapshot.keys.get(access_key)?;
        self.caller_named(&snapshot, name)
    }

    fn caller_named(&self, snapshot: &Snapshot, name: &str) -> Option<Caller> {
        let user = snapshot.doc.users.get(name)?;
        let mut names: BTreeSet<&str> = user.policies.iter().map(String::as_str).collect();
        for group in snapshot.doc.groups.values().filter(|g| g.members.iter().any(|m| m == name)) {
            names.extend(group.policies.iter().map(String::as_str));
        }
        Some(Caller {
            name: name.to_string(),
            canonical_id: user.canonical_id.clone(),
            arn: user_arn(name),
            policies: names.into_iter().filter_map(|n| snapshot.policies.get(n).cloned()).collect(),
            session: None,
        })
    }

    /// The user of this name with their policies, if they exist and are enabled (for
    /// temporary credentials, which carry the name).
    /// The name of the user with this canonical id.
    pub fn name_of(&self, canonical_id: &str) -> Option<String> {
        let snapshot = self.snapshot();
        snapshot.doc.users.iter().find(|(_, user)| user.canonical_id == canonical_id).map(|(name, _)| name.clone())
    }

    pub fn enabled_user(&self, name: &str) -> Option<Caller> {
        let snapshot = self.snapshot();
        snapshot.doc.users.get(name).filter(|u| u.enabled)?;
        self.caller_named(&snapshot, name)
    }

    // Users.

    pub async fn add_user(&self, name: &str) -> Result<buckets_api::iam::UserInfo, IamError> {
        check_name("user", name, 64)?;
        self.change(|doc| {
            if doc.users.contains_key(name) {
                return Err(IamError::AlreadyExists(format!("user {name}")));
            }
            doc.users.insert(
                name.to_string(),
                StoredUser {
                    canonical_id: random_hex(32),
                    enabled: true,
                    created: unix_seconds(),
                    policies: Vec::new(),
                    keys: Vec::new(),
                },
            );
            Ok(())
        })
        .await?;
        self.user(name)
    }

    pub async fn remove_user(&self, name: &str) -> Result<(), IamError> {
        self.change(|doc| {
            doc.users.remove(name).ok_or_else(|| IamError::NoSuchUser(name.to_string()))?;
            for group in doc.groups.values_mut() {
                group.members.retain(|m| m != name);
            }
            Ok(())
        })
        .await
    }

    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<buckets_api::iam::UserInfo, IamError> {
        self.change(|doc| {
            doc.users.get_mut(name).ok_or_else(|| IamError::NoSuchUser(name.to_string()))?.enabled = enabled;
            Ok(())
        })
        .await?;
        self.user(name)
    }

    pub fn user(&self, name: &str) -> Result<buckets_api::iam::UserInfo, IamError> {
        let snapshot = self.snapshot();
        let user = snapshot.doc.users.get(name).ok_or_else(|| IamError::NoSuchUser(name.to_string()))?;
        Ok(user_info(&snapshot.doc, name, user))
    }

    pub fn users(&self) -> Vec<buckets_api::iam::UserInfo> {
        let snapshot = self.snapshot();
        snapshot.doc.users.iter().map(|(name, user)| user_info(&snapshot.doc, name, user)).collect()
    }

    // Access keys.

    pub async fn create_key(&self, user: &str, expires: Option<u64>) -> Result<buckets_api::iam::CreatedKey, IamError> {
        if expires.is_some_and(|e| e <= unix_seconds()) {
            return Err(IamError::Invalid("a key's expiry must be in the future".into()));
        }
        let (access_key, secret_key) = (new_access_key(), new_secret_key());
        let sealed_secret = self.sealer.seal(&access_key, &secret_key);
        self.change(|doc| {
            let stored = doc.users.get_mut(user).ok_or_else(|| IamError::NoSuchUser(user.to_string()))?;
            if stored.keys.len() >= MAX_KEYS_PER_USER {
                return Err(IamError::Invalid(format!(
                    "user {user} has {MAX_KEYS_PER_USER} access keys, the most one user may have; remove one first"
                )));
            }
            stored.keys.push(StoredKey {
                access_key: access_key.clone(),
                sealed_secret,
                created: unix_seconds(),
                expires,
            });
            Ok(())
        })
        .await?;
        Ok(buckets_api::iam::CreatedKey { user: user.to_string(), access_key, secret_key, expires })
    }

    pub async fn remove_key(&self, access_key: &str) -> Result<(), IamError> {
        self.change(|doc| {
            for user in doc.users.values_mut() {
                let before = user.keys.len();
                user.keys.retain(|k| k.access_key != access_key);
                if user.keys.len() != before {
                    return Ok(());
                }
            }
            Err(IamError::NoSuchKey(access_key.to_string()))
        })
        .await
    }

    // Groups.

    pub async fn add_group(&self, name: &str) -> Result<buckets_api::iam::GroupInfo, IamError> {
        check_name("group", name, 128)?;
        self.change(|doc| {
            if doc.groups.contains_key(name) {
                return Err(IamError::AlreadyExists(format!("group {name}")));
            }
            doc.groups.insert(name.to_string(), StoredGroup { created: unix_seconds(), ..StoredGroup::default() });
            Ok(())
        })
        .await?;
        self.group(name)
    }

    pub async fn remove_group(&self, name: &str) -> Result<(), IamError> {
        self.change(|doc| doc.groups.remove(name).map(|_| ()).ok_or_else(|| IamError::NoSuchGroup(name.to_string())))
            .await
    }

    pub async fn change_members(
        &self,
        name: &str,
        change: &buckets_api::iam::MemberChange,
    ) -> Result<buckets_api::iam::GroupInfo, IamError> {
        self.change(|doc| {
            if let Some(unknown) = change.add.iter().find(|u| !doc.users.contains_key(*u)) {
                return Err(IamError::NoSuchUser(unknown.clone()));
            }
            let group = doc.groups.get_mut(name).ok_or_else(|| IamError::NoSuchGroup(name.to_string()))?;
            group.members.retain(|m| !change.remove.contains(m));
            for user in &change.add {
                if !group.members.contains(user) {
                    group.members.push(user.clone());
                }
            }
            group.members.sort();
            Ok(())
        })
        .await?;
        self.group(name)
    }

    pub fn group(&self, name: &str) -> Result<buckets_api::iam::GroupInfo, IamError> {
        let snapshot = self.snapshot();
        let group = snapshot.doc.groups.get(name).ok_or_else(|| IamError::NoSuchGroup(name.to_string()))?;
        Ok(group_info(name, group))
    }

    pub fn groups(&self) -> Vec<buckets_api::iam::GroupInfo> {
        self.snapshot().doc.groups.iter().map(|(name, group)| group_info(name, group)).collect()
    }

    // Policies.

    /// Stores a policy; `replace` lets it overwrite one of the same name.
    pub async fn put_policy(
        &self,
        name: &str,
        document: &str,
        replace: bool,
    ) -> Result<buckets_api::iam::PolicyInfo, IamError> {
        check_name("policy", name, 128)?;
        if is_builtin(name) {
            return Err(IamError::PolicyInUse(format!("{name} is a built-in policy and cannot be changed")));
        }
        Policy::parse(document, &Kind::Identity).map_err(|e| IamError::MalformedPolicy(e.to_string()))?;
        self.change(|doc| {
            if !replace && doc.policies.contains_key(name) {
                return Err(IamError::AlreadyExists(format!("policy {name}")));
            }
            let created = doc.policies.get(name).map_or_else(unix_seconds, |p| p.created);
            doc.policies.insert(name.to_string(), StoredPolicy { created, document: document.to_string() });
            Ok(())
        })
        .await?;
        self.policy(name)
    }

    pub async fn remove_policy(&self, name: &str) -> Result<(), IamError> {
        if is_builtin(name) {
            return Err(IamError::PolicyInUse(format!("{name} is a built-in policy and cannot be removed")));
        }
        self.change(|doc| {
            if !doc.policies.contains_key(name) {
                return Err(IamError::NoSuchPolicy(name.to_string()));
            }
            let (users, groups) = attached(doc, name);
            if !users.is_empty() || !groups.is_empty() {
                return Err(IamError::PolicyInUse(format!(
                    "policy {name} is attached to users {users:?} and groups {groups:?}; detach it first"
                )));
            }
            doc.policies.remove(name);
            Ok(())
        })
        .await
    }

    pub fn policy(&self, name: &str) -> Result<buckets_api::iam::PolicyInfo, IamError> {
        let snapshot = self.snapshot();
        policy_info(&snapshot.doc, name).ok_or_else(|| IamError::NoSuchPolicy(name.to_string()))
    }

    pub fn policies(&self) -> Vec<buckets_api::iam::PolicyInfo> {
        let snapshot = self.snapshot();
        let names = builtin::BUILTIN.iter().map(|(n, _)| n.to_string()).chain(snapshot.doc.policies.keys().cloned());
        names.filter_map(|name| policy_info(&snapshot.doc, &name)).collect()
    }

    /// Attaches (or with `attach` false detaches) a policy to one user or one group.
    pub async fn attach(
        &self,
        policy: &str,
        to: &buckets_api::iam::Attachment,
        attach: bool,
    ) -> Result<buckets_api::iam::PolicyInfo, IamError> {
        self.change(|doc| {
            if !is_builtin(policy) && !doc.policies.contains_key(policy) {
                return Err(IamError::NoSuchPolicy(policy.to_string()));
            }
            let list = match (&to.user, &to.group) {
                (Some(user), None) => {
                    &mut doc.users.get_mut(user).ok_or_else(|| IamError::NoSuchUser(user.clone()))?.policies
                }
                (None, Some(group)) => {
                    &mut doc.groups.get_mut(group).ok_or_else(|| IamError::NoSuchGroup(group.clone()))?.policies
                }
                _ => return Err(IamError::Invalid("name one user or one group".into())),
            };
            if attach {
                if !list.iter().any(|p| p == policy) {
                    list.push(policy.to_string());
                }
            } else {
                list.retain(|p| p != policy);
            }
            Ok(())
        })
        .await?;
        self.policy(policy)
    }
}

fn attached(doc: &IamDoc, policy: &str) -> (Vec<String>, Vec<String>) {
    let named = |list: &Vec<String>| list.iter().any(|p| p == policy);
    (
        doc.users.iter().filter(|(_, u)| named(&u.policies)).map(|(n, _)| n.clone()).collect(),
        doc.groups.iter().filter(|(_, g)| named(&g.policies)).map(|(n, _)| n.clone()).collect(),
    )
}

fn policy_info(doc: &IamDoc, name: &str) -> Option<buckets_api::iam::PolicyInfo> {
    let (text, builtin) = match builtin::BUILTIN.iter().find(|(n, _)| *n == name) {
        Some((_, text)) => (text.to_string(), true),
        None => (doc.policies.get(name)?.document.clone(), false),
    };
    let (users, groups) = attached(doc, name);
    Some(buckets_api::iam::PolicyInfo {
        name: name.to_string(),
        builtin,
        document: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        users,
        groups,
    })
}

fn user_info(doc: &IamDoc, name: &str, user: &StoredUser) -> buckets_api::iam::UserInfo {
    buckets_api::iam::UserInfo {
        name: name.to_string(),
        canonical_id: user.canonical_id.clone(),
        arn: user_arn(name),
        enabled: user.enabled,
        created: user.created,
        policies: user.policies.clone(),
        groups: doc
            .groups
            .iter()
            .filter(|(_, g)| g.members.iter().any(|m| m == name))
            .map(|(n, _)| n.clone())
            .collect(),
        keys: user
            .keys
            .iter()
            .map(|k| buckets_api::iam::KeyInfo {
                access_key: k.access_key.clone(),
                user: name.to_string(),
                created: k.created,
                expires: k.expires,
            })
            .collect(),
    }
}

fn group_info(name: &str, group: &StoredGroup) -> buckets_api::iam::GroupInfo {
    buckets_api::iam::GroupInfo {
        name: name.to_string(),
        members: group.members.clone(),
        policies: group.policies.clone(),
    }
}

#[cfg(test)]
mod tests;
