//! ACLs and Object Ownership, as S3 has them: canned ACLs and `x-amz-grant-*` headers on
//! CreateBucket and on every object write, Put/GetBucketAcl, Put/GetObjectAcl,
//! Put/Get/DeleteBucketOwnershipControls, and what grants allow (`allows`), which the
//! access check consults once the policies have not decided.
//!
//! Every bucket has an owner (the user who created it; the root user for buckets made by
//! root or before owners were kept) with every right over the bucket. Under
//! BucketOwnerEnforced (the default) ACLs are off: the bucket owner owns every object and
//! only policies grant others anything. With ACLs on, an object's writer may own it, and
//! grants to users (by canonical id) and to the AllUsers / AuthenticatedUsers groups count.

use std::sync::Arc;

use s3s::dto::{self, *};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::access::Requester;
use super::{BucketsS3, store_error, version_selector};
use crate::format::acl::{AclPermission, Grant, Grantee, OBJECT_ACL_HEADER, ObjectAcl, ObjectOwnership};
use crate::format::bucket::BucketMeta;
use crate::storage::ObjectInfo;
use crate::storage::set::Selector;

/// The canonical id S3 gives anonymous writers.
pub const ANONYMOUS_ID: &str = "65a011a29cdf8ec533ec3d1ccaae921c";
const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
const LOG_DELIVERY_URI: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";
/// Most grants one ACL may hold (S3's limit).
const MAX_GRANTS: usize = 100;

/// The ACL a write asks for: a canned ACL, or grant headers (never both).
#[derive(Debug, Default, Clone, Copy)]
pub struct AclRequest<'a> {
    pub canned: Option<&'a str>,
    pub full_control: Option<&'a str>,
    pub read: Option<&'a str>,
    pub read_acp: Option<&'a str>,
    pub write: Option<&'a str>,
    pub write_acp: Option<&'a str>,
}

impl AclRequest<'_> {
    fn has_grants(&self) -> bool {
        [self.full_control, self.read, self.read_acp, self.write, self.write_acp].iter().any(Option::is_some)
    }

    pub fn is_empty(&self) -> bool {
        self.canned.is_none() && !self.has_grants()
    }
}

/// Who is asking, as ACL grants see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who<'a> {
    User(&'a str),
    Anonymous,
}

/// What the grants of a bucket (and of the object a request touches) are.
pub struct AclFacts<'a> {
    pub bucket_owner: &'a str,
    pub ownership: ObjectOwnership,
    /// The bucket's grants (`None`: the default, its owner alone).
    pub bucket_grants: Option<&'a [Grant]>,
    /// The object version's owner and grants, when the request is about an object that
    /// has them (`None`: the bucket owner's, the default).
    pub object: Option<&'a ObjectAcl>,
    /// Block Public Access's IgnorePublicAcls: grants to the groups count for nothing.
    pub ignore_public: bool,
}

/// The grants of a resource owned by `owner` with no ACL of its own.
pub fn private(owner: &str) -> Vec<Grant> {
    vec![Grant { grantee: Grantee::User(owner.to_string()), permission: AclPermission::FullControl }]
}

/// Actions on objects that the bucket's WRITE permission grants (creating, overwriting
/// and deleting objects), and that the bucket owner has on every object.
pub fn is_bucket_write(action: &str) -> bool {
    matches!(
        action,
        "s3:PutObject"
            | "s3:DeleteObject"
            | "s3:DeleteObjectVersion"
            | "s3:AbortMultipartUpload"
            | "s3:ListMultipartUploadParts"
    )
}

/// The permission an ACL grant must carry to allow `action` on a bucket.
fn bucket_permission(action: &str) -> Option<AclPermission> {
    match action {
        "s3:ListBucket" | "s3:ListBucketVersions" | "s3:ListBucketMultipartUploads" => Some(AclPermission::Read),
        "s3:GetBucketAcl" => Some(AclPermission::ReadAcp),
        "s3:PutBucketAcl" => Some(AclPermission::WriteAcp),
        _ => None,
    }
}

/// The permission an ACL grant must carry to allow `action` on an object.
fn object_permission(action: &str) -> Option<AclPermission> {
    match action {
        "s3:GetObject" | "s3:GetObjectVersion" | "s3:GetObjectAttributes" | "s3:GetObjectVersionAttributes" => {
            Some(AclPermission::Read)
        }
        "s3:GetObjectAcl" | "s3:GetObjectVersionAcl" => Some(AclPermission::ReadAcp),
        "s3:PutObjectAcl" | "s3:PutObjectVersionAcl" => Some(AclPermission::WriteAcp),
        _ => None,
    }
}

fn is_public(grantee: &Grantee) -> bool {
    matches!(grantee, Grantee::AllUsers | Grantee::AuthenticatedUsers)
}

