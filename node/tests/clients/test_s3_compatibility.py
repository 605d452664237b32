"""Keeps docs/s3-compatibility.md true: every operation of boto3's S3 model is listed there,
every one marked Supported or Partly is called here against a real node and answers as
the page says, and a few marked No answer NotImplemented without touching data."""

import datetime
import pathlib
import re

import pytest
from botocore.exceptions import ClientError

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "s3-compatibility.md"
ROW = re.compile(r"^\| (\w+) \| (Supported|Partly|No) \|")


def documented():
    rows = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} listed twice"
            rows[match.group(1)] = match.group(2)
    return rows


def error_code(call):
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


class Calls:
    """One call of each served operation, in an order where each finds what it needs."""

    def __init__(self, s3):
        self.s3 = s3
        self.bucket = "compat"
        self.locked = "compat-locked"

    def CreateBucket(self):
        self.s3.create_bucket(Bucket=self.bucket)
        self.s3.create_bucket(Bucket=self.locked, ObjectLockEnabledForBucket=True)

    def HeadBucket(self):
        self.s3.head_bucket(Bucket=self.bucket)

    def ListBuckets(self):
        names = [b["Name"] for b in self.s3.list_buckets(MaxBuckets=10)["Buckets"]]
        assert names == [self.bucket, self.locked]

    def GetBucketLocation(self):
        assert self.s3.get_bucket_location(Bucket=self.bucket).get("LocationConstraint") is None

    def PutBucketVersioning(self):
        self.s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})

    def GetBucketVersioning(self):
        assert self.s3.get_bucket_versioning(Bucket=self.bucket)["Status"] == "Enabled"

    def PutObject(self):
        self.first = self.s3.put_object(Bucket=self.bucket, Key="obj", Body=b"first", ChecksumAlgorithm="SHA1")
        self.second = self.s3.put_object(Bucket=self.bucket, Key="obj", Body=b"second")
        self.locked_version = self.s3.put_object(Bucket=self.locked, Key="obj", Body=b"locked")["VersionId"]

    def HeadObject(self):
        assert self.s3.head_object(Bucket=self.bucket, Key="obj")["ContentLength"] == len(b"second")

    def GetObject(self):
        got = self.s3.get_object(Bucket=self.bucket, Key="obj", VersionId=self.first["VersionId"])
        assert got["Body"].read() == b"first"

    def GetObjectAttributes(self):
        got = self.s3.get_object_attributes(Bucket=self.bucket, Key="obj", ObjectAttributes=["ObjectSize", "ETag"])
        assert got["ObjectSize"] == len(b"second") and got["ETag"] == self.second["ETag"].strip('"')

    def CopyObject(self):
        self.s3.copy_object(
            Bucket=self.bucket, Key="copy", CopySource={"Bucket": self.bucket, "Key": "obj", "VersionId": self.first["VersionId"]}
        )
        assert self.s3.get_object(Bucket=self.bucket, Key="copy")["Body"].read() == b"first"

    def PutObjectTagging(self):
        self.s3.put_object_tagging(Bucket=self.bucket, Key="obj", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})

    def GetObjectTagging(self):
        assert self.s3.get_object_tagging(Bucket=self.bucket, Key="obj")["TagSet"] == [{"Key": "k", "Value": "v"}]

    def DeleteObjectTagging(self):
        self.s3.delete_object_tagging(Bucket=self.bucket, Key="obj")
        assert self.s3.get_object_tagging(Bucket=self.bucket, Key="obj")["TagSet"] == []

    def ListObjects(self):
        assert [o["Key"] for o in self.s3.list_objects(Bucket=self.bucket)["Contents"]] == ["copy", "obj"]

    def ListObjectsV2(self):
        assert [o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket, MaxKeys=1)["Contents"]] == ["copy"]

    def ListObjectVersions(self):
        versions = self.s3.list_object_versions(Bucket=self.bucket, Prefix="obj")["Versions"]
        assert [v["VersionId"] for v in versions] == [self.second["VersionId"], self.first["VersionId"]]

    def CreateMultipartUpload(self):
        self.upload = self.s3.create_multipart_upload(Bucket=self.bucket, Key="mpu")["UploadId"]
        self.aborted = self.s3.create_multipart_upload(Bucket=self.bucket, Key="aborted")["UploadId"]

    def UploadPart(self):
        part = self.s3.upload_part(Bucket=self.bucket, Key="mpu", UploadId=self.upload, PartNumber=1, Body=b"x" * (5 << 20))
        self.parts = [{"PartNumber": 1, "ETag": part["ETag"]}]

    def UploadPartCopy(self):
        part = self.s3.upload_part_copy(
            Bucket=self.bucket, Key="mpu", UploadId=self.upload, PartNumber=2, CopySource=f"{self.bucket}/copy"
        )
        self.parts.append({"PartNumber": 2, "ETag": part["CopyPartResult"]["ETag"]})

    def ListParts(self):
        assert [p["PartNumber"] for p in self.s3.list_parts(Bucket=self.bucket, Key="mpu", UploadId=self.upload)["Parts"]] == [1, 2]

    def ListMultipartUploads(self):
        keys = [u["Key"] for u in self.s3.list_multipart_uploads(Bucket=self.bucket)["Uploads"]]
        assert keys == ["aborted", "mpu"]

    def CompleteMultipartUpload(self):
        self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key="mpu", UploadId=self.upload, MultipartUpload={"Parts": self.parts}
        )
        assert self.s3.head_object(Bucket=self.bucket, Key="mpu")["ContentLength"] == (5 << 20) + len(b"first")

    def AbortMultipartUpload(self):
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key="aborted", UploadId=self.aborted)
        assert "Uploads" not in self.s3.list_multipart_uploads(Bucket=self.bucket)

    def PutBucketLifecycleConfiguration(self):
        self.s3.put_bucket_lifecycle_configuration(
            Bucket=self.bucket,
            LifecycleConfiguration={
                "Rules": [{"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 7}}]
            },
        )

    def GetBucketLifecycleConfiguration(self):
        rules = self.s3.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
        assert rules[0]["Filter"] == {"Prefix": "tmp/"} and rules[0]["Expiration"] == {"Days": 7}

    def GetBucketLifecycle(self):
        assert self.s3.get_bucket_lifecycle(Bucket=self.bucket)["Rules"][0]["ID"] == "tmp"

    def PutBucketLifecycle(self):
        self.s3.put_bucket_lifecycle(
            Bucket=self.bucket,
            LifecycleConfiguration={"Rules": [{"ID": "old", "Prefix": "old/", "Status": "Enabled", "Expiration": {"Days": 3}}]},
        )
        rules = self.s3.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
        assert [(r["ID"], r.get("Prefix", r.get("Filter", {}).get("Prefix"))) for r in rules] == [("old", "old/")]

    def DeleteBucketLifecycle(self):
        self.s3.delete_bucket_lifecycle(Bucket=self.bucket)
        assert error_code(lambda: self.s3.get_bucket_lifecycle_configuration(Bucket=self.bucket)) == (
            "NoSuchLifecycleConfiguration"
        )

    def PutObjectLockConfiguration(self):
        self.s3.put_object_lock_configuration(
            Bucket=self.locked,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
            },
        )

    def GetObjectLockConfiguration(self):
        rule = self.s3.get_object_lock_configuration(Bucket=self.locked)["ObjectLockConfiguration"]["Rule"]
        assert rule["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 1}

    def PutObjectRetention(self):
        until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
        self.s3.put_object_retention(
            Bucket=self.locked, Key="obj", VersionId=self.locked_version, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}
        )

    def GetObjectRetention(self):
        retention = self.s3.get_object_retention(Bucket=self.locked, Key="obj", VersionId=self.locked_version)
        assert retention["Retention"]["Mode"] == "GOVERNANCE"

    def PutObjectLegalHold(self):
        self.s3.put_object_legal_hold(
            Bucket=self.locked, Key="obj", VersionId=self.locked_version, LegalHold={"Status": "ON"}
        )

    def GetObjectLegalHold(self):
        hold = self.s3.get_object_legal_hold(Bucket=self.locked, Key="obj", VersionId=self.locked_version)
        assert hold["LegalHold"]["Status"] == "ON"

    def GetBucketAcl(self):
        assert self.s3.get_bucket_acl(Bucket=self.bucket)["Grants"][0]["Permission"] == "FULL_CONTROL"

    def GetObjectAcl(self):
        assert self.s3.get_object_acl(Bucket=self.bucket, Key="obj")["Grants"][0]["Permission"] == "FULL_CONTROL"

    def PutBucketOwnershipControls(self):
        rules = {"Rules": [{"ObjectOwnership": "ObjectWriter"}]}
        self.s3.put_bucket_ownership_controls(Bucket=self.bucket, OwnershipControls=rules)

    def PutBucketAcl(self):
        self.s3.put_bucket_acl(Bucket=self.bucket, ACL="public-read")
        grants = self.s3.get_bucket_acl(Bucket=self.bucket)["Grants"]
        assert {g["Permission"] for g in grants} == {"FULL_CONTROL", "READ"}

    def PutObjectAcl(self):
        self.s3.put_object_acl(Bucket=self.bucket, Key="obj", ACL="authenticated-read")
        grants = self.s3.get_object_acl(Bucket=self.bucket, Key="obj")["Grants"]
        assert any(g["Grantee"].get("URI", "").endswith("AuthenticatedUsers") for g in grants)
        self.s3.put_object_acl(Bucket=self.bucket, Key="obj", ACL="private")
        self.s3.put_bucket_acl(Bucket=self.bucket, ACL="private")

    def DeleteBucketOwnershipControls(self):
        self.s3.delete_bucket_ownership_controls(Bucket=self.bucket)
        assert error_code(lambda: self.s3.get_bucket_ownership_controls(Bucket=self.bucket)) == (
            "OwnershipControlsNotFoundError"
        )
        rules = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        self.s3.put_bucket_ownership_controls(Bucket=self.bucket, OwnershipControls=rules)

    # Settings Buckets does not keep answer as for a bucket that has none.
    def GetBucketPolicy(self):
        assert error_code(lambda: self.s3.get_bucket_policy(Bucket=self.bucket)) == "NoSuchBucketPolicy"

    def PutBucketPolicy(self):
        policy = (
            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::buckets:user/x"},'
            f'"Action":"s3:GetObject","Resource":"arn:aws:s3:::{self.bucket}/*"}}]}}'
        )
        self.s3.put_bucket_policy(Bucket=self.bucket, Policy=policy)
        assert "user/x" in self.s3.get_bucket_policy(Bucket=self.bucket)["Policy"]

    def GetBucketPolicyStatus(self):
        assert self.s3.get_bucket_policy_status(Bucket=self.bucket)["PolicyStatus"]["IsPublic"] is False

    def DeleteBucketPolicy(self):
        self.s3.delete_bucket_policy(Bucket=self.bucket)
        assert error_code(lambda: self.s3.get_bucket_policy(Bucket=self.bucket)) == "NoSuchBucketPolicy"

    def PutPublicAccessBlock(self):
        block = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
        self.s3.put_public_access_block(Bucket=self.bucket, PublicAccessBlockConfiguration=block)

    def GetPublicAccessBlock(self):
        got = self.s3.get_public_access_block(Bucket=self.bucket)["PublicAccessBlockConfiguration"]
        assert all(got.values()) and len(got) == 4

    def DeletePublicAccessBlock(self):
        self.s3.delete_public_access_block(Bucket=self.bucket)
        assert error_code(lambda: self.s3.get_public_access_block(Bucket=self.bucket)) == "NoSuchPublicAccessBlockConfiguration"

    def GetBucketCors(self):
        assert error_code(lambda: self.s3.get_bucket_cors(Bucket=self.bucket)) == "NoSuchCORSConfiguration"

    def PutBucketCors(self):
        rules = [{"AllowedOrigins": ["https://app.example"], "AllowedMethods": ["GET"]}]
        self.s3.put_bucket_cors(Bucket=self.bucket, CORSConfiguration={"CORSRules": rules})
        assert self.s3.get_bucket_cors(Bucket=self.bucket)["CORSRules"][0]["AllowedMethods"] == ["GET"]

    def DeleteBucketCors(self):
        self.s3.delete_bucket_cors(Bucket=self.bucket)
        assert error_code(lambda: self.s3.get_bucket_cors(Bucket=self.bucket)) == "NoSuchCORSConfiguration"

    def GetBucketEncryption(self):
        assert error_code(lambda: self.s3.get_bucket_encryption(Bucket=self.bucket)) == (
            "ServerSideEncryptionConfigurationNotFoundError"
        )

    def GetBucketTagging(self):
        assert error_code(lambda: self.s3.get_bucket_tagging(Bucket=self.bucket)) == "NoSuchTagSet"

    def GetBucketWebsite(self):
        assert error_code(lambda: self.s3.get_bucket_website(Bucket=self.bucket)) == "NoSuchWebsiteConfiguration"

    def GetBucketReplication(self):
        assert error_code(lambda: self.s3.get_bucket_replication(Bucket=self.bucket)) == (
            "ReplicationConfigurationNotFoundError"
        )

    def GetBucketOwnershipControls(self):
        controls = self.s3.get_bucket_ownership_controls(Bucket=self.bucket)["OwnershipControls"]
        assert controls["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced"

    def GetBucketLogging(self):
        assert "LoggingEnabled" not in self.s3.get_bucket_logging(Bucket=self.bucket)

    def GetBucketRequestPayment(self):
        assert self.s3.get_bucket_request_payment(Bucket=self.bucket)["Payer"] == "BucketOwner"

    def GetBucketNotificationConfiguration(self):
        answer = self.s3.get_bucket_notification_configuration(Bucket=self.bucket)
        assert "TopicConfigurations" not in answer and "QueueConfigurations" not in answer

    def GetBucketNotification(self):
        assert "TopicConfiguration" not in self.s3.get_bucket_notification(Bucket=self.bucket)

    def GetBucketAccelerateConfiguration(self):
        assert "Status" not in self.s3.get_bucket_accelerate_configuration(Bucket=self.bucket)

    def DeleteObject(self):
        marker = self.s3.delete_object(Bucket=self.bucket, Key="copy")
        assert marker["DeleteMarker"] is True
        self.s3.delete_object(Bucket=self.bucket, Key="copy", VersionId=marker["VersionId"])

    def DeleteObjects(self):
        result = self.s3.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": "obj", "VersionId": self.first["VersionId"]}, {"Key": "mpu"}]}
        )
        assert len(result["Deleted"]) == 2

    def DeleteBucket(self):
        self.s3.create_bucket(Bucket="compat-empty")
        self.s3.delete_bucket(Bucket="compat-empty")
        assert error_code(lambda: self.s3.delete_bucket(Bucket=self.bucket)) == "BucketNotEmpty"


ORDER = [name for name in vars(Calls) if not name.startswith("_")]


def test_every_operation_is_documented(s3):
    rows = documented()
    model = set(s3.meta.service_model.operation_names)
    assert model - set(rows) == set(), "operations of the S3 model missing from docs/s3-compatibility.md"
    assert set(rows) - model == set(), "rows that are not operations of the S3 model"


def test_every_served_operation_answers_as_documented(s3):
    rows = documented()
    served = {name for name, status in rows.items() if status != "No"}
    assert served == set(ORDER), (
        f"served but not called here: {sorted(served - set(ORDER))}; "
        f"called here but not listed as served: {sorted(set(ORDER) - served)}"
    )
    calls = Calls(s3)
    for name in ORDER:
        try:
            getattr(calls, name)()
        except Exception as error:  # noqa: BLE001 - name the operation that failed
            raise AssertionError(f"{name} ({rows[name]}): {error!r}") from error


def test_operations_not_served_change_nothing(s3):
    s3.create_bucket(Bucket="untouched")
    s3.put_object(Bucket="untouched", Key="k", Body=b"kept")
    refused = [
        lambda: s3.rename_object(Bucket="untouched", Key="renamed", RenameSource="untouched/k"),
        lambda: s3.put_bucket_tagging(Bucket="untouched", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}),
        lambda: s3.get_bucket_abac(Bucket="untouched"),
        lambda: s3.put_bucket_website(Bucket="untouched", WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}}),
        lambda: s3.put_bucket_replication(
            Bucket="untouched",
            ReplicationConfiguration={"Role": "arn:aws:iam::1:role/r", "Rules": [{"Status": "Enabled", "Destination": {"Bucket": "arn:aws:s3:::x"}, "Prefix": ""}]},
        ),
    ]
    for call in refused:
        assert error_code(call) == "NotImplemented"
    if hasattr(s3, "update_object_encryption"):
        assert (
            error_code(
                lambda: s3.update_object_encryption(
                    Bucket="untouched", Key="k", ObjectEncryption={"SSEKMS": {"KMSKeyArn": "arn:aws:kms:us-east-1:1:key/x"}}
                )
            )
            == "NotImplemented"
        )
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="untouched")["Contents"]] == ["k"]
    assert s3.get_object(Bucket="untouched", Key="k")["Body"].read() == b"kept"
