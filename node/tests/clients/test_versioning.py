"""Versioning and object lock with boto3, the way backup tools and scripts use them."""

import datetime
import time

import pytest
from botocore.exceptions import ClientError


def code_of(call, *args, **kwargs):
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    return raised.value.response["Error"]["Code"]


def all_versions(s3, bucket, page_size):
    """Every version and delete marker, paged `page_size` entries at a time."""
    versions, markers, pages = [], [], 0
    arguments = {"Bucket": bucket, "MaxKeys": page_size}
    while True:
        page = s3.list_object_versions(**arguments)
        pages += 1
        versions += [(v["Key"], v["VersionId"], v["IsLatest"]) for v in page.get("Versions", [])]
        markers += [(m["Key"], m["VersionId"], m["IsLatest"]) for m in page.get("DeleteMarkers", [])]
        if not page["IsTruncated"]:
            return versions, markers, pages
        arguments["KeyMarker"] = page["NextKeyMarker"]
        arguments["VersionIdMarker"] = page["NextVersionIdMarker"]


def test_versions_markers_and_the_null_version(s3):
    s3.create_bucket(Bucket="history")
    s3.put_object(Bucket="history", Key="doc", Body=b"before versioning")
    s3.put_bucket_versioning(Bucket="history", VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket="history")["Status"] == "Enabled"

    ids = [s3.put_object(Bucket="history", Key="doc", Body=f"v{n}".encode())["VersionId"] for n in range(3)]
    assert len(set(ids)) == 3 and "null" not in ids
    s3.put_object(Bucket="history", Key="other", Body=b"o")

    # A delete marker hides the key; the older versions stay readable by id.
    deleted = s3.delete_object(Bucket="history", Key="doc")
    assert deleted["DeleteMarker"] is True
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket="history", Key="doc")
    assert raised.value.response["Error"]["Code"] == "NoSuchKey"
    assert raised.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    assert s3.get_object(Bucket="history", Key="doc", VersionId=ids[1])["Body"].read() == b"v1"
    assert s3.get_object(Bucket="history", Key="doc", VersionId="null")["Body"].read() == b"before versioning"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="history")["Contents"]] == ["other"]

    # Listed one entry per page: every version once, newest first, the marker latest.
    versions, markers, pages = all_versions(s3, "history", 1)
    assert pages == 6
    assert [v for v in versions if v[0] == "doc"] == [
        ("doc", ids[2], False),
        ("doc", ids[1], False),
        ("doc", ids[0], False),
        ("doc", "null", False),
    ]
    assert markers == [("doc", deleted["VersionId"], True)]

    # Removing the marker brings the newest version back.
    s3.delete_object(Bucket="history", Key="doc", VersionId=deleted["VersionId"])
    assert s3.get_object(Bucket="history", Key="doc")["Body"].read() == b"v2"

    # Suspended: a write replaces the null version and keeps the others.
    s3.put_bucket_versioning(Bucket="history", VersioningConfiguration={"Status": "Suspended"})
    written = s3.put_object(Bucket="history", Key="doc", Body=b"suspended write")
    assert written.get("VersionId", "null") == "null"
    versions, _, _ = all_versions(s3, "history", 1000)
    doc = [v[1] for v in versions if v[0] == "doc"]
    assert doc == ["null", ids[2], ids[1], ids[0]]
    assert s3.get_object(Bucket="history", Key="doc", VersionId="null")["Body"].read() == b"suspended write"
    assert code_of(s3.put_bucket_versioning, Bucket="history", VersioningConfiguration={"Status": "Off"}) in (
        "MalformedXML",
        "IllegalVersioningConfigurationException",
    )

    # DeleteObjects with version ids removes exactly those.
    result = s3.delete_objects(
        Bucket="history",
        Delete={"Objects": [{"Key": "doc", "VersionId": ids[0]}, {"Key": "doc", "VersionId": ids[1]}]},
    )
    assert sorted(d["VersionId"] for d in result["Deleted"]) == sorted(ids[:2])
    versions, _, _ = all_versions(s3, "history", 1000)
    assert [v[1] for v in versions if v[0] == "doc"] == ["null", ids[2]]


def test_object_lock_retention_legal_hold_and_bypass(s3):
    s3.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
    assert s3.get_bucket_versioning(Bucket="vault")["Status"] == "Enabled"
    assert (
        code_of(s3.put_bucket_versioning, Bucket="vault", VersioningConfiguration={"Status": "Suspended"})
        == "InvalidBucketState"
    )

    # Retention that ends in two seconds: refused before, allowed after.
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    short = s3.put_object(
        Bucket="vault", Key="short", Body=b"s", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until
    )["VersionId"]
    assert code_of(s3.delete_object, Bucket="vault", Key="short", VersionId=short) == "AccessDenied"
    # A delete marker can always be added.
    assert s3.delete_object(Bucket="vault", Key="short")["DeleteMarker"] is True
    # COMPLIANCE cannot be shortened, even by the root user.
    assert (
        code_of(
            s3.put_object_retention,
            Bucket="vault",
            Key="short",
            VersionId=short,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
            BypassGovernanceRetention=True,
        )
        == "AccessDenied"
    )
    time.sleep(max(0.0, (until - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 1.2)
    s3.delete_object(Bucket="vault", Key="short", VersionId=short)

    # Legal hold on, then off.
    held = s3.put_object(Bucket="vault", Key="held", Body=b"h")["VersionId"]
    s3.put_object_legal_hold(Bucket="vault", Key="held", VersionId=held, LegalHold={"Status": "ON"})
    assert s3.get_object_legal_hold(Bucket="vault", Key="held", VersionId=held)["LegalHold"]["Status"] == "ON"
    assert code_of(s3.delete_object, Bucket="vault", Key="held", VersionId=held) == "AccessDenied"
    s3.put_object_legal_hold(Bucket="vault", Key="held", VersionId=held, LegalHold={"Status": "OFF"})
    s3.delete_object(Bucket="vault", Key="held", VersionId=held)

    # Default GOVERNANCE retention applies to new versions; the root user may bypass it.
    s3.put_object_lock_configuration(
        Bucket="vault",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    governed = s3.put_object(Bucket="vault", Key="governed", Body=b"g")["VersionId"]
    retention = s3.get_object_retention(Bucket="vault", Key="governed", VersionId=governed)["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    head = s3.head_object(Bucket="vault", Key="governed")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert code_of(s3.delete_object, Bucket="vault", Key="governed", VersionId=governed) == "AccessDenied"
    s3.delete_object(Bucket="vault", Key="governed", VersionId=governed, BypassGovernanceRetention=True)
    assert code_of(s3.head_object, Bucket="vault", Key="governed", VersionId=governed) in ("404", "NoSuchVersion", "NoSuchKey")
