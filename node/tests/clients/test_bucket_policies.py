"""Bucket policies and Block Public Access: a public-read website bucket served to
anonymous requests, other buckets refused; policies that grant or deny users access to one
bucket; malformed and oversized policies refused with the reason."""

import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from test_users import admin, code_of, new_user, user_client


def anonymous(method, url, body=None):
    """An unsigned request, as a browser or curl sends it: (status, body)."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def public_read(bucket):
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }


def test_a_public_read_bucket_serves_anonymous_gets_and_nothing_else(node, s3):
    s3.create_bucket(Bucket="site")
    s3.create_bucket(Bucket="closed")
    s3.put_object(Bucket="site", Key="index.html", Body=b"<h1>hello</h1>", ContentType="text/html")
    s3.put_object(Bucket="closed", Key="index.html", Body=b"secret")
    url = f"{node.endpoint}/site/index.html"
    assert anonymous("GET", url)[0] == 403
    assert code_of(lambda: s3.get_bucket_policy(Bucket="site")) == "NoSuchBucketPolicy"

    s3.put_bucket_policy(Bucket="site", Policy=json.dumps(public_read("site")))
    assert json.loads(s3.get_bucket_policy(Bucket="site")["Policy"]) == public_read("site")
    assert s3.get_bucket_policy_status(Bucket="site")["PolicyStatus"]["IsPublic"] is True
    assert anonymous("GET", url) == (200, b"<h1>hello</h1>")
    assert anonymous("HEAD", url)[0] == 200
    # Only what the policy grants: no listing, no writes, no other bucket.
    assert anonymous("GET", f"{node.endpoint}/site")[0] == 403
    assert anonymous("PUT", f"{node.endpoint}/site/evil.html", b"x")[0] == 403
    assert anonymous("DELETE", url)[0] == 403
    assert anonymous("GET", f"{node.endpoint}/closed/index.html")[0] == 403
    assert anonymous("GET", f"{node.endpoint}/")[0] == 403
    assert code_of(lambda: s3.head_object(Bucket="site", Key="evil.html")) == "404"

    # Block Public Access: RestrictPublicBuckets stops anonymous reads at once; a public
    # policy cannot be stored while BlockPublicPolicy is on.
    block = {"BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    s3.put_public_access_block(Bucket="site", PublicAccessBlockConfiguration=block)
    assert s3.get_public_access_block(Bucket="site")["PublicAccessBlockConfiguration"] == block
    assert anonymous("GET", url)[0] == 403
    assert code_of(lambda: s3.put_bucket_policy(Bucket="site", Policy=json.dumps(public_read("site")))) == "AccessDenied"
    s3.delete_public_access_block(Bucket="site")
    assert code_of(lambda: s3.get_public_access_block(Bucket="site")) == "NoSuchPublicAccessBlockConfiguration"
    assert anonymous("GET", url)[0] == 200

    s3.delete_bucket_policy(Bucket="site")
    assert anonymous("GET", url)[0] == 403
    assert code_of(lambda: s3.get_bucket_policy_status(Bucket="site")) == "NoSuchBucketPolicy"


def test_bucket_policies_grant_and_deny_users(node, s3, tmp_path):
    s3.create_bucket(Bucket="shared")
    s3.put_object(Bucket="shared", Key="report.pdf", Body=b"pdf")
    alice = user_client(node, new_user(node, "alice"))
    bob = user_client(node, new_user(node, "bob", "readwrite"))
    assert code_of(lambda: alice.get_object(Bucket="shared", Key="report.pdf")) == "AccessDenied"

    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AliceReadsAndWrites",
                "Effect": "Allow",
                "Principal": {"AWS": ["arn:aws:iam::buckets:user/alice"]},
                "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
                "Resource": ["arn:aws:s3:::shared", "arn:aws:s3:::shared/*"],
            },
            {
                "Sid": "NobodyDeletes",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:DeleteObject",
                "Resource": "arn:aws:s3:::shared/*",
            },
        ],
    }
    s3.put_bucket_policy(Bucket="shared", Policy=json.dumps(policy))
    assert s3.get_bucket_policy_status(Bucket="shared")["PolicyStatus"]["IsPublic"] is False
    # The bucket policy alone lets Alice in (she has no policy of her own) ...
    assert alice.get_object(Bucket="shared", Key="report.pdf")["Body"].read() == b"pdf"
    alice.put_object(Bucket="shared", Key="notes.txt", Body=b"notes")
    assert [o["Key"] for o in alice.list_objects_v2(Bucket="shared")["Contents"]] == ["notes.txt", "report.pdf"]
    # ... only into this bucket, and its Deny wins over Bob's readwrite.
    assert code_of(lambda: alice.list_buckets()) == "AccessDenied"
    assert code_of(lambda: alice.delete_object(Bucket="shared", Key="notes.txt")) == "AccessDenied"
    assert code_of(lambda: bob.delete_object(Bucket="shared", Key="notes.txt")) == "AccessDenied"
    bob.put_object(Bucket="shared", Key="bob.txt", Body=b"bob")
    # The root user is not bound by bucket policies.
    s3.delete_object(Bucket="shared", Key="notes.txt")


@pytest.mark.parametrize(
    "policy,reason",
    [
        ("{nope", "not valid JSON"),
        ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::strict/*"}]}, "Principal"),
        ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::other/*"}]}, "invalid resource"),
        ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:Teleport", "Resource": "arn:aws:s3:::strict/*"}]}, "invalid action"),
        ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::strict/*", "Condition": {"StringFuzzy": {"s3:prefix": "a"}}}]}, "condition operator"),
        ({"Version": "2012-10-17", "Statement": [{"Sid": "x" * 21000, "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::strict/*"}]}, "20480 bytes"),
    ],
)
def test_malformed_bucket_policies_are_refused_with_the_reason(s3, policy, reason):
    s3.create_bucket(Bucket="strict")
    text = policy if isinstance(policy, str) else json.dumps(policy)
    with pytest.raises(ClientError) as refused:
        s3.put_bucket_policy(Bucket="strict", Policy=text)
    assert refused.value.response["Error"]["Code"] == "MalformedPolicy"
    assert reason in refused.value.response["Error"]["Message"], refused.value.response["Error"]["Message"]
    assert code_of(lambda: s3.get_bucket_policy(Bucket="strict")) == "NoSuchBucketPolicy"


def test_the_aws_cli_sets_a_policy_curl_reads_the_object(node, s3, aws, tmp_path):
    s3.create_bucket(Bucket="downloads")
    s3.put_object(Bucket="downloads", Key="tool.tar.gz", Body=b"tarball")
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(public_read("downloads")))
    aws("s3api", "put-bucket-policy", "--bucket", "downloads", "--policy", f"file://{path}")
    status = json.loads(aws("s3api", "get-bucket-policy-status", "--bucket", "downloads"))
    assert status["PolicyStatus"]["IsPublic"] is True
    fetched = subprocess.run(["curl", "-sf", f"{node.endpoint}/downloads/tool.tar.gz"], capture_output=True, timeout=30)
    assert fetched.returncode == 0 and fetched.stdout == b"tarball"