fn granted(grants: &[Grant], who: Who<'_>, permission: AclPermission, ignore_public: bool) -> bool {
    grants.iter().any(|grant| {
        let applies = match (&grant.grantee, who) {
            (Grantee::User(id), Who::User(me)) => id == me,
            (Grantee::AllUsers, _) => !ignore_public,
            (Grantee::AuthenticatedUsers, Who::User(_)) => !ignore_public,
            _ => false,
        };
        applies && (grant.permission == permission || grant.permission == AclPermission::FullControl)
    })
}

/// Whether ownership or ACL grants allow `action`; `on_object`: the request is about an
/// object (or an upload) rather than the bucket itself.
pub fn allows(facts: &AclFacts<'_>, who: Who<'_>, action: &str, on_object: bool) -> bool {
    let is_bucket_owner = who == Who::User(facts.bucket_owner);
    if !facts.ownership.acls_enabled() {
        // ACLs disabled: the bucket owner owns everything, grants count for nothing.
        return is_bucket_owner;
    }
    if !on_object || is_bucket_write(action) {
        // The bucket's own ACL (absent: its owner's FULL_CONTROL alone).
        let permission =
            if on_object || is_bucket_write(action) { Some(AclPermission::Write) } else { bucket_permission(action) };
        let grants = facts.bucket_grants.unwrap_or(&[]);
        return is_bucket_owner
            || permission.is_some_and(|permission| granted(grants, who, permission, facts.ignore_public));
    }
    let Some(acl) = facts.object else {
        // No ACL of its own: the bucket owner's, with FULL_CONTROL alone.
        return is_bucket_owner;
    };
    if who == Who::User(acl.owner.as_str()) {
        return true;
    }
    object_permission(action).is_some_and(|permission| granted(&acl.grants, who, permission, facts.ignore_public))
}

/// The owner and ACL stored with an object version, if it has its own.
pub fn stored_object_acl(info: &ObjectInfo) -> Option<ObjectAcl> {
    info.header(OBJECT_ACL_HEADER).and_then(ObjectAcl::decode)
}

/// The grants a canned ACL stands for.
fn canned_grants(canned: &str, owner: &str, bucket_owner: &str, on_object: bool) -> S3Result<Vec<Grant>> {
    let grant = |grantee: Grantee, permission| Grant { grantee, permission };
    let mut grants = private(owner);
    match (canned, on_object) {
        ("private" | "aws-exec-read", _) => {}
        ("public-read", _) => grants.push(grant(Grantee::AllUsers, AclPermission::Read)),
        ("public-read-write", _) => {
            grants.push(grant(Grantee::AllUsers, AclPermission::Read));
            grants.push(grant(Grantee::AllUsers, AclPermission::Write));
        }
        ("authenticated-read", _) => grants.push(grant(Grantee::AuthenticatedUsers, AclPermission::Read)),
        ("bucket-owner-read", true) if owner != bucket_owner => {
            grants.push(grant(Grantee::User(bucket_owner.to_string()), AclPermission::Read));
        }
        ("bucket-owner-full-control", true) if owner != bucket_owner => {
            grants.push(grant(Grantee::User(bucket_owner.to_string()), AclPermission::FullControl));
        }
        ("bucket-owner-read" | "bucket-owner-full-control", true) => {}
        ("log-delivery-write", false) => {
            grants.push(grant(Grantee::LogDelivery, AclPermission::Write));
            grants.push(grant(Grantee::LogDelivery, AclPermission::ReadAcp));
        }
        _ => {
            return Err(S3Error::with_message(S3ErrorCode::InvalidArgument, format!("Invalid canned ACL: {canned}")));
        }
    }
    Ok(grants)
}

/// The grantees of one `x-amz-grant-*` header: `id="…", uri="…"` pairs.
fn header_grantees(value: &str, known: &dyn Fn(&str) -> bool) -> S3Result<Vec<Grantee>> {
    let mut grantees = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((kind, text)) = part.split_once('=') else {
            return Err(S3Error::with_message(S3ErrorCode::InvalidArgument, format!("Invalid grant: {part}")));
        };
        let text = text.trim().trim_matches('"');
        grantees.push(grantee(Some(kind.trim()), Some(text), known)?);
    }
    Ok(grantees)
}

