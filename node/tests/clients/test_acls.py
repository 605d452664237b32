"""ACLs and Object Ownership, cross-user the way S3 conformance suites test them: a main
and an alternate user (made with buckets-admin `user add` and `key create --json`, with a
policy that lets them create and list buckets and nothing else) against each other's
buckets and objects; what the owner may do, what each grant and canned ACL gives, what
an anonymous client gets, and the refusals when ACLs are disabled or blocked."""

import json

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from test_users import admin, code_of, new_user, user_client, write_policy

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


class Tenant:
    def __init__(self, node, name):
        self.name = name
        self.key = new_user(node, name, "tenant")
        self.s3 = user_client(node, self.key)
        _, out, _ = admin(node, "user", "info", name, "--json")
        self.id = json.loads(out)["canonicalId"]


@pytest.fixture
def users(node, tmp_path):
    """main, alt and a third user, each allowed to create and list buckets, nothing else."""
    tenant = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:CreateBucket", "s3:ListAllMyBuckets"], "Resource": "*"}],
    }
    admin(node, "policy", "create", "tenant", write_policy(tmp_path, "tenant", tenant))
    return Tenant(node, "main"), Tenant(node, "alt"), Tenant(node, "third")


@pytest.fixture
def anon(node):
    return boto3.client(
        "s3",
        endpoint_url=node.endpoint,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


def grants_of(answer):
    """(grantee id or group uri, permission) of a Get*Acl answer."""
    return sorted((g["Grantee"].get("ID") or g["Grantee"].get("URI"), g["Permission"]) for g in answer["Grants"])


def acls_on(user, bucket, ownership="ObjectWriter", **kwargs):
    user.s3.create_bucket(Bucket=bucket, ObjectOwnership=ownership, **kwargs)


def test_owner_has_its_bucket_and_nobody_else_does(users, s3):
    main, alt, _ = users
    main.s3.create_bucket(Bucket="main-private")
    # Owning a bucket is every right over it, without any policy saying so.
    main.s3.put_object(Bucket="main-private", Key="a.txt", Body=b"main's")
    assert main.s3.get_object(Bucket="main-private", Key="a.txt")["Body"].read() == b"main's"
    main.s3.put_bucket_versioning(Bucket="main-private", VersioningConfiguration={"Status": "Enabled"})
    acl = main.s3.get_bucket_acl(Bucket="main-private")
    assert acl["Owner"] == {"ID": main.id, "DisplayName": "main"}
    assert grants_of(acl) == [(main.id, "FULL_CONTROL")]
    assert main.s3.list_buckets()["Owner"]["ID"] == main.id
    assert main.s3.list_objects(Bucket="main-private")["Contents"][0]["Owner"]["ID"] == main.id
    assert alt.s3.list_buckets()["Owner"] == {"ID": alt.id, "DisplayName": "alt"}
    # x-amz-expected-bucket-owner names the bucket's owner, not anyone else.
    assert main.s3.head_bucket(Bucket="main-private", ExpectedBucketOwner=main.id)
    assert code_of(lambda: main.s3.head_bucket(Bucket="main-private", ExpectedBucketOwner=alt.id)) == "403"
    controls = main.s3.get_bucket_ownership_controls(Bucket="main-private")["OwnershipControls"]
    assert controls["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    # The alternate user gets nothing of it.
    for call in [
        lambda: alt.s3.list_objects_v2(Bucket="main-private"),
        lambda: alt.s3.get_object(Bucket="main-private", Key="a.txt"),
        lambda: alt.s3.put_object(Bucket="main-private", Key="b.txt", Body=b"x"),
        lambda: alt.s3.delete_object(Bucket="main-private", Key="a.txt"),
        lambda: alt.s3.get_bucket_acl(Bucket="main-private"),
        lambda: alt.s3.get_object_acl(Bucket="main-private", Key="a.txt"),
        lambda: alt.s3.put_bucket_versioning(Bucket="main-private", VersioningConfiguration={"Status": "Suspended"}),
        lambda: alt.s3.delete_bucket(Bucket="main-private"),
    ]:
        assert code_of(call) == "AccessDenied"
    # Each lists only the buckets it may list; the root user lists them all.
    alt.s3.create_bucket(Bucket="alt-own")
    assert [b["Name"] for b in alt.s3.list_buckets()["Buckets"]] == ["alt-own"]
    assert [b["Name"] for b in main.s3.list_buckets()["Buckets"]] == ["main-private"]
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["alt-own", "main-private"]
    answer = alt.s3.delete_objects(Bucket="main-private", Delete={"Objects": [{"Key": "a.txt"}]})
    assert [e["Code"] for e in answer["Errors"]] == ["AccessDenied"]
    assert main.s3.head_object(Bucket="main-private", Key="a.txt")["ContentLength"] == 6


def test_acls_are_disabled_by_default(users):
    main, alt, _ = users
    main.s3.create_bucket(Bucket="enforced", ACL="private")  # rclone sends this
    assert code_of(lambda: main.s3.create_bucket(Bucket="public-enforced", ACL="public-read")) == (
        "InvalidBucketAclWithObjectOwnership"
    )
    assert code_of(lambda: main.s3.head_bucket(Bucket="public-enforced")) == "404"
    for acl in ["public-read", "authenticated-read", "public-read-write"]:
        assert code_of(lambda: main.s3.put_object(Bucket="enforced", Key="k", Body=b"x", ACL=acl)) == (
            "AccessControlListNotSupported"
        )
    main.s3.put_object(Bucket="enforced", Key="k", Body=b"x", ACL="bucket-owner-full-control")
    main.s3.put_object(Bucket="enforced", Key="k", Body=b"x", ACL="private")
    assert code_of(lambda: main.s3.put_bucket_acl(Bucket="enforced", ACL="public-read")) == (
        "AccessControlListNotSupported"
    )
    assert code_of(lambda: main.s3.put_object_acl(Bucket="enforced", Key="k", GrantRead=f'id="{alt.id}"')) == (
        "AccessControlListNotSupported"
    )
    main.s3.put_bucket_acl(Bucket="enforced", ACL="private")
    assert grants_of(main.s3.get_object_acl(Bucket="enforced", Key="k")) == [(main.id, "FULL_CONTROL")]
    assert code_of(lambda: alt.s3.get_object(Bucket="enforced", Key="k")) == "AccessDenied"


def test_bucket_grants_by_canonical_id(users):
    main, alt, third = users
    acls_on(main, "shared")
    main.s3.put_object(Bucket="shared", Key="main.txt", Body=b"main")
    main.s3.put_bucket_acl(Bucket="shared", GrantRead=f'id="{alt.id}"')
    # READ: alt lists the bucket; nothing else, and the third user not even that.
    assert [o["Key"] for o in alt.s3.list_objects_v2(Bucket="shared")["Contents"]] == ["main.txt"]
    assert code_of(lambda: alt.s3.get_object(Bucket="shared", Key="main.txt")) == "AccessDenied"
    assert code_of(lambda: alt.s3.put_object(Bucket="shared", Key="alt.txt", Body=b"x")) == "AccessDenied"
    assert code_of(lambda: alt.s3.get_bucket_acl(Bucket="shared")) == "AccessDenied"
    assert code_of(lambda: third.s3.list_objects_v2(Bucket="shared")) == "AccessDenied"
    # The grant replaced the ACL: the owner keeps its rights anyway.
    assert grants_of(main.s3.get_bucket_acl(Bucket="shared")) == [(alt.id, "READ")]
    main.s3.put_object(Bucket="shared", Key="still.txt", Body=b"owner")

    # WRITE: alt writes objects, which are alt's (ObjectWriter): the bucket owner may
    # delete them but not read them.
    main.s3.put_bucket_acl(Bucket="shared", GrantWrite=f'id="{alt.id}"', GrantReadACP=f'id="{alt.id}"')
    alt.s3.put_object(Bucket="shared", Key="alt.txt", Body=b"alt's")
    assert alt.s3.get_object(Bucket="shared", Key="alt.txt")["Body"].read() == b"alt's"
    acl = alt.s3.get_object_acl(Bucket="shared", Key="alt.txt")
    assert acl["Owner"] == {"ID": alt.id, "DisplayName": "alt"}
    assert grants_of(acl) == [(alt.id, "FULL_CONTROL")]
    assert code_of(lambda: main.s3.get_object(Bucket="shared", Key="alt.txt")) == "AccessDenied"
    assert code_of(lambda: alt.s3.list_objects_v2(Bucket="shared")) == "AccessDenied"
    assert grants_of(alt.s3.get_bucket_acl(Bucket="shared")) == [(alt.id, "READ_ACP"), (alt.id, "WRITE")]
    assert code_of(lambda: alt.s3.put_bucket_acl(Bucket="shared", ACL="public-read")) == "AccessDenied"
    main.s3.delete_object(Bucket="shared", Key="alt.txt")
    assert code_of(lambda: main.s3.head_object(Bucket="shared", Key="alt.txt")) == "404"
    # Without READ on the bucket, a missing key is 403 to alt, as S3 answers.
    assert code_of(lambda: alt.s3.head_object(Bucket="shared", Key="alt.txt")) == "403"

    # FULL_CONTROL in an AccessControlPolicy body: alt may now change the ACL itself.
    main.s3.put_bucket_acl(
        Bucket="shared",
        AccessControlPolicy={
            "Owner": {"ID": main.id},
            "Grants": [
                {"Grantee": {"Type": "CanonicalUser", "ID": main.id}, "Permission": "FULL_CONTROL"},
                {"Grantee": {"Type": "CanonicalUser", "ID": alt.id}, "Permission": "FULL_CONTROL"},
            ],
        },
    )
    alt.s3.put_bucket_acl(Bucket="shared", GrantRead=f'id="{third.id}"', GrantFullControl=f'id="{alt.id}"')
    assert [o["Key"] for o in third.s3.list_objects_v2(Bucket="shared")["Contents"]] == ["main.txt", "still.txt"]
    # The owner cannot be changed through an ACL.
    assert code_of(
        lambda: alt.s3.put_bucket_acl(
            Bucket="shared",
            AccessControlPolicy={
                "Owner": {"ID": alt.id},
                "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": alt.id}, "Permission": "FULL_CONTROL"}],
            },
        )
    ) == "AccessDenied"


