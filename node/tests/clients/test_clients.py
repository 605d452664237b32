"""The AWS CLI and boto3 against a real node: what users type first."""

import hashlib
import io
import os
import random
import urllib.request

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

MIB = 1024 * 1024


def random_file(path, size, seed):
    """`size` pseudo-random bytes (no repeating pattern: every data shard of every block
    differs, so a shard served in the wrong place shows as wrong bytes)."""
    generator = random.Random(seed)
    with open(path, "wb") as f:
        remaining = size
        while remaining > 0:
            chunk = min(remaining, MIB)
            f.write(generator.randbytes(chunk))
            remaining -= chunk


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_aws_cli_cp_sync_ls(aws, tmp_path):
    aws("s3", "mb", "s3://cli-bucket")
    big = tmp_path / "big.bin"
    random_file(big, 50 * MIB, 1)
    aws("s3", "cp", str(big), "s3://cli-bucket/big.bin")
    back = tmp_path / "back.bin"
    aws("s3", "cp", "s3://cli-bucket/big.bin", str(back))
    assert sha256_of(back) == sha256_of(big)

    tree = tmp_path / "tree"
    files = ["a.txt", "dir/b.txt", "dir/sub/c.bin", "dir/sub/deeper/d e.txt", "ünï/cödé.txt"]
    for index, name in enumerate(files):
        path = tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        random_file(path, 1000 * (index + 1), index)
    aws("s3", "sync", str(tree), "s3://cli-bucket/tree")
    listing = aws("s3", "ls", "--recursive", "s3://cli-bucket/")
    keys = sorted(line.split(None, 3)[3] for line in listing.strip().splitlines())
    assert keys == sorted(["big.bin"] + [f"tree/{n}" for n in files])
    # A second sync uploads nothing.
    assert aws("s3", "sync", str(tree), "s3://cli-bucket/tree").strip() == ""
    restored = tmp_path / "restored"
    aws("s3", "sync", "s3://cli-bucket/tree", str(restored))
    for name in files:
        assert sha256_of(restored / name) == sha256_of(tree / name)
    aws("s3", "rm", "--recursive", "s3://cli-bucket/")
    aws("s3", "rb", "s3://cli-bucket")
    assert "cli-bucket" not in aws("s3", "ls")


def test_boto3_round_trips_and_errors(s3):
    s3.create_bucket(Bucket="boto")
    s3.put_object(Bucket="boto", Key="hello.txt", Body=b"hello", ContentType="text/plain", Metadata={"who": "boto3"})
    head = s3.head_object(Bucket="boto", Key="hello.txt")
    assert head["ContentLength"] == 5
    assert head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"who": "boto3"}
    assert head["ETag"] == '"' + hashlib.md5(b"hello").hexdigest() + '"'
    assert s3.get_object(Bucket="boto", Key="hello.txt", Range="bytes=1-3")["Body"].read() == b"ell"

    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket="boto", Key="missing")
    assert error.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as error:
        s3.create_bucket(Bucket="Bad_Name")
    assert error.value.response["Error"]["Code"] == "InvalidBucketName"

    # Multipart through the transfer manager, with Expect: 100-continue on each part.
    payload = os.urandom(21 * MIB)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=4)
    s3.upload_fileobj(io.BytesIO(payload), "boto", "multi.bin", Config=config)
    head = s3.head_object(Bucket="boto", Key="multi.bin")
    assert head["ETag"].endswith('-5"')
    out = io.BytesIO()
    s3.download_fileobj("boto", "multi.bin", out, Config=config)
    assert out.getvalue() == payload

    s3.copy_object(Bucket="boto", Key="copy.txt", CopySource={"Bucket": "boto", "Key": "hello.txt"})
    assert s3.get_object(Bucket="boto", Key="copy.txt")["Body"].read() == b"hello"

    url = s3.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "hello.txt"}, ExpiresIn=60)
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"hello"

    acl = s3.get_bucket_acl(Bucket="boto")
    owner = s3.list_buckets()["Owner"]["ID"]
    assert acl["Owner"]["ID"] == owner
    assert acl["Grants"][0]["Permission"] == "FULL_CONTROL"