/// A grantee named by type (`id`, `uri`, `emailAddress`, or the XML `xsi:type`) and value.
fn grantee(kind: Option<&str>, value: Option<&str>, known: &dyn Fn(&str) -> bool) -> S3Result<Grantee> {
    let value = value.unwrap_or("");
    match kind.map(str::to_ascii_lowercase).as_deref() {
        Some("id" | "canonicaluser") if known(value) => Ok(Grantee::User(value.to_string())),
        Some("id" | "canonicaluser") => Err(S3Error::with_message(S3ErrorCode::InvalidArgument, "Invalid id")),
        Some("uri" | "group") => match value {
            ALL_USERS_URI => Ok(Grantee::AllUsers),
            AUTHENTICATED_USERS_URI => Ok(Grantee::AuthenticatedUsers),
            LOG_DELIVERY_URI => Ok(Grantee::LogDelivery),
            _ => Err(S3Error::with_message(S3ErrorCode::InvalidArgument, format!("Invalid group uri: {value}"))),
        },
        Some("emailaddress" | "amazoncustomerbyemail") => Err(S3Error::with_message(
            S3ErrorCode::UnresolvableGrantByEmailAddress,
            "The email address you provided does not match any account on record.",
        )),
        _ => Err(S3Error::with_message(S3ErrorCode::InvalidArgument, "Invalid grantee type")),
    }
}

/// The grants a write's ACL request stands for (`None`: it asks for none). `known`: whether
/// a canonical id is a user's.
pub fn requested_grants(
    request: &AclRequest<'_>,
    owner: &str,
    bucket_owner: &str,
    on_object: bool,
    known: &dyn Fn(&str) -> bool,
) -> S3Result<Option<Vec<Grant>>> {
    if request.canned.is_some() && request.has_grants() {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed",
        ));
    }
    if let Some(canned) = request.canned {
        return canned_grants(canned, owner, bucket_owner, on_object).map(Some);
    }
    if !request.has_grants() {
        return Ok(None);
    }
    let mut grants = Vec::new();
    for (value, permission) in [
        (request.full_control, AclPermission::FullControl),
        (request.read, AclPermission::Read),
        (request.read_acp, AclPermission::ReadAcp),
        (request.write, AclPermission::Write),
        (request.write_acp, AclPermission::WriteAcp),
    ] {
        for grantee in header_grantees(value.unwrap_or(""), known)? {
            grants.push(Grant { grantee, permission });
        }
    }
    Ok(Some(grants))
}

/// The grants of an AccessControlPolicy body. Its Owner, when given, must be the owner.
fn body_grants(policy: &AccessControlPolicy, owner: &str, known: &dyn Fn(&str) -> bool) -> S3Result<Vec<Grant>> {
    if let Some(id) = policy.owner.as_ref().and_then(|o| o.id.as_deref())
        && id != owner
    {
        return Err(s3_error!(AccessDenied, "The Owner of an ACL cannot be changed"));
    }
    let given = policy.grants.as_deref().unwrap_or(&[]);
    if given.len() > MAX_GRANTS {
        return Err(S3Error::with_message(
            S3ErrorCode::MalformedACLError,
            format!("An ACL may have at most {MAX_GRANTS} grants"),
        ));
    }
    let mut grants = Vec::with_capacity(given.len());
    for grant in given {
        let malformed = || {
            S3Error::with_message(
                S3ErrorCode::MalformedACLError,
                "The XML you provided was not well-formed or did not validate against our published schema",
            )
        };
        let who = grant.grantee.as_ref().ok_or_else(malformed)?;
        let permission = match grant.permission.as_ref().map(|p| p.as_str()) {
            Some(Permission::FULL_CONTROL) => AclPermission::FullControl,
            Some(Permission::READ) => AclPermission::Read,
            Some(Permission::READ_ACP) => AclPermission::ReadAcp,
            Some(Permission::WRITE) => AclPermission::Write,
            Some(Permission::WRITE_ACP) => AclPermission::WriteAcp,
            _ => return Err(malformed()),
        };
        let value = match who.type_.as_str() {
            Type::CANONICAL_USER => who.id.as_deref(),
            Type::GROUP => who.uri.as_deref(),
            _ => who.email_address.as_deref(),
        };
        grants.push(Grant { grantee: grantee(Some(who.type_.as_str()), value, known)?, permission });
    }
    Ok(grants)
}

/// Whether grants are only the owner's FULL_CONTROL, the one ACL a bucket with ACLs
/// disabled accepts.
fn owner_only(grants: &[Grant], owner: &str) -> bool {
    grants.iter().all(|g| g.grantee == Grantee::User(owner.to_string()) && g.permission == AclPermission::FullControl)
}

fn not_supported() -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessControlListNotSupported, "The bucket does not allow ACLs")
}

fn ownership_name(ownership: ObjectOwnership) -> Option<&'static str> {
    match ownership {
        ObjectOwnership::BucketOwnerEnforced => Some(dto::ObjectOwnership::BUCKET_OWNER_ENFORCED),
        ObjectOwnership::BucketOwnerPreferred => Some(dto::ObjectOwnership::BUCKET_OWNER_PREFERRED),
        ObjectOwnership::ObjectWriter => Some(dto::ObjectOwnership::OBJECT_WRITER),
        ObjectOwnership::Unset => None,
    }
}