def test_canned_bucket_acls_for_groups(users, anon):
    main, alt, _ = users
    acls_on(main, "public-list", ACL="public-read")
    main.s3.put_object(Bucket="public-list", Key="page.html", Body=b"<p>hi</p>")
    assert grants_of(main.s3.get_bucket_acl(Bucket="public-list")) == sorted(
        [(ALL_USERS, "READ"), (main.id, "FULL_CONTROL")]
    )
    # public-read on the bucket lists it for anyone; reading an object needs its own ACL.
    assert [o["Key"] for o in anon.list_objects_v2(Bucket="public-list")["Contents"]] == ["page.html"]
    assert code_of(lambda: anon.get_object(Bucket="public-list", Key="page.html")) == "AccessDenied"
    assert code_of(lambda: anon.put_object(Bucket="public-list", Key="x", Body=b"x")) == "AccessDenied"
    main.s3.put_object_acl(Bucket="public-list", Key="page.html", ACL="public-read")
    assert anon.get_object(Bucket="public-list", Key="page.html")["Body"].read() == b"<p>hi</p>"

    acls_on(main, "signed-only", ACL="authenticated-read")
    assert alt.s3.list_objects_v2(Bucket="signed-only")["KeyCount"] == 0
    assert code_of(lambda: anon.list_objects_v2(Bucket="signed-only")) == "AccessDenied"

    acls_on(main, "drop-box", ACL="public-read-write")
    anon.put_object(Bucket="drop-box", Key="anonymous.txt", Body=b"from anyone")
    alt.s3.put_object(Bucket="drop-box", Key="alt.txt", Body=b"from alt")
    assert sorted(o["Key"] for o in anon.list_objects_v2(Bucket="drop-box")["Contents"]) == ["alt.txt", "anonymous.txt"]