def test_boto3_empties_a_bucket_the_way_test_suites_do(s3):
    """Cleanup code in test suites lists versions and deletes them by VersionId."""
    s3.create_bucket(Bucket="cleanup")
    for index in range(25):
        s3.put_object(Bucket="cleanup", Key=f"k/{index:03}", Body=b"x" * index)
    upload = s3.create_multipart_upload(Bucket="cleanup", Key="pending")
    assert s3.get_bucket_versioning(Bucket="cleanup").get("Status") is None

    paginator = s3.get_paginator("list_object_versions")
    seen = 0
    for page in paginator.paginate(Bucket="cleanup", PaginationConfig={"PageSize": 10}):
        objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", [])]
        objects += [{"Key": m["Key"], "VersionId": m["VersionId"]} for m in page.get("DeleteMarkers", [])]
        seen += len(objects)
        if objects:
            result = s3.delete_objects(Bucket="cleanup", Delete={"Objects": objects})
            assert not result.get("Errors")
    assert seen == 25
    uploads = s3.list_multipart_uploads(Bucket="cleanup").get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [upload["UploadId"]]
    s3.abort_multipart_upload(Bucket="cleanup", Key="pending", UploadId=upload["UploadId"])
    s3.delete_bucket(Bucket="cleanup")
    assert "cleanup" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_boto3_empty_object_then_more_requests_on_the_connection(s3):
    """botocore sends Expect: 100-continue even with an empty body; the next request on
    the same connection must not stall."""
    s3.create_bucket(Bucket="empties")
    for index in range(3):
        s3.put_object(Bucket="empties", Key=f"empty-{index}", Body=b"")
        s3.put_object(Bucket="empties", Key=f"full-{index}", Body=b"data")
    assert s3.get_object(Bucket="empties", Key="empty-0")["Body"].read() == b""
    assert s3.head_object(Bucket="empties", Key="empty-2")["ContentLength"] == 0


def test_boto3_refused_uploads_answer_their_error_every_time(s3):
    """A PUT refused before its body (botocore sends Expect: 100-continue) never sends
    that body; the connection closes after the answer, so the next request on a fresh
    one gets its own answer, never a misread one without headers."""
    s3.create_bucket(Bucket="refusals")
    codes = set()
    for index in range(60):
        try:
            s3.put_object(Bucket="no-such-bucket", Key=f"k{index}", Body=b"x")
            codes.add("OK")
        except ClientError as e:
            codes.add(e.response["Error"]["Code"])
        s3.put_object(Bucket="refusals", Key=f"k{index}", Body=b"x")
    assert codes == {"NoSuchBucket"}


