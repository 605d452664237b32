"""Users, access keys, groups and policies: made with buckets-admin as an operator would,
used with boto3 and the AWS CLI as applications would, each operation allowed or refused
as the policies say."""

import json
import os
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, SECRET_KEY, Node, client


def admin_bin():
    return os.path.join(os.path.dirname(os.environ["BUCKETS_NODE_BIN"]), "buckets-admin")


def admin(node, *args, ok=True):
    """Runs buckets-admin against the node; returns (exit code, stdout, stderr)."""
    result = subprocess.run(
        [admin_bin(), "--endpoint", f"http://127.0.0.1:{node.admin_port}", "--root-user", ACCESS_KEY, "--root-password", SECRET_KEY, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert result.returncode == 0, f"buckets-admin {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.returncode, result.stdout, result.stderr


def new_user(node, name, *policies):
    admin(node, "user", "add", name)
    for policy in policies:
        admin(node, "policy", "attach", policy, "--user", name)
    _, out, _ = admin(node, "key", "create", name, "--json")
    return json.loads(out)



def user_client(node, key, **config):
    """An S3 client signing with a user's key (`config`: more botocore Config options)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=node.endpoint,
        aws_access_key_id=key["accessKey"],
        aws_secret_access_key=key["secretKey"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}, read_timeout=15, **config),
    )


def code_of(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return "OK"


def write_policy(tmp_path, name, document):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    return str(path)


def refused_within(seconds, call, code):
    """Polls until `call` fails with `code`; returns how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if code_of(call) == code:
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"not refused with {code} within {seconds} s")


PHOTOS_READ = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "ReadPhotos", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*"},
        {
            "Sid": "ListPublicOnly",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::photos",
            "Condition": {"StringLike": {"s3:prefix": "public/*"}},
        },
    ],
}

NO_DELETES = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Deny", "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": "*"}],
}


def test_each_user_can_do_what_its_policies_allow_and_nothing_else(node, s3, tmp_path):
    for bucket in ("photos", "private"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="photos", Key="public/cat.jpg", Body=b"cat")
    s3.put_object(Bucket="private", Key="diary.txt", Body=b"secret")

    admin(node, "policy", "create", "photos-read", write_policy(tmp_path, "photos-read", PHOTOS_READ))
    admin(node, "policy", "create", "no-deletes", write_policy(tmp_path, "no-deletes", NO_DELETES))
    alice = user_client(node, new_user(node, "alice", "photos-read"))
    bob_key = new_user(node, "bob")
    bob = user_client(node, bob_key)

    # Alice reads photos and lists only under public/.
    assert alice.get_object(Bucket="photos", Key="public/cat.jpg")["Body"].read() == b"cat"
    assert alice.head_object(Bucket="photos", Key="public/cat.jpg")["ContentLength"] == 3
    listed = alice.list_objects_v2(Bucket="photos", Prefix="public/")
    assert [o["Key"] for o in listed["Contents"]] == ["public/cat.jpg"]
    assert code_of(lambda: alice.list_objects_v2(Bucket="photos")) == "AccessDenied"
    assert code_of(lambda: alice.list_objects_v2(Bucket="photos", Prefix="other/")) == "AccessDenied"
    assert code_of(lambda: alice.get_object(Bucket="private", Key="diary.txt")) == "AccessDenied"
    assert code_of(lambda: alice.put_object(Bucket="photos", Key="x", Body=b"x")) == "AccessDenied"
    assert code_of(lambda: alice.delete_object(Bucket="photos", Key="public/cat.jpg")) == "AccessDenied"
    assert code_of(lambda: alice.list_buckets()) == "AccessDenied"
    assert code_of(lambda: alice.create_bucket(Bucket="alices")) == "AccessDenied"
    # A copy needs PutObject on the target, even from a readable source.
    assert code_of(lambda: alice.copy_object(Bucket="photos", Key="copy.jpg", CopySource="photos/public/cat.jpg")) == "AccessDenied"

    # Bob has no policy: nothing is allowed.
    assert code_of(lambda: bob.get_object(Bucket="photos", Key="public/cat.jpg")) == "AccessDenied"
    assert code_of(lambda: bob.list_buckets()) == "AccessDenied"

    # As a member of a group with readwrite, Bob writes and deletes; an explicit Deny
    # attached to him stops deletes but not writes.
    admin(node, "group", "add", "writers", "--members", "bob")
    admin(node, "policy", "attach", "readwrite", "--group", "writers")
    bob.put_object(Bucket="private", Key="todo.txt", Body=b"todo")
    assert {b["Name"] for b in bob.list_buckets()["Buckets"]} == {"photos", "private"}
    bob.copy_object(Bucket="private", Key="todo-copy.txt", CopySource="private/todo.txt")
    bob.delete_object(Bucket="private", Key="todo-copy.txt")
    admin(node, "policy", "attach", "no-deletes", "--user", "bob")
    assert code_of(lambda: bob.delete_object(Bucket="private", Key="todo.txt")) == "AccessDenied"
    # A multi-object delete answers each refused key as an error and deletes the others.
    admin(node, "policy", "create", "no-todo-deletes", write_policy(tmp_path, "no-todo-deletes", {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::private/todo*"}],
    }))
    admin(node, "policy", "detach", "no-deletes", "--user", "bob")
    admin(node, "policy", "attach", "no-todo-deletes", "--user", "bob")
    bob.put_object(Bucket="private", Key="scratch.txt", Body=b"scratch")
    answer = bob.delete_objects(Bucket="private", Delete={"Objects": [{"Key": "todo.txt"}, {"Key": "scratch.txt"}]})
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("todo.txt", "AccessDenied")]
    assert [d["Key"] for d in answer["Deleted"]] == ["scratch.txt"]
    assert code_of(lambda: s3.head_object(Bucket="private", Key="scratch.txt")) == "404"
    assert s3.head_object(Bucket="private", Key="todo.txt")["ContentLength"] == 4
    admin(node, "policy", "detach", "no-todo-deletes", "--user", "bob")
    admin(node, "policy", "attach", "no-deletes", "--user", "bob")
    bob.put_object(Bucket="private", Key="more.txt", Body=b"more")
    # Alice cannot copy Bob's private object into photos: she may not read the source nor
    # write the target; with readwrite she may.
    admin(node, "group", "members", "writers", "--add", "alice")
    alice.copy_object(Bucket="photos", Key="copy.txt", CopySource="private/todo.txt")
    admin(node, "group", "members", "writers", "--remove", "alice")
    assert code_of(lambda: alice.put_object(Bucket="photos", Key="y", Body=b"y")) == "AccessDenied"

    # The root user is never limited by users' policies.
    assert s3.get_object(Bucket="private", Key="todo.txt")["Body"].read() == b"todo"

    info = json.loads(admin(node, "user", "info", "bob", "--json")[1])
    assert info["groups"] == ["writers"] and info["policies"] == ["no-deletes"]
    assert info["arn"] == "arn:aws:iam::buckets:user/bob" and len(info["canonicalId"]) == 64
    assert bob_key["secretKey"] not in admin(node, "user", "list", "--json")[1]