def test_object_acls_between_users(users, anon):
    main, alt, third = users
    acls_on(main, "objects")
    main.s3.put_object(Bucket="objects", Key="public.txt", Body=b"public", ACL="public-read")
    main.s3.put_object(Bucket="objects", Key="signed.txt", Body=b"signed", ACL="authenticated-read")
    main.s3.put_object(Bucket="objects", Key="for-alt.txt", Body=b"alt", GrantRead=f'id="{alt.id}"')
    main.s3.put_object(Bucket="objects", Key="private.txt", Body=b"private")
    assert anon.get_object(Bucket="objects", Key="public.txt")["Body"].read() == b"public"
    assert third.s3.get_object(Bucket="objects", Key="signed.txt")["Body"].read() == b"signed"
    assert code_of(lambda: anon.get_object(Bucket="objects", Key="signed.txt")) == "AccessDenied"
    assert alt.s3.get_object(Bucket="objects", Key="for-alt.txt")["Body"].read() == b"alt"
    assert code_of(lambda: third.s3.get_object(Bucket="objects", Key="for-alt.txt")) == "AccessDenied"
    for user in [alt, third]:
        assert code_of(lambda: user.s3.get_object(Bucket="objects", Key="private.txt")) == "AccessDenied"
    # READ does not read the ACL; READ_ACP does; WRITE_ACP changes it.
    assert code_of(lambda: alt.s3.get_object_acl(Bucket="objects", Key="for-alt.txt")) == "AccessDenied"
    main.s3.put_object_acl(
        Bucket="objects", Key="for-alt.txt", GrantReadACP=f'id="{alt.id}"', GrantWriteACP=f'id="{alt.id}"'
    )
    acl = alt.s3.get_object_acl(Bucket="objects", Key="for-alt.txt")
    assert acl["Owner"]["ID"] == main.id
    assert grants_of(acl) == [(alt.id, "READ_ACP"), (alt.id, "WRITE_ACP")]
    # alt lost READ with that change, and gives it to everyone instead.
    assert code_of(lambda: alt.s3.get_object(Bucket="objects", Key="for-alt.txt")) == "AccessDenied"
    alt.s3.put_object_acl(Bucket="objects", Key="for-alt.txt", ACL="public-read")
    assert anon.get_object(Bucket="objects", Key="for-alt.txt")["Body"].read() == b"alt"
    assert code_of(lambda: third.s3.put_object_acl(Bucket="objects", Key="public.txt", ACL="private")) == "AccessDenied"
    # GET and HEAD never show the stored ACL.
    head = anon.head_object(Bucket="objects", Key="public.txt")
    assert not any("acl" in name for name in head["ResponseMetadata"]["HTTPHeaders"])