fn ownership_of(name: &str) -> S3Result<ObjectOwnership> {
    match name {
        dto::ObjectOwnership::BUCKET_OWNER_ENFORCED => Ok(ObjectOwnership::BucketOwnerEnforced),
        dto::ObjectOwnership::BUCKET_OWNER_PREFERRED => Ok(ObjectOwnership::BucketOwnerPreferred),
        dto::ObjectOwnership::OBJECT_WRITER => Ok(ObjectOwnership::ObjectWriter),
        other => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!("Invalid ObjectOwnership: {other} (BucketOwnerEnforced, BucketOwnerPreferred or ObjectWriter)"),
        )),
    }
}

fn acl_request<'a>(
    canned: Option<&'a str>,
    full_control: &'a Option<String>,
    read: &'a Option<String>,
    read_acp: &'a Option<String>,
    write: Option<&'a str>,
    write_acp: &'a Option<String>,
) -> AclRequest<'a> {
    AclRequest {
        canned,
        full_control: full_control.as_deref(),
        read: read.as_deref(),
        read_acp: read_acp.as_deref(),
        write,
        write_acp: write_acp.as_deref(),
    }
}

/// The ACL request of an object write (PutObject, PostObject, CopyObject, CreateMultipartUpload).
macro_rules! object_acl_request {
    ($input:expr) => {
        $crate::s3::acl::object_acl_fields(
            $input.acl.as_ref().map(|a| a.as_str()),
            &$input.grant_full_control,
            &$input.grant_read,
            &$input.grant_read_acp,
            &$input.grant_write_acp,
        )
    };
}
pub(super) use object_acl_request;

/// The ACL request of CreateBucket or PutBucketAcl (a bucket also takes WRITE grants).
macro_rules! bucket_acl_request {
    ($input:expr) => {
        acl_request(
            $input.acl.as_ref().map(|a| a.as_str()),
            &$input.grant_full_control,
            &$input.grant_read,
            &$input.grant_read_acp,
            $input.grant_write.as_deref(),
            &$input.grant_write_acp,
        )
    };
}

pub fn object_acl_fields<'a>(
    canned: Option<&'a str>,
    full_control: &'a Option<String>,
    read: &'a Option<String>,
    read_acp: &'a Option<String>,
    write_acp: &'a Option<String>,
) -> AclRequest<'a> {
    acl_request(canned, full_control, read, read_acp, None, write_acp)
}

impl BucketsS3 {
    /// The canonical id of whoever made a request.
    pub(super) fn requester_id(&self, requester: Option<&Requester>) -> String {
        match requester {
            Some(Requester::User(caller)) => caller.canonical_id.clone(),
            Some(Requester::Anonymous) => ANONYMOUS_ID.to_string(),
            Some(Requester::Root) | None => self.owner_id.clone(),
        }
    }

    /// The owner of a bucket with these settings.
    pub(super) fn bucket_owner(&self, meta: &BucketMeta) -> String {
        meta.owner.clone().unwrap_or_else(|| self.owner_id.clone())
    }

    /// The Owner of a bucket's answers (its objects, uploads and versions in listings).
    pub(super) async fn bucket_owner_answer(&self, bucket: &str) -> Owner {
        let owner = match self.store.bucket_settings(bucket).await {
            Ok(meta) => self.bucket_owner(&meta),
            Err(_) => self.owner_id.clone(),
        };
        self.owner_of(&owner)
    }

    fn is_known_id(&self, id: &str) -> bool {
        id == self.owner_id || self.display_name(id).is_some()
    }

    /// A user's name for Owner and grant answers.
    pub(super) fn display_name(&self, id: &str) -> Option<String> {
        if id == self.owner_id {
            return Some(self.owner_name.clone());
        }
        self.iam.as_ref().and_then(|iam| iam.name_of(id))
    }

    pub(super) fn owner_of(&self, id: &str) -> Owner {
        Owner { id: Some(id.to_string()), display_name: self.display_name(id) }
    }

    fn grants_answer(&self, grants: &[Grant]) -> Vec<dto::Grant> {
        grants
            .iter()
            .map(|grant| {
                let (type_, id, uri) = match &grant.grantee {
                    Grantee::User(id) => (Type::CANONICAL_USER, Some(id.clone()), None),
                    Grantee::AllUsers => (Type::GROUP, None, Some(ALL_USERS_URI)),
                    Grantee::AuthenticatedUsers => (Type::GROUP, None, Some(AUTHENTICATED_USERS_URI)),
                    Grantee::LogDelivery => (Type::GROUP, None, Some(LOG_DELIVERY_URI)),
                };
                let permission = match grant.permission {
                    AclPermission::FullControl => Permission::FULL_CONTROL,
                    AclPermission::Read => Permission::READ,
                    AclPermission::ReadAcp => Permission::READ_ACP,
                    AclPermission::Write => Permission::WRITE,
                    AclPermission::WriteAcp => Permission::WRITE_ACP,
                };
                dto::Grant {
                    grantee: Some(dto::Grantee {
                        type_: Type::from_static(type_),
                        display_name: id.as_deref().and_then(|id| self.display_name(id)),
                        id,
                        email_address: None,
                        uri: uri.map(str::to_string),
                    }),
                    permission: Some(Permission::from_static(permission)),
                }
            })
            .collect()
    }