def test_multipart_checksums(s3):
    """Checksums of multipart uploads as boto3 asks for them: each part's, the object's
    (COMPOSITE "-N" or FULL_OBJECT), a part listed with the wrong checksum refused."""
    import base64
    import zlib

    def b64_crc32(data):
        return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()

    s3.create_bucket(Bucket="sums")
    part1, part2 = os.urandom(5 * MIB + 1), os.urandom(1024)

    def upload(key, kind):
        extra = {"ChecksumType": kind} if kind else {}
        created = s3.create_multipart_upload(Bucket="sums", Key=key, ChecksumAlgorithm="CRC32", **extra)
        assert created["ChecksumAlgorithm"] == "CRC32"
        assert created["ChecksumType"] == (kind or "COMPOSITE")
        upload_id = created["UploadId"]
        parts = []
        for number, body in [(1, part1), (2, part2)]:
            answer = s3.upload_part(
                Bucket="sums", Key=key, UploadId=upload_id, PartNumber=number, Body=body, ChecksumAlgorithm="CRC32"
            )
            assert answer["ChecksumCRC32"] == b64_crc32(body)
            parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": answer["ChecksumCRC32"]})
        listed = s3.list_parts(Bucket="sums", Key=key, UploadId=upload_id)["Parts"]
        assert [p["ChecksumCRC32"] for p in listed] == [b64_crc32(part1), b64_crc32(part2)]
        return upload_id, parts

    upload_id, parts = upload("composite", None)
    wrong = [dict(parts[0], ChecksumCRC32=b64_crc32(b"other")), parts[1]]
    other_algorithm = [dict(parts[0], ChecksumSHA256=base64.b64encode(b"x" * 32).decode()), parts[1]]
    for listed in (wrong, other_algorithm):
        with pytest.raises(ClientError) as error:
            s3.complete_multipart_upload(
                Bucket="sums", Key="composite", UploadId=upload_id, MultipartUpload={"Parts": listed}
            )
        assert error.value.response["Error"]["Code"] == "InvalidPart"
    done = s3.complete_multipart_upload(
        Bucket="sums", Key="composite", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    raw = zlib.crc32(part1).to_bytes(4, "big") + zlib.crc32(part2).to_bytes(4, "big")
    composite = b64_crc32(raw) + "-2"
    assert done["ChecksumCRC32"] == composite
    assert done["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket="sums", Key="composite", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == composite
    assert s3.get_object(Bucket="sums", Key="composite")["Body"].read() == part1 + part2

    upload_id, parts = upload("full", "FULL_OBJECT")
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(
            Bucket="sums",
            Key="full",
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
            ChecksumCRC32=b64_crc32(part1),
        )
    assert error.value.response["Error"]["Code"] == "BadDigest", "a whole-object checksum that is not the object's"
    done = s3.complete_multipart_upload(
        Bucket="sums",
        Key="full",
        UploadId=upload_id,
        MultipartUpload={"Parts": parts},
        ChecksumCRC32=b64_crc32(part1 + part2),
    )
    assert done["ChecksumCRC32"] == b64_crc32(part1 + part2), "the CRC of the whole object"
    assert done["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket="sums", Key="full", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == b64_crc32(part1 + part2)
    assert got["Body"].read() == part1 + part2

    with pytest.raises(ClientError) as error:
        s3.create_multipart_upload(Bucket="sums", Key="bad", ChecksumAlgorithm="SHA256", ChecksumType="FULL_OBJECT")
    assert error.value.response["Error"]["Code"] == "InvalidRequest"
    assert "FULL_OBJECT checksum type cannot be used with the sha256" in error.value.response["Error"]["Message"]
    created = s3.create_multipart_upload(Bucket="sums", Key="mixed", ChecksumAlgorithm="CRC32")
    with pytest.raises(ClientError) as error:
        s3.upload_part(
            Bucket="sums", Key="mixed", UploadId=created["UploadId"], PartNumber=1, Body=b"x", ChecksumAlgorithm="SHA256"
        )
    assert error.value.response["Error"]["Code"] == "InvalidRequest"


def test_object_tagging(s3):
    """Tags with boto3: on PUT, by PutObjectTagging (data, ETag and Last-Modified kept), on
    copies (COPY and REPLACE directives) and multipart uploads; bad tag sets refused."""
    s3.create_bucket(Bucket="tags")

    def tags(key):
        return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket="tags", Key=key)["TagSet"]}

    s3.put_object(Bucket="tags", Key="a", Body=b"tagged", Tagging="team=storage&cost%20center=a%2Fb")
    assert tags("a") == {"team": "storage", "cost center": "a/b"}
    before = s3.head_object(Bucket="tags", Key="a")
    assert s3.get_object(Bucket="tags", Key="a")["TagCount"] == 2

    s3.put_object_tagging(
        Bucket="tags", Key="a", Tagging={"TagSet": [{"Key": "Environment", "Value": "Test"}, {"Key": "x", "Value": ""}]}
    )
    assert tags("a") == {"Environment": "Test", "x": ""}
    after = s3.get_object(Bucket="tags", Key="a")
    assert after["Body"].read() == b"tagged"
    assert after["ETag"] == before["ETag"]
    assert after["LastModified"] == before["LastModified"]
    assert after["Metadata"] == before["Metadata"]

    s3.copy_object(Bucket="tags", Key="copied", CopySource="tags/a")
    assert tags("copied") == {"Environment": "Test", "x": ""}
    s3.copy_object(Bucket="tags", Key="retagged", CopySource="tags/a", TaggingDirective="REPLACE", Tagging="only=one")
    assert tags("retagged") == {"only": "one"}

    s3.delete_object_tagging(Bucket="tags", Key="a")
    assert tags("a") == {}
    assert "TagCount" not in s3.get_object(Bucket="tags", Key="a")

    upload = s3.create_multipart_upload(Bucket="tags", Key="multi", Tagging="from=upload")
    part = s3.upload_part(Bucket="tags", Key="multi", UploadId=upload["UploadId"], PartNumber=1, Body=b"abc")
    s3.complete_multipart_upload(
        Bucket="tags",
        Key="multi",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert tags("multi") == {"from": "upload"}

    def refused(call, code):
        with pytest.raises(ClientError) as error:
            call()
        assert error.value.response["Error"]["Code"] == code, error.value.response

    eleven = {"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]}
    refused(lambda: s3.put_object_tagging(Bucket="tags", Key="a", Tagging=eleven), "InvalidTag")
    twice = {"TagSet": [{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}]}
    refused(lambda: s3.put_object_tagging(Bucket="tags", Key="a", Tagging=twice), "InvalidTag")
    refused(lambda: s3.put_object(Bucket="tags", Key="b", Body=b"x", Tagging="k=" + "v" * 257), "InvalidTag")
    refused(lambda: s3.get_object_tagging(Bucket="tags", Key="missing"), "NoSuchKey")
    refused(lambda: s3.put_object_tagging(Bucket="tags", Key="missing", Tagging={"TagSet": []}), "NoSuchKey")
    refused(lambda: s3.get_object_tagging(Bucket="nobucket", Key="a"), "NoSuchBucket")


def test_sts_assume_role_temporary_credentials(node, s3):
    """STS AssumeRole on the S3 endpoint with boto3: the temporary credentials work for S3
    (headers and presigned URLs) only with their session token."""
    import datetime
    import urllib.error

    import boto3
    from botocore.config import Config

    from conftest import ACCESS_KEY, SECRET_KEY

    def client(service, key, secret, token=None):
        return boto3.client(
            service,
            endpoint_url=node.endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=token,
            region_name="us-east-1",
            config=Config(
                signature_version="s3v4", s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}
            ),
        )

    sts = client("sts", ACCESS_KEY, SECRET_KEY)
    answer = sts.assume_role(
        RoleArn="arn:aws:iam::000000000000:role/uploader", RoleSessionName="ci-run", DurationSeconds=900
    )
    creds = answer["Credentials"]
    assert answer["AssumedRoleUser"]["Arn"].endswith("assumed-role/uploader/ci-run")
    left = creds["Expiration"] - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(seconds=800) < left <= datetime.timedelta(seconds=900)

    temporary = client("s3", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    temporary.create_bucket(Bucket="sts")
    temporary.put_object(Bucket="sts", Key="k", Body=b"from a role")
    assert s3.get_object(Bucket="sts", Key="k")["Body"].read() == b"from a role"
    url = temporary.generate_presigned_url("get_object", Params={"Bucket": "sts", "Key": "k"}, ExpiresIn=60)
    assert "X-Amz-Security-Token" in url and "X-Amz-Signature" in url, url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"from a role"

    def refused(call, code):
        with pytest.raises(ClientError) as error:
            call()
        assert error.value.response["Error"]["Code"] == code, error.value.response

    no_token = client("s3", creds["AccessKeyId"], creds["SecretAccessKey"])
    refused(lambda: no_token.list_buckets(), "InvalidToken")
    wrong_token = client("s3", creds["AccessKeyId"], creds["SecretAccessKey"], "not-the-token")
    refused(lambda: wrong_token.list_buckets(), "InvalidToken")
    forged = client("s3", creds["AccessKeyId"], "guessed-secret", creds["SessionToken"])
    refused(lambda: forged.list_buckets(), "SignatureDoesNotMatch")
    chained = client("sts", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    refused(lambda: chained.assume_role(RoleArn="arn:aws:iam::000000000000:role/x", RoleSessionName="sess"), "AccessDenied")
    refused(
        lambda: sts.assume_role(RoleArn="arn:aws:iam::000000000000:role/x", RoleSessionName="sess", DurationSeconds=60000),
        "ValidationError",
    )
    # The form grants credentials, so the signature must cover it: signed for S3 instead
    # of STS, or with an unsigned payload, AssumeRole is refused.
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    form = "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A0%3Arole%2Fx&RoleSessionName=sess"
    form_hash = hashlib.sha256(form.encode()).hexdigest()
    for service, payload in [("s3", form_hash), ("sts", "UNSIGNED-PAYLOAD")]:
        request = AWSRequest(
            method="POST",
            url=node.endpoint + "/",
            data=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        if payload:
            request.headers["x-amz-content-sha256"] = payload
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), service, "us-east-1").add_auth(request)
        prepared = request.prepare()
        raw = urllib.request.Request(prepared.url, data=form.encode(), headers=dict(prepared.headers), method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused_raw:
            urllib.request.urlopen(raw, timeout=10)
        body = refused_raw.value.read()
        assert refused_raw.value.code == 403, (service, payload, body)
        assert b"<Code>AccessDenied</Code>" in body, (service, payload, body)

    # An unknown signer is refused before the STS handler (as S3 XML, so only the status
    # reaches an STS client).
    unknown = client("sts", "nobody", "nothing")
    with pytest.raises(ClientError) as error:
        unknown.assume_role(RoleArn="arn:aws:iam::000000000000:role/x", RoleSessionName="sess")
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_bucket_settings_not_kept_answer_as_unset(s3):
    """What tools that read every bucket setting (Terraform, rclone) ask: settings Buckets
    does not keep answer as for a bucket without them; a missing bucket is NoSuchBucket."""
    s3.create_bucket(Bucket="settings")
    unset = {
        "get_bucket_policy": "NoSuchBucketPolicy",
        "get_bucket_cors": "NoSuchCORSConfiguration",
        "get_bucket_lifecycle_configuration": "NoSuchLifecycleConfiguration",
        "get_bucket_encryption": "ServerSideEncryptionConfigurationNotFoundError",
        "get_bucket_tagging": "NoSuchTagSet",
        "get_bucket_website": "NoSuchWebsiteConfiguration",
        "get_object_lock_configuration": "ObjectLockConfigurationNotFoundError",
        "get_bucket_replication": "ReplicationConfigurationNotFoundError",
    }
    for call, code in unset.items():
        for bucket, expected, status in [("settings", code, 404), ("no-such-bucket", "NoSuchBucket", 404)]:
            with pytest.raises(ClientError) as error:
                getattr(s3, call)(Bucket=bucket)
            assert error.value.response["Error"]["Code"] == expected, (call, bucket, error.value.response)
            assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == status, (call, bucket)
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket="settings")
    assert s3.get_bucket_request_payment(Bucket="settings")["Payer"] == "BucketOwner"
    notifications = s3.get_bucket_notification_configuration(Bucket="settings")
    assert not any(k.endswith("Configurations") for k in notifications)
    assert "Status" not in s3.get_bucket_accelerate_configuration(Bucket="settings")
    with pytest.raises(ClientError) as error:
        s3.get_bucket_logging(Bucket="no-such-bucket")
    assert error.value.response["Error"]["Code"] == "NoSuchBucket"
    # Setting them is refused, never silently ignored.
    with pytest.raises(ClientError) as error:
        s3.put_bucket_website(Bucket="settings", WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    assert error.value.response["Error"]["Code"] == "NotImplemented"