def test_writer_and_bucket_owner_with_each_ownership(users):
    main, alt, _ = users
    for ownership in ["ObjectWriter", "BucketOwnerPreferred"]:
        bucket = f"inbox-{ownership.lower()}"
        acls_on(main, bucket, ownership=ownership)
        main.s3.put_bucket_acl(Bucket=bucket, GrantWrite=f'id="{alt.id}"', GrantFullControl=f'id="{main.id}"')
        alt.s3.put_object(Bucket=bucket, Key="plain.txt", Body=b"plain")
        alt.s3.put_object(Bucket=bucket, Key="handed.txt", Body=b"handed", ACL="bucket-owner-full-control")
        assert alt.s3.get_object_acl(Bucket=bucket, Key="plain.txt")["Owner"]["ID"] == alt.id
        assert code_of(lambda: main.s3.get_object(Bucket=bucket, Key="plain.txt")) == "AccessDenied"
        # bucket-owner-full-control: the bucket owner reads it; under BucketOwnerPreferred
        # it even owns it (and the writer keeps nothing).
        assert main.s3.get_object(Bucket=bucket, Key="handed.txt")["Body"].read() == b"handed"
        owner = main.s3.get_object_acl(Bucket=bucket, Key="handed.txt")["Owner"]["ID"]
        assert owner == (main.id if ownership == "BucketOwnerPreferred" else alt.id)
        handed_to_writer = code_of(lambda: alt.s3.get_object(Bucket=bucket, Key="handed.txt"))
        assert handed_to_writer == ("AccessDenied" if ownership == "BucketOwnerPreferred" else "OK")

    # Back to BucketOwnerEnforced: refused while the bucket ACL grants others, then the
    # bucket owner owns every object, the ones alt wrote too.
    bucket = "inbox-objectwriter"
    assert code_of(
        lambda: main.s3.put_bucket_ownership_controls(
            Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        )
    ) == "InvalidBucketAclWithObjectOwnership"
    main.s3.put_bucket_acl(Bucket=bucket, ACL="private")
    main.s3.put_bucket_ownership_controls(
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    )
    assert main.s3.get_object(Bucket=bucket, Key="plain.txt")["Body"].read() == b"plain"
    assert main.s3.get_object_acl(Bucket=bucket, Key="plain.txt")["Owner"]["ID"] == main.id
    assert code_of(lambda: alt.s3.get_object(Bucket=bucket, Key="plain.txt")) == "AccessDenied"
    main.s3.delete_bucket_ownership_controls(Bucket=bucket)
    assert code_of(lambda: main.s3.get_bucket_ownership_controls(Bucket=bucket)) == "OwnershipControlsNotFoundError"
    assert code_of(lambda: alt.s3.put_bucket_ownership_controls(
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]}
    )) == "AccessDenied"