    /// The grants a PutBucketAcl or PutObjectAcl sets: from its AccessControlPolicy body
    /// or from its ACL headers (exactly one of them).
    fn put_acl_grants(
        &self,
        body: Option<&AccessControlPolicy>,
        request: &AclRequest<'_>,
        owner: &str,
        bucket_owner: &str,
        on_object: bool,
    ) -> S3Result<Vec<Grant>> {
        let known = |id: &str| self.is_known_id(id);
        match (body, request.is_empty()) {
            (Some(_), false) => Err(S3Error::with_message(
                S3ErrorCode::UnexpectedContent,
                "This request does not support content together with ACL headers",
            )),
            (Some(policy), true) => body_grants(policy, owner, &known),
            (None, false) => Ok(requested_grants(request, owner, bucket_owner, on_object, &known)?.unwrap_or_default()),
            (None, true) => Err(S3Error::with_message(
                S3ErrorCode::MissingSecurityHeader,
                "Your request was missing a required header: an ACL header or an AccessControlPolicy body",
            )),
        }
    }

    /// What Get/PutObjectAcl act on: the bucket's settings and the version named.
    async fn acl_target(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<(Arc<BucketMeta>, Selector, ObjectInfo)> {
        let meta = self.store.bucket_settings(bucket).await.map_err(store_error)?;
        let selector = version_selector(version_id)?;
        let info = self.store.head_version(bucket, key, selector).await.map_err(store_error)?;
        Ok((meta, selector, info))
    }

    /// Refuses a public ACL on a bucket whose Block Public Access blocks them.
    fn check_public(meta: &BucketMeta, grants: &[Grant]) -> S3Result<()> {
        if meta.public_access_block.is_some_and(|b| b.block_public_acls) && grants.iter().any(|g| is_public(&g.grantee))
        {
            return Err(s3_error!(AccessDenied, "Access Denied: public ACLs are blocked on this bucket"));
        }
        Ok(())
    }

    /// The owner and ACL header a new object version gets from its write, or `None` when
    /// it is the bucket owner's with the default ACL. A bucket with ACLs disabled takes
    /// only the bucket owner's full control (AccessControlListNotSupported otherwise).
    pub(super) fn object_acl_for_write(
        &self,
        meta: &BucketMeta,
        requester: Option<&Requester>,
        request: &AclRequest<'_>,
    ) -> S3Result<Option<(String, String)>> {
        let bucket_owner = self.bucket_owner(meta);
        let known = |id: &str| self.is_known_id(id);
        if !meta.ownership.acls_enabled() {
            let grants = requested_grants(request, &bucket_owner, &bucket_owner, true, &known)?;
            return match grants {
                Some(grants) if !owner_only(&grants, &bucket_owner) => Err(not_supported()),
                _ => Ok(None),
            };
        }
        let writer = self.requester_id(requester);
        let owner = if meta.ownership == ObjectOwnership::BucketOwnerPreferred
            && request.canned == Some("bucket-owner-full-control")
        {
            bucket_owner.clone()
        } else {
            writer
        };
        let grants = requested_grants(request, &owner, &bucket_owner, true, &known)?.unwrap_or_else(|| private(&owner));
        Self::check_public(meta, &grants)?;
        if owner == bucket_owner && grants == private(&owner) {
            return Ok(None);
        }
        Ok(Some((OBJECT_ACL_HEADER.to_string(), ObjectAcl { owner, grants }.encode())))
    }

    /// `object_acl_for_write` for a write to `bucket`.
    pub(super) async fn write_acl(
        &self,
        bucket: &str,
        requester: Option<&Requester>,
        request: &AclRequest<'_>,
    ) -> S3Result<Option<(String, String)>> {
        let meta = self.store.bucket_settings(bucket).await.map_err(store_error)?;
        self.object_acl_for_write(&meta, requester, request)
    }

    /// The settings a new bucket starts with: its owner, Object Ownership and ACL.
    pub(super) fn new_bucket_meta(&self, req: &S3Request<CreateBucketInput>) -> S3Result<BucketMeta> {
        let input = &req.input;
        let owner = self.requester_id(req.extensions.get::<Requester>());
        let ownership = match &input.object_ownership {
            Some(name) => ownership_of(name.as_str())?,
            None => ObjectOwnership::BucketOwnerEnforced,
        };
        let request = bucket_acl_request!(input);
        let known = |id: &str| self.is_known_id(id);
        let grants = requested_grants(&request, &owner, &owner, false, &known)?;
        if !ownership.acls_enabled() && grants.as_ref().is_some_and(|g| !owner_only(g, &owner)) {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidBucketAclWithObjectOwnership,
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
            ));
        }
        let acl = grants.filter(|g| *g != private(&owner));
        let owner = (owner != self.owner_id).then_some(owner);
        Ok(BucketMeta { owner, ownership, acl, ..Default::default() })
    }

    pub(super) async fn get_bucket_acl_impl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let meta = self.store.head_bucket(&req.input.bucket).await.map_err(store_error)?.meta;
        let owner = self.bucket_owner(&meta);
        let grants = match &meta.acl {
            Some(grants) if meta.ownership.acls_enabled() => grants.clone(),
            _ => private(&owner),
        };
        Ok(S3Response::new(GetBucketAclOutput {
            owner: Some(self.owner_of(&owner)),
            grants: Some(self.grants_answer(&grants)),
        }))
    }

    pub(super) async fn put_bucket_acl_impl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let input = &req.input;
        let meta = self.store.head_bucket(&input.bucket).await.map_err(store_error)?.meta;
        let owner = self.bucket_owner(&meta);
        let request = bucket_acl_request!(input);
        let grants = self.put_acl_grants(input.access_control_policy.as_ref(), &request, &owner, &owner, false)?;
        if !meta.ownership.acls_enabled() {
            if owner_only(&grants, &owner) {
                return Ok(S3Response::new(PutBucketAclOutput {}));
            }
            return Err(not_supported());
        }
        Self::check_public(&meta, &grants)?;
        self.store
            .update_bucket_settings(&input.bucket, |meta| {
                meta.acl = Some(grants);
                Ok(())
            })
            .await
            .map_err(store_error)?;
        Ok(S3Response::new(PutBucketAclOutput {}))
    }

    pub(super) async fn get_object_acl_impl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let input = &req.input;
        let (meta, _, info) = self.acl_target(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let bucket_owner = self.bucket_owner(&meta);
        let acl = stored_object_acl(&info)
            .filter(|_| meta.ownership.acls_enabled())
            .unwrap_or_else(|| ObjectAcl { grants: private(&bucket_owner), owner: bucket_owner });
        Ok(S3Response::new(GetObjectAclOutput {
            owner: Some(self.owner_of(&acl.owner)),
            grants: Some(self.grants_answer(&acl.grants)),
            ..Default::default()
        }))
    }

    pub(super) async fn put_object_acl_impl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let input = &req.input;
        let (meta, selector, info) = self.acl_target(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let bucket_owner = self.bucket_owner(&meta);
        let owner = stored_object_acl(&info).map(|acl| acl.owner).unwrap_or_else(|| bucket_owner.clone());
        let request = object_acl_request!(input);
        let grants =
            self.put_acl_grants(input.access_control_policy.as_ref(), &request, &owner, &bucket_owner, true)?;
        if !meta.ownership.acls_enabled() {
            if owner_only(&grants, &bucket_owner) {
                return Ok(S3Response::new(PutObjectAclOutput::default()));
            }
            return Err(not_supported());
        }
        Self::check_public(&meta, &grants)?;
        let value = ObjectAcl { owner, grants }.encode();
        let change = move |headers: &mut Vec<(String, String)>| {
            headers.retain(|(name, _)| name != OBJECT_ACL_HEADER);
            headers.push((OBJECT_ACL_HEADER.to_string(), value.clone()));
            Ok(())
        };
        let info = self
            .store
            .update_object_headers(&input.bucket, &input.key, selector, &change)
            .await
            .map_err(store_error)?;
        Ok(S3Response::new(PutObjectAclOutput { request_charged: None }).with_version(&info))
    }

    pub(super) async fn get_bucket_ownership_controls_impl(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        let meta = self.store.head_bucket(&req.input.bucket).await.map_err(store_error)?.meta;
        let Some(name) = ownership_name(meta.ownership) else {
            return Err(super::error::not_found(
                S3ErrorCode::OwnershipControlsNotFoundError,
                "The bucket ownership controls were not found",
            ));
        };
        Ok(S3Response::new(GetBucketOwnershipControlsOutput {
            ownership_controls: Some(OwnershipControls {
                rules: vec![OwnershipControlsRule { object_ownership: dto::ObjectOwnership::from_static(name) }],
            }),
        }))
    }

    pub(super) async fn put_bucket_ownership_controls_impl(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        let input = &req.input;
        let [rule] = input.ownership_controls.rules.as_slice() else {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "OwnershipControls must have exactly one Rule",
            ));
        };
        let ownership = ownership_of(rule.object_ownership.as_str())?;
        let owner_id = self.owner_id.clone();
        self.store
            .update_bucket_settings(&input.bucket, |meta| {
                let owner = meta.owner.clone().unwrap_or(owner_id);
                if !ownership.acls_enabled() && meta.acl.as_ref().is_some_and(|g| !owner_only(g, &owner)) {
                    return Err(crate::error::StoreError::InvalidRequest(
                        "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting".into(),
                    ));
                }
                meta.ownership = ownership;
                Ok(())
            })
            .await
            .map_err(|e| match e {
                crate::error::StoreError::InvalidRequest(message) => {
                    S3Error::with_message(S3ErrorCode::InvalidBucketAclWithObjectOwnership, message)
                }
                e => store_error(e),
            })?;
        Ok(S3Response::new(PutBucketOwnershipControlsOutput {}))
    }

    pub(super) async fn delete_bucket_ownership_controls_impl(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        self.store
            .update_bucket_settings(&req.input.bucket, |meta| {
                meta.ownership = ObjectOwnership::Unset;
                Ok(())
            })
            .await
            .map_err(store_error)?;
        Ok(S3Response::new(DeleteBucketOwnershipControlsOutput {}))
    }
}

