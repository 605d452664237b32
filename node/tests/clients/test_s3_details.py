"""The HTTP details of S3 that real clients and conformance suites trip on, sent byte for
byte: chunked uploads without Content-Length, 100-continue refusals, request ids,
presigned URL expiry, non-ASCII metadata."""

import base64
import socket
import time
import zlib
import http.client

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, SECRET_KEY


def path_of(url):
    """The path and query of a URL, as sent on the request line."""
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def send_chunked(node, method, path, headers, pieces):
    """Sends a request whose body goes as HTTP/1.1 chunks, with no Content-Length."""
    connection = http.client.HTTPConnection("127.0.0.1", node.s3_port, timeout=15)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", f"127.0.0.1:{node.s3_port}")
    for name, value in headers.items():
        if name.lower() != "host":
            connection.putheader(name, value)
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    for piece in pieces:
        connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    connection.send(b"0\r\n\r\n")
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, response, body


def signed_headers(node, method, path, headers):
    """Headers of a request signed with SigV4 in the Authorization header."""
    headers = dict(headers, Host=f"127.0.0.1:{node.s3_port}")
    request = AWSRequest(method=method, url=f"{node.endpoint}{path}", headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def test_chunked_uploads_without_content_length(node, s3, v4):
    s3.create_bucket(Bucket="chunked")

    # A presigned PUT streamed in HTTP chunks (curl -T -, streaming uploaders).
    url = v4.generate_presigned_url("put_object", Params={"Bucket": "chunked", "Key": "plain"}, ExpiresIn=60)
    status, _, body = send_chunked(node, "PUT", path_of(url), {}, [b"hello ", b"chunked ", b"world"])
    assert status == 200, body
    assert s3.get_object(Bucket="chunked", Key="plain")["Body"].read() == b"hello chunked world"

    # aws-chunked with a trailing checksum inside HTTP chunks, as SDKs stream a body of
    # unknown length: x-amz-decoded-content-length, no Content-Length.
    data = b"streamed with a trailing checksum" * 1000
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big"))
    payload = b"%x\r\n%s\r\n0\r\nx-amz-checksum-crc32:%s\r\n\r\n" % (len(data), data, crc)
    headers = signed_headers(
        node,
        "PUT",
        "/chunked/aws-chunked",
        {
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": "x-amz-checksum-crc32",
        },
    )
    third = len(payload) // 3
    status, response, body = send_chunked(
        node, "PUT", "/chunked/aws-chunked", headers, [payload[:third], payload[third : 2 * third], payload[2 * third :]]
    )
    assert status == 200, body
    assert response.getheader("x-amz-checksum-crc32") == crc.decode()
    got = s3.get_object(Bucket="chunked", Key="aws-chunked", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got["ChecksumCRC32"] == crc.decode()

    # A part of a multipart upload, chunked the same way.
    upload = s3.create_multipart_upload(Bucket="chunked", Key="mpu")["UploadId"]
    url = v4.generate_presigned_url(
        "upload_part",
        Params={"Bucket": "chunked", "Key": "mpu", "UploadId": upload, "PartNumber": 1},
        ExpiresIn=60,
    )
    status, response, body = send_chunked(node, "PUT", path_of(url), {}, [b"part ", b"one"])
    assert status == 200, body
    etag = response.getheader("ETag")
    s3.complete_multipart_upload(
        Bucket="chunked", Key="mpu", UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert s3.get_object(Bucket="chunked", Key="mpu")["Body"].read() == b"part one"


def expect_continue(node, path, length=1_000_000):
    """Sends only the headers of a PUT that expects 100-continue; returns what comes back
    before any body byte is sent."""
    with socket.create_connection(("127.0.0.1", node.s3_port), timeout=5) as sock:
        sock.sendall(
            (
                f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{node.s3_port}\r\n"
                f"Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
            ).encode()
        )
        received = b""
        try:
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
            head, _, rest = received.partition(b"\r\n\r\n")
            # An error's body follows its headers.
            if not head.startswith(b"HTTP/1.1 100"):
                sock.settimeout(1)
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    rest += chunk
        except socket.timeout:
            pass
        return received.split(b"\r\n", 1)[0].decode(), received


def test_a_refused_upload_is_refused_before_its_body(node, s3, v4):
    s3.create_bucket(Bucket="continue")
    url = v4.generate_presigned_url("put_object", Params={"Bucket": "continue", "Key": "k"}, ExpiresIn=60)
    path = path_of(url)
    status_line, _ = expect_continue(node, path)
    assert status_line == "HTTP/1.1 100 Continue"

    at = path.index("X-Amz-Signature=") + len("X-Amz-Signature=")
    tampered = path[:at] + ("1" if path[at] == "0" else "0") + path[at + 1 :]
    status_line, answer = expect_continue(node, tampered)
    assert status_line.startswith("HTTP/1.1 403"), answer
    assert b"<Code>SignatureDoesNotMatch</Code>" in answer

    url = v4.generate_presigned_url("put_object", Params={"Bucket": "no-such-bucket", "Key": "k"}, ExpiresIn=60)
    status_line, answer = expect_continue(node, path_of(url))
    assert status_line.startswith("HTTP/1.1 404"), answer
    assert b"<Code>NoSuchBucket</Code>" in answer


def test_error_bodies_carry_the_request_id_of_the_header(s3):
    s3.create_bucket(Bucket="ids")
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket="ids", Key="missing")
    error = raised.value.response
    header = error["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id")
    assert header and len(header) == 16
    assert error["ResponseMetadata"]["RequestId"] == header
    assert error["Error"]["Code"] == "NoSuchKey"

    with pytest.raises(ClientError) as raised:
        s3.create_bucket(Bucket="ids")
    again = raised.value.response["ResponseMetadata"]
    assert again["RequestId"] == again["HTTPHeaders"]["x-amz-request-id"]
    assert again["RequestId"] != header, "every request has its own id"

    # Successful answers carry one too.
    ok = s3.head_bucket(Bucket="ids")["ResponseMetadata"]["HTTPHeaders"]
    assert len(ok["x-amz-request-id"]) == 16


def error_of(node, path):
    connection = http.client.HTTPConnection("127.0.0.1", node.s3_port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read().decode()


def test_presigned_url_expiry(node, s3, v4):
    s3.create_bucket(Bucket="presigned")
    s3.put_object(Bucket="presigned", Key="k", Body=b"data")
    week = 7 * 24 * 3600
    url = v4.generate_presigned_url("get_object", Params={"Bucket": "presigned", "Key": "k"}, ExpiresIn=week)
    assert error_of(node, path_of(url))[0] == 200
    for expires, message in [
        (week + 1, "X-Amz-Expires must be less than a week (in seconds) that is; 604800"),
        (-5, "X-Amz-Expires must be non-negative"),
    ]:
        path = path_of(url).replace(f"X-Amz-Expires={week}", f"X-Amz-Expires={expires}")
        status, body = error_of(node, path)
        assert status == 400, body
        assert "<Code>AuthorizationQueryParametersError</Code>" in body
        assert message in body

    # Valid for one second, used three seconds later.
    url = v4.generate_presigned_url("get_object", Params={"Bucket": "presigned", "Key": "k"}, ExpiresIn=1)
    time.sleep(3)
    status, body = error_of(node, path_of(url))
    assert status == 403, body
    assert "<Code>AccessDenied</Code>" in body
    assert "<Message>Request has expired</Message>" in body


def test_non_ascii_metadata_is_rfc_2047_encoded(node, s3, v4):
    s3.create_bucket(Bucket="meta")
    # Raw UTF-8 bytes in the header, as some clients send them.
    url = v4.generate_presigned_url("put_object", Params={"Bucket": "meta", "Key": "raw"}, ExpiresIn=60)
    connection = http.client.HTTPConnection("127.0.0.1", node.s3_port, timeout=10)
    connection.putrequest("PUT", path_of(url))
    connection.putheader("x-amz-meta-city", "Zürich".encode())
    connection.putheader("Content-Length", "1")
    connection.endheaders()
    connection.send(b"x")
    assert connection.getresponse().status == 200
    encoded = "=?UTF-8?B?" + base64.b64encode("Zürich".encode()).decode() + "?="
    assert s3.head_object(Bucket="meta", Key="raw")["Metadata"]["city"] == encoded

    # An encoded word is decoded when stored: given in Q encoding, it comes back in B.
    s3.put_object(Bucket="meta", Key="q", Body=b"x", Metadata={"city": "=?UTF-8?Q?Z=C3=BCrich?="})
    assert s3.head_object(Bucket="meta", Key="q")["Metadata"]["city"] == encoded
    assert s3.get_object(Bucket="meta", Key="q")["Metadata"]["city"] == encoded
    # ASCII stays as it is.
    s3.put_object(Bucket="meta", Key="ascii", Body=b"x", Metadata={"city": "Zurich"})
    assert s3.head_object(Bucket="meta", Key="ascii")["Metadata"]["city"] == "Zurich"


def crc64nvme(data):
    """CRC-64/NVME, bit by bit from its definition (reflected polynomial, all-ones start
    and end), to check what the server computes."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc = CRC64_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def _crc64_table():
    table = []
    for index in range(256):
        value = index
        for _ in range(8):
            value = (value >> 1) ^ 0x9A6C9329AC4BC9B5 if value & 1 else value >> 1
        table.append(value)
    return table


CRC64_TABLE = _crc64_table()
MIB = 1024 * 1024


def b64(raw):
    return base64.b64encode(raw).decode()


def test_multipart_checksum_edges(s3):
    import hashlib
    import os

    assert crc64nvme(b"123456789") == 0xAE8B14860A799888, "the CRC-64/NVME check value"
    s3.create_bucket(Bucket="edges")
    part1, part2 = os.urandom(5 * MIB), os.urandom(777)

    # SHA-256 composite: the SHA-256 of the parts' raw digests, then "-N"; per-part
    # checksums in GetObjectAttributes, the composite without its "-N".
    created = s3.create_multipart_upload(Bucket="edges", Key="sha", ChecksumAlgorithm="SHA256")
    assert created["ChecksumType"] == "COMPOSITE"
    parts = []
    for number, body in [(1, part1), (2, part2)]:
        answer = s3.upload_part(
            Bucket="edges", Key="sha", UploadId=created["UploadId"], PartNumber=number, Body=body, ChecksumAlgorithm="SHA256"
        )
        assert answer["ChecksumSHA256"] == b64(hashlib.sha256(body).digest())
        parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": answer["ChecksumSHA256"]})
    done = s3.complete_multipart_upload(
        Bucket="edges", Key="sha", UploadId=created["UploadId"], MultipartUpload={"Parts": parts}
    )
    digest = b64(hashlib.sha256(hashlib.sha256(part1).digest() + hashlib.sha256(part2).digest()).digest())
    assert done["ChecksumSHA256"] == digest + "-2"
    assert done["ChecksumType"] == "COMPOSITE"
    assert s3.head_object(Bucket="edges", Key="sha", ChecksumMode="ENABLED")["ChecksumSHA256"] == digest + "-2"
    attributes = s3.get_object_attributes(Bucket="edges", Key="sha", ObjectAttributes=["Checksum", "ObjectParts"])
    assert attributes["Checksum"] == {"ChecksumSHA256": digest, "ChecksumType": "COMPOSITE"}
    assert attributes["ObjectParts"]["TotalPartsCount"] == 2
    assert [p["ChecksumSHA256"] for p in attributes["ObjectParts"]["Parts"]] == [
        parts[0]["ChecksumSHA256"],
        parts[1]["ChecksumSHA256"],
    ]

    # A part uploaded again replaces the first: its checksum is listed, its ETag completes,
    # the first ETag no longer does, and the composite is made of the new part.
    created = s3.create_multipart_upload(Bucket="edges", Key="again", ChecksumAlgorithm="CRC32")
    upload_id = created["UploadId"]

    def put_part(number, body):
        answer = s3.upload_part(
            Bucket="edges", Key="again", UploadId=upload_id, PartNumber=number, Body=body, ChecksumAlgorithm="CRC32"
        )
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": answer["ChecksumCRC32"]}

    first = put_part(1, part1)
    replacement_body = os.urandom(5 * MIB)
    replacement = put_part(1, replacement_body)
    last = put_part(2, part2)
    listed = s3.list_parts(Bucket="edges", Key="again", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["ChecksumCRC32"]) for p in listed] == [
        (1, replacement["ETag"], replacement["ChecksumCRC32"]),
        (2, last["ETag"], last["ChecksumCRC32"]),
    ]
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(
            Bucket="edges", Key="again", UploadId=upload_id, MultipartUpload={"Parts": [first, last]}
        )
    assert error.value.response["Error"]["Code"] == "InvalidPart"
    done = s3.complete_multipart_upload(
        Bucket="edges", Key="again", UploadId=upload_id, MultipartUpload={"Parts": [replacement, last]}
    )
    raw = zlib.crc32(replacement_body).to_bytes(4, "big") + zlib.crc32(part2).to_bytes(4, "big")
    assert done["ChecksumCRC32"] == b64(zlib.crc32(raw).to_bytes(4, "big")) + "-2"
    assert s3.get_object(Bucket="edges", Key="again")["Body"].read() == replacement_body + part2

    # CRC64NVME: whole-object only, the CRC of all the bytes.
    crc = lambda body: b64(crc64nvme(body).to_bytes(8, "big"))  # noqa: E731
    small1, small2 = part1[: 5 * MIB], part2
    created = s3.create_multipart_upload(Bucket="edges", Key="nvme", ChecksumAlgorithm="CRC64NVME")
    assert created["ChecksumType"] == "FULL_OBJECT"
    parts = []
    for number, body in [(1, small1), (2, small2)]:
        answer = s3.upload_part(
            Bucket="edges", Key="nvme", UploadId=created["UploadId"], PartNumber=number, Body=body, ChecksumCRC64NVME=crc(body)
        )
        assert answer["ChecksumCRC64NVME"] == crc(body)
        parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC64NVME": answer["ChecksumCRC64NVME"]})
    done = s3.complete_multipart_upload(
        Bucket="edges", Key="nvme", UploadId=created["UploadId"], MultipartUpload={"Parts": parts}
    )
    assert done["ChecksumCRC64NVME"] == crc(small1 + small2)
    assert done["ChecksumType"] == "FULL_OBJECT"
    with pytest.raises(ClientError) as error:
        s3.create_multipart_upload(Bucket="edges", Key="bad", ChecksumAlgorithm="CRC64NVME", ChecksumType="COMPOSITE")
    assert error.value.response["Error"]["Code"] == "InvalidRequest"