def test_policies_and_acls_together(users, anon, node):
    main, alt, third = users
    acls_on(main, "mixed")
    main.s3.put_object(Bucket="mixed", Key="doc.txt", Body=b"doc", GrantRead=f'id="{alt.id}"')
    main.s3.put_object(Bucket="mixed", Key="other.txt", Body=b"other")
    # A bucket policy grants what no ACL does, to another user...
    main.s3.put_bucket_policy(
        Bucket="mixed",
        Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::buckets:user/{third.name}"},
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::mixed/*",
                },
                {
                    "Effect": "Deny",
                    "Principal": {"AWS": f"arn:aws:iam::buckets:user/{alt.name}"},
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::mixed/doc.txt",
                },
            ],
        }),
    )
    assert third.s3.get_object(Bucket="mixed", Key="other.txt")["Body"].read() == b"other"
    # ...and an explicit Deny wins over an ACL grant.
    assert code_of(lambda: alt.s3.get_object(Bucket="mixed", Key="doc.txt")) == "AccessDenied"
    main.s3.delete_bucket_policy(Bucket="mixed")
    assert alt.s3.get_object(Bucket="mixed", Key="doc.txt")["Body"].read() == b"doc"

    # Block Public Access: BlockPublicAcls refuses public ACLs, IgnorePublicAcls voids them.
    main.s3.put_object(Bucket="mixed", Key="public.txt", Body=b"public", ACL="public-read")
    main.s3.put_public_access_block(
        Bucket="mixed",
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": False,
        },
    )
    assert code_of(lambda: anon.get_object(Bucket="mixed", Key="public.txt")) == "AccessDenied"
    assert code_of(lambda: main.s3.put_object(Bucket="mixed", Key="p2", Body=b"x", ACL="public-read")) == (
        "AccessDenied"
    )
    assert code_of(lambda: main.s3.put_bucket_acl(Bucket="mixed", ACL="authenticated-read")) == "AccessDenied"
    assert alt.s3.get_object(Bucket="mixed", Key="doc.txt")["Body"].read() == b"doc"
    main.s3.delete_public_access_block(Bucket="mixed")
    assert anon.get_object(Bucket="mixed", Key="public.txt")["Body"].read() == b"public"


def test_acls_of_versions_uploads_and_copies(users, anon):
    main, alt, _ = users
    acls_on(main, "history")
    main.s3.put_bucket_versioning(Bucket="history", VersioningConfiguration={"Status": "Enabled"})
    first = main.s3.put_object(Bucket="history", Key="k", Body=b"one", ACL="public-read")["VersionId"]
    main.s3.put_object(Bucket="history", Key="k", Body=b"two")
    assert anon.get_object(Bucket="history", Key="k", VersionId=first)["Body"].read() == b"one"
    assert code_of(lambda: anon.get_object(Bucket="history", Key="k")) == "AccessDenied"
    main.s3.put_object_acl(Bucket="history", Key="k", VersionId=first, ACL="private")
    assert code_of(lambda: anon.get_object(Bucket="history", Key="k", VersionId=first)) == "AccessDenied"

    upload = main.s3.create_multipart_upload(Bucket="history", Key="big", GrantRead=f'id="{alt.id}"')["UploadId"]
    part = main.s3.upload_part(Bucket="history", Key="big", UploadId=upload, PartNumber=1, Body=b"parts")
    main.s3.complete_multipart_upload(
        Bucket="history",
        Key="big",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert alt.s3.get_object(Bucket="history", Key="big")["Body"].read() == b"parts"
    # A copy takes the ACL its request names, never the source's.
    main.s3.copy_object(Bucket="history", Key="copy", CopySource={"Bucket": "history", "Key": "big"})
    assert code_of(lambda: alt.s3.get_object(Bucket="history", Key="copy")) == "AccessDenied"
    main.s3.copy_object(Bucket="history", Key="copy", CopySource={"Bucket": "history", "Key": "big"}, ACL="public-read")
    assert anon.get_object(Bucket="history", Key="copy")["Body"].read() == b"parts"


def test_bad_acls_are_refused_with_the_reason(users):
    main, _, _ = users
    acls_on(main, "strict")
    main.s3.put_object(Bucket="strict", Key="k", Body=b"x")
    cases = [
        (lambda: main.s3.put_bucket_acl(Bucket="strict", GrantRead='id="not-a-user"'), "InvalidArgument"),
        (lambda: main.s3.put_bucket_acl(Bucket="strict", GrantRead='emailAddress="a@example.com"'),
         "UnresolvableGrantByEmailAddress"),
        (lambda: main.s3.put_bucket_acl(Bucket="strict", GrantRead='uri="http://example.com/group"'), "InvalidArgument"),
        (lambda: main.s3.put_object(Bucket="strict", Key="k2", Body=b"x", ACL="public-read", GrantRead=f'id="{main.id}"'),
         "InvalidRequest"),
        (lambda: main.s3.create_bucket(Bucket="odd", ObjectOwnership="Nobody"), "InvalidArgument"),
    ]
    for call, expected in cases:
        assert code_of(call) == expected
    # Nothing was stored by the refused requests.
    assert grants_of(main.s3.get_bucket_acl(Bucket="strict")) == [(main.id, "FULL_CONTROL")]
    assert code_of(lambda: main.s3.head_object(Bucket="strict", Key="k2")) == "404"