/// `x-amz-version-id` on an answer about a version.
trait WithVersion {
    fn with_version(self, info: &ObjectInfo) -> Self;
}

impl WithVersion for S3Response<PutObjectAclOutput> {
    fn with_version(mut self, info: &ObjectInfo) -> Self {
        if let Some(version) = super::version_header(info)
            && let Ok(value) = version.parse()
        {
            self.headers.insert("x-amz-version-id", value);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "owner";
    const ALT: &str = "alt";

    fn grant(grantee: Grantee, permission: AclPermission) -> Grant {
        Grant { grantee, permission }
    }

    #[test]
    fn grants_allow_what_s3_maps_them_to() {
        let bucket_grants = vec![
            grant(Grantee::User(OWNER.into()), AclPermission::FullControl),
            grant(Grantee::User(ALT.into()), AclPermission::Read),
            grant(Grantee::AllUsers, AclPermission::ReadAcp),
        ];
        let object =
            ObjectAcl { owner: ALT.into(), grants: vec![grant(Grantee::AuthenticatedUsers, AclPermission::Read)] };
        let on = |ownership, object, ignore_public| AclFacts {
            bucket_owner: OWNER,
            ownership,
            bucket_grants: Some(&bucket_grants),
            object,
            ignore_public,
        };
        let writer = ObjectOwnership::ObjectWriter;
        let enforced = ObjectOwnership::BucketOwnerEnforced;
        // (facts, who, action, on object, allowed)
        let table: Vec<(AclFacts<'_>, Who<'_>, &str, bool, bool)> = vec![
            // The bucket owner does everything to the bucket, ACLs on or off.
            (on(enforced, None, false), Who::User(OWNER), "s3:PutBucketPolicy", false, true),
            (on(writer, None, false), Who::User(OWNER), "s3:DeleteBucket", false, true),
            // READ on the bucket lists it, and nothing more.
            (on(writer, None, false), Who::User(ALT), "s3:ListBucket", false, true),
            (on(writer, None, false), Who::User(ALT), "s3:PutBucketAcl", false, false),
            (on(writer, None, false), Who::User(ALT), "s3:PutObject", true, false),
            // ACLs disabled: grants count for nothing.
            (on(enforced, None, false), Who::User(ALT), "s3:ListBucket", false, false),
            (on(enforced, Some(&object), false), Who::User(ALT), "s3:GetObject", true, false),
            (on(enforced, None, false), Who::User(OWNER), "s3:GetObject", true, true),
            // AllUsers: anyone, unless IgnorePublicAcls.
            (on(writer, None, false), Who::Anonymous, "s3:GetBucketAcl", false, true),
            (on(writer, None, true), Who::Anonymous, "s3:GetBucketAcl", false, false),
            // The object's owner has it all; the bucket owner may delete it, not read it.
            (on(writer, Some(&object), false), Who::User(ALT), "s3:PutObjectTagging", true, true),
            (on(writer, Some(&object), false), Who::User(OWNER), "s3:DeleteObject", true, true),
            (on(writer, Some(&object), false), Who::User(OWNER), "s3:GetObjectAcl", true, false),
            // AuthenticatedUsers READ: any user reads it, anonymous does not.
            (on(writer, Some(&object), false), Who::User("third"), "s3:GetObject", true, true),
            (on(writer, Some(&object), false), Who::User("third"), "s3:GetObjectVersion", true, true),
            (on(writer, Some(&object), false), Who::User("third"), "s3:GetObjectAcl", true, false),
            (on(writer, Some(&object), false), Who::Anonymous, "s3:GetObject", true, false),
            // With no object ACL the object is the bucket owner's.
            (on(writer, None, false), Who::User(ALT), "s3:GetObject", true, false),
            (on(writer, None, false), Who::User(OWNER), "s3:GetObjectAcl", true, true),
        ];
        for (i, (facts, who, action, on_object, expected)) in table.iter().enumerate() {
            assert_eq!(allows(facts, *who, action, *on_object), *expected, "row {i}: {who:?} {action}");
        }
        // WRITE on the bucket creates and deletes objects; FULL_CONTROL is every permission.
        let write = vec![grant(Grantee::User(ALT.into()), AclPermission::Write)];
        let facts = AclFacts { bucket_grants: Some(&write), ..on(writer, None, false) };
        assert!(allows(&facts, Who::User(ALT), "s3:PutObject", true));
        assert!(allows(&facts, Who::User(ALT), "s3:DeleteObject", true));
        assert!(!allows(&facts, Who::User(ALT), "s3:ListBucket", false));
        let full = vec![grant(Grantee::AllUsers, AclPermission::FullControl)];
        let facts = AclFacts { bucket_grants: Some(&full), ..on(writer, None, false) };
        assert!(allows(&facts, Who::Anonymous, "s3:PutObject", true));
        assert!(allows(&facts, Who::Anonymous, "s3:ListBucketVersions", false));
        assert!(!allows(&facts, Who::Anonymous, "s3:PutBucketPolicy", false));
    }

    #[test]
    fn canned_acls_and_grant_headers_become_grants() {
        let known = |id: &str| id == OWNER || id == ALT;
        let canned = |name| AclRequest { canned: Some(name), ..Default::default() };
        let of = |request: &AclRequest<'_>, owner: &str, on_object| {
            requested_grants(request, owner, OWNER, on_object, &known).map(|g| g.unwrap_or_default())
        };
        let owner_full = grant(Grantee::User(OWNER.into()), AclPermission::FullControl);
        let alt_full = grant(Grantee::User(ALT.into()), AclPermission::FullControl);
        assert_eq!(of(&canned("private"), OWNER, false).unwrap(), vec![owner_full.clone()]);
        assert_eq!(
            of(&canned("public-read-write"), OWNER, false).unwrap(),
            vec![
                owner_full.clone(),
                grant(Grantee::AllUsers, AclPermission::Read),
                grant(Grantee::AllUsers, AclPermission::Write)
            ]
        );
        assert_eq!(
            of(&canned("authenticated-read"), OWNER, true).unwrap()[1],
            grant(Grantee::AuthenticatedUsers, AclPermission::Read)
        );
        // An object written by another user: bucket-owner-* grants the bucket's owner.
        assert_eq!(of(&canned("bucket-owner-full-control"), ALT, true).unwrap(), vec![alt_full, owner_full.clone()]);
        assert_eq!(
            of(&canned("bucket-owner-read"), ALT, true).unwrap()[1],
            grant(Grantee::User(OWNER.into()), AclPermission::Read)
        );
        assert_eq!(of(&canned("bucket-owner-full-control"), OWNER, true).unwrap(), vec![owner_full]);
        let error = |request: &AclRequest<'_>| of(request, OWNER, true).unwrap_err().code().as_str().to_string();
        assert_eq!(error(&canned("world-writable")), "InvalidArgument");
        let headers = AclRequest {
            read: Some(r#"id="alt", uri="http://acs.amazonaws.com/groups/global/AllUsers""#),
            write_acp: Some("id=owner"),
            ..Default::default()
        };
        assert_eq!(
            of(&headers, OWNER, true).unwrap(),
            vec![
                grant(Grantee::User(ALT.into()), AclPermission::Read),
                grant(Grantee::AllUsers, AclPermission::Read),
                grant(Grantee::User(OWNER.into()), AclPermission::WriteAcp),
            ]
        );
        assert_eq!(error(&AclRequest { canned: Some("private"), ..headers }), "InvalidRequest");
        assert_eq!(error(&AclRequest { read: Some("id=\"nobody\""), ..Default::default() }), "InvalidArgument");
        assert_eq!(
            error(&AclRequest { read: Some("emailAddress=\"a@example.com\""), ..Default::default() }),
            "UnresolvableGrantByEmailAddress"
        );
        assert_eq!(error(&AclRequest { read: Some("uri=\"http://x\""), ..Default::default() }), "InvalidArgument");
        assert_eq!(error(&AclRequest { read: Some("garbage"), ..Default::default() }), "InvalidArgument");
    }
}