def test_disabled_removed_and_expired_keys_are_refused_at_once(node, s3, tmp_path):
    s3.create_bucket(Bucket="data")
    key = new_user(node, "carol", "readonly")
    carol = user_client(node, key)
    carol.list_objects_v2(Bucket="data")

    admin(node, "user", "disable", "carol")
    assert refused_within(1.0, lambda: carol.list_objects_v2(Bucket="data"), "InvalidAccessKeyId") < 1.0
    admin(node, "user", "enable", "carol")
    carol.list_objects_v2(Bucket="data")

    second = json.loads(admin(node, "key", "create", "carol", "--json")[1])
    keys = json.loads(admin(node, "key", "list", "carol", "--json")[1])
    assert {k["accessKey"] for k in keys} == {key["accessKey"], second["accessKey"]}
    admin(node, "key", "remove", key["accessKey"])
    assert code_of(lambda: carol.list_objects_v2(Bucket="data")) == "InvalidAccessKeyId"
    user_client(node, second).list_objects_v2(Bucket="data")

    short = json.loads(admin(node, "key", "create", "carol", "--expires", "2s", "--json")[1])
    user_client(node, short).list_objects_v2(Bucket="data")
    refused_within(5.0, lambda: user_client(node, short).list_objects_v2(Bucket="data"), "InvalidAccessKeyId")

    admin(node, "user", "remove", "carol")
    assert code_of(lambda: user_client(node, second).list_objects_v2(Bucket="data")) == "InvalidAccessKeyId"


def test_users_survive_a_restart(tmp_path):
    node = Node(str(tmp_path))
    try:
        client(node).create_bucket(Bucket="kept")
        key = new_user(node, "dave", "readonly")
        user_client(node, key).list_objects_v2(Bucket="kept")
    finally:
        node.stop()
    node = Node(str(tmp_path))
    try:
        user_client(node, key).list_objects_v2(Bucket="kept")
        assert code_of(lambda: user_client(node, key).create_bucket(Bucket="other")) == "AccessDenied"
    finally:
        node.stop()


def test_conditions_on_the_source_address_and_secure_transport(node, s3, tmp_path):
    s3.create_bucket(Bucket="net")
    s3.put_object(Bucket="net", Key="k", Body=b"v")
    from_elsewhere = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::net/*",
                "Condition": {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
            }
        ],
    }
    from_here = json.loads(json.dumps(from_elsewhere).replace("192.0.2.0/24", "127.0.0.0/8"))
    admin(node, "policy", "create", "elsewhere", write_policy(tmp_path, "elsewhere", from_elsewhere))
    erin = user_client(node, new_user(node, "erin", "elsewhere"))
    assert code_of(lambda: erin.get_object(Bucket="net", Key="k")) == "AccessDenied"
    admin(node, "policy", "create", "elsewhere", write_policy(tmp_path, "here", from_here), "--replace")
    assert erin.get_object(Bucket="net", Key="k")["Body"].read() == b"v"
    # Plain HTTP is not secure transport: a Deny on it refuses everything.
    insecure = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}],
    }
    admin(node, "policy", "create", "tls-only", write_policy(tmp_path, "tls-only", insecure))
    admin(node, "policy", "attach", "tls-only", "--user", "erin")
    assert code_of(lambda: erin.get_object(Bucket="net", Key="k")) == "AccessDenied"


def test_conditions_on_the_tags_an_object_has(node, s3, tmp_path):
    """s3:ExistingObjectTag/<key>: a user reads only objects tagged public, in a policy of
    the user and in a bucket policy; retagging an object changes who reads it."""
    s3.create_bucket(Bucket="tagged")
    s3.put_object(Bucket="tagged", Key="open", Body=b"open", Tagging="classification=public")
    s3.put_object(Bucket="tagged", Key="closed", Body=b"closed", Tagging="classification=secret")
    s3.put_object(Bucket="tagged", Key="untagged", Body=b"untagged")
    public_only = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::tagged/*",
                "Condition": {"StringEquals": {"s3:ExistingObjectTag/classification": "public"}},
            }
        ],
    }
    admin(node, "policy", "create", "public-only", write_policy(tmp_path, "public-only", public_only))
    gail = user_client(node, new_user(node, "gail", "public-only"))
    assert gail.get_object(Bucket="tagged", Key="open")["Body"].read() == b"open"
    assert code_of(lambda: gail.get_object(Bucket="tagged", Key="closed")) == "AccessDenied"
    assert code_of(lambda: gail.get_object(Bucket="tagged", Key="untagged")) == "AccessDenied"
    s3.put_object_tagging(Bucket="tagged", Key="open", Tagging={"TagSet": [{"Key": "classification", "Value": "secret"}]})
    assert code_of(lambda: gail.get_object(Bucket="tagged", Key="open")) == "AccessDenied"
    # The same condition in a bucket policy, for a user with no policy of its own.
    hank = user_client(node, new_user(node, "hank"))
    statement = dict(public_only["Statement"][0], Principal={"AWS": "arn:aws:iam::buckets:user/hank"})
    s3.put_bucket_policy(Bucket="tagged", Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
    assert code_of(lambda: hank.get_object(Bucket="tagged", Key="open")) == "AccessDenied"
    s3.put_object_tagging(Bucket="tagged", Key="closed", Tagging={"TagSet": [{"Key": "classification", "Value": "public"}]})
    assert hank.get_object(Bucket="tagged", Key="closed")["Body"].read() == b"closed"


def test_the_aws_cli_with_a_users_key(node, s3, tmp_path):
    s3.create_bucket(Bucket="drop")
    s3.create_bucket(Bucket="vault")
    key = new_user(node, "frank", "writeonly")
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=key["accessKey"],
        AWS_SECRET_ACCESS_KEY=key["secretKey"],
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    upload = tmp_path / "report.csv"
    upload.write_bytes(b"a,b\n1,2\n")

    def aws(*args):
        return subprocess.run(["aws", "--endpoint-url", node.endpoint, *args], env=env, capture_output=True, text=True, timeout=120)

    put = aws("s3", "cp", str(upload), "s3://drop/report.csv")
    assert put.returncode == 0, put.stderr
    assert s3.get_object(Bucket="drop", Key="report.csv")["Body"].read() == b"a,b\n1,2\n"
    get = aws("s3", "cp", "s3://drop/report.csv", str(tmp_path / "back.csv"))
    assert get.returncode != 0 and ("403" in get.stderr or "AccessDenied" in get.stderr), get.stderr
    listing = aws("s3", "ls", "s3://vault")
    assert listing.returncode != 0 and "AccessDenied" in listing.stderr, listing.stderr


@pytest.mark.parametrize(
    "document,reason",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Fly", "Resource": "*"}]}), "invalid action"),
        (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:ec2:::x"}]}), "invalid resource"),
        (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Permit", "Action": "s3:GetObject", "Resource": "*"}]}), "Effect"),
        (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Extra": 1}]}), "Unknown field"),
        (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"] * 700, "Resource": "*"}]}), "at most 6144"),
    ],
)
def test_bad_policies_are_refused_with_the_reason_and_not_stored(node, tmp_path, document, reason):
    path = tmp_path / "bad.json"
    path.write_text(document)
    code, out, err = admin(node, "policy", "create", "bad", str(path), ok=False)
    assert code != 0 and "MalformedPolicy" in err and reason in err, err
    names = [p["name"] for p in json.loads(admin(node, "policy", "list", "--json")[1])]
    assert "bad" not in names and {"readonly", "writeonly", "readwrite", "admin"} <= set(names)


def test_bad_names_and_unknown_things_get_clear_errors(node):
    assert "InvalidArgument" in admin(node, "user", "add", "no spaces", ok=False)[2]
    admin(node, "user", "add", "gina")
    assert "AlreadyExists" in admin(node, "user", "add", "gina", ok=False)[2]
    assert "NoSuchUser" in admin(node, "key", "create", "nobody", ok=False)[2]
    assert "NoSuchPolicy" in admin(node, "policy", "attach", "nothing", "--user", "gina", ok=False)[2]
    assert "NoSuchGroup" in admin(node, "group", "members", "nogroup", "--add", "gina", ok=False)[2]
    assert "PolicyInUse" in admin(node, "policy", "remove", "readonly", ok=False)[2]
    assert "NoSuchKey" in admin(node, "key", "remove", "BKUNOSUCHKEY", ok=False)[2]
    assert "InvalidArgument" in admin(node, "key", "create", "gina", "--expires", "1970-01-02T00:00:00Z", ok=False)[2]


def test_a_users_temporary_credentials_are_narrowed_by_a_session_policy(node, s3):
    import boto3
    from botocore.config import Config

    s3.create_bucket(Bucket="reports")
    s3.create_bucket(Bucket="other")
    s3.put_object(Bucket="reports", Key="q1.csv", Body=b"q1")
    key = new_user(node, "henry", "readwrite")

    def session(policy=None):
        sts = boto3.client(
            "sts",
            endpoint_url=node.endpoint,
            aws_access_key_id=key["accessKey"],
            aws_secret_access_key=key["secretKey"],
            region_name="us-east-1",
        )
        args = {"RoleArn": "arn:aws:iam::buckets:role/reader", "RoleSessionName": "nightly", "DurationSeconds": 900}
        if policy:
            args["Policy"] = json.dumps(policy)
        creds = sts.assume_role(**args)["Credentials"]
        return boto3.client(
            "s3",
            endpoint_url=node.endpoint,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
        )

    # Without a session policy the session has the user's rights, no more.
    full = session()
    full.put_object(Bucket="other", Key="by-session", Body=b"x")
    assert code_of(lambda: full.put_bucket_policy(Bucket="other", Policy="{}")) == "AccessDenied"

    # A session policy narrows them: only reads of reports.
    narrowed = session(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*"}],
        }
    )
    assert narrowed.get_object(Bucket="reports", Key="q1.csv")["Body"].read() == b"q1"
    assert code_of(lambda: narrowed.put_object(Bucket="reports", Key="x", Body=b"x")) == "AccessDenied"
    assert code_of(lambda: narrowed.get_object(Bucket="other", Key="by-session")) == "AccessDenied"
    # ... never widens them: s3:* in the session policy does not grant what the user lacks.
    wide = session({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    assert code_of(lambda: wide.put_bucket_policy(Bucket="other", Policy="{}")) == "AccessDenied"

    # A malformed session policy is refused; a disabled user's sessions stop working.
    with pytest.raises(ClientError) as refused:
        session({"Statement": [{"Effect": "Allow"}]})
    assert refused.value.response["Error"]["Code"] == "MalformedPolicyDocument"
    admin(node, "user", "disable", "henry")
    assert refused_within(1.0, lambda: full.list_objects_v2(Bucket="reports"), "InvalidToken") < 1.0
