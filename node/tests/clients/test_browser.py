"""A real browser (Debian's chromium, headless) on one origin uploads to and reads from a
Buckets on another: PUT and GET with presigned URLs and a form POST signed by a user,
allowed by the bucket's CORS rules, and blocked by the browser without them. Also the
preflight and form uploads checked request by request."""

import functools
import http.server
import json
import re
import subprocess
import threading
import urllib.error
import urllib.request

import pytest
import urllib3
from botocore.exceptions import ClientError

from conftest import free_port
from test_users import admin, code_of, new_user, user_client, write_policy

UPLOADER = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": "arn:aws:s3:::web/*"}],
}

PAGE = """<!doctype html><html><body><pre id="out">running</pre><script>
const PUT_URL = %(put)s, GET_URL = %(get)s, POST_URL = %(post)s, FIELDS = %(fields)s;
async function attempt(name, call, results) {
  try { results[name] = await call(); } catch (e) { results[name] = "blocked"; }
}
(async () => {
  const results = {};
  await attempt("put", async () => {
    const r = await fetch(PUT_URL, {method: "PUT", body: "from the browser", headers: {"Content-Type": "text/plain"}});
    return r.status;
  }, results);
  await attempt("get", async () => {
    const r = await fetch(GET_URL);
    return r.status + ":" + (await r.text()) + ":" + (r.headers.get("ETag") ? "etag" : "no-etag");
  }, results);
  await attempt("post", async () => {
    const form = new FormData();
    for (const [name, value] of Object.entries(FIELDS)) form.append(name, value);
    form.append("file", new Blob(["posted by a form"], {type: "text/plain"}), "note.txt");
    const r = await fetch(POST_URL, {method: "POST", body: form});
    return r.status + ":" + (await r.text()).includes("<Key>forms/note.txt</Key>");
  }, results);
  document.getElementById("out").textContent = JSON.stringify(results);
})();
</script></body></html>"""


@pytest.fixture
def page_server(tmp_path):
    """Serves tmp_path/site on another port of 127.0.0.1: another origin."""
    site = tmp_path / "site"
    site.mkdir()
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield site, f"http://127.0.0.1:{port}"
    server.shutdown()


def user_s3(node, key):
    """A user's client that presigns with SigV4."""
    return user_client(node, key, signature_version="s3v4")


def browse(url, tmp_path):
    profile = tmp_path / "chromium-profile"
    result = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="out">(.*?)</pre>', result.stdout, re.S)
    assert found, f"no result in the page:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return json.loads(found.group(1))


def test_a_page_on_another_origin_uploads_and_reads_through_cors(node, s3, tmp_path, page_server):
    site, origin = page_server
    s3.create_bucket(Bucket="web")
    s3.put_object(Bucket="web", Key="hello.txt", Body=b"hello from buckets")
    admin(node, "policy", "create", "uploader", write_policy(tmp_path, "uploader", UPLOADER))
    uploader = user_s3(node, new_user(node, "uploader", "uploader"))
    post = uploader.generate_presigned_post(
        "web",
        "forms/note.txt",
        Fields={"success_action_status": "201"},
        Conditions=[{"success_action_status": "201"}, ["content-length-range", 1, 1024]],
        ExpiresIn=600,
    )
    values = {
        "put": json.dumps(uploader.generate_presigned_url("put_object", Params={"Bucket": "web", "Key": "from-browser.txt"}, ExpiresIn=600)),
        "get": json.dumps(uploader.generate_presigned_url("get_object", Params={"Bucket": "web", "Key": "hello.txt"}, ExpiresIn=600)),
        "post": json.dumps(post["url"]),
        "fields": json.dumps(post["fields"]),
    }
    (site / "page.html").write_text(PAGE % values)

    # Without CORS rules the browser lets the page read nothing.
    assert browse(f"{origin}/page.html", tmp_path) == {"put": "blocked", "get": "blocked", "post": "blocked"}

    s3.put_bucket_cors(
        Bucket="web",
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [origin],
                    "AllowedMethods": ["GET", "PUT", "POST"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 60,
                }
            ]
        },
    )
    results = browse(f"{origin}/page.html", tmp_path)
    assert results == {"put": 200, "get": "200:hello from buckets:etag", "post": "201:true"}, results
    assert s3.get_object(Bucket="web", Key="from-browser.txt")["Body"].read() == b"from the browser"
    assert s3.get_object(Bucket="web", Key="forms/note.txt")["Body"].read() == b"posted by a form"


def preflight(node, path, origin, method, headers=None):
    request = urllib.request.Request(f"{node.endpoint}{path}", method="OPTIONS")
    request.add_header("Origin", origin)
    request.add_header("Access-Control-Request-Method", method)
    if headers:
        request.add_header("Access-Control-Request-Headers", headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def test_preflights_and_cors_headers_follow_the_rules(node, s3):
    s3.create_bucket(Bucket="assets")
    s3.put_object(Bucket="assets", Key="a.js", Body=b"1")
    assert code_of(lambda: s3.get_bucket_cors(Bucket="assets")) == "NoSuchCORSConfiguration"
    assert preflight(node, "/assets/a.js", "https://app.example.com", "GET")[0] == 403
    rules = [
        {"ID": "read", "AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"]},
        {"ID": "write", "AllowedOrigins": ["https://*.example.com"], "AllowedMethods": ["PUT"], "AllowedHeaders": ["content-type", "x-amz-*"], "MaxAgeSeconds": 300},
    ]
    s3.put_bucket_cors(Bucket="assets", CORSConfiguration={"CORSRules": rules})
    assert [r["ID"] for r in s3.get_bucket_cors(Bucket="assets")["CORSRules"]] == ["read", "write"]

    status, headers = preflight(node, "/assets/a.js", "https://app.example.com", "PUT", "Content-Type, X-Amz-Date")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert headers["Access-Control-Max-Age"] == "300"
    assert "PUT" in headers["Access-Control-Allow-Methods"]
    assert preflight(node, "/assets/a.js", "https://app.example.com", "PUT", "Authorization-Extra")[0] == 403
    assert preflight(node, "/assets/a.js", "https://evil.test", "PUT")[0] == 403
    assert preflight(node, "/assets/a.js", "https://evil.test", "DELETE")[0] == 403
    status, headers = preflight(node, "/assets/a.js", "https://evil.test", "GET")
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"

    # An actual request with an Origin gets the headers of the rule that allows it.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "assets", "Key": "a.js"}, ExpiresIn=60)
    request = urllib.request.Request(url, headers={"Origin": "https://x.test"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
    with urllib.request.urlopen(urllib.request.Request(url), timeout=10) as answer:
        assert answer.headers["Access-Control-Allow-Origin"] is None

    with pytest.raises(ClientError) as refused:
        s3.put_bucket_cors(Bucket="assets", CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]})
    assert "Unsupported method is PATCH" in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as refused:
        s3.put_bucket_cors(Bucket="assets", CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["https://*.*.com"], "AllowedMethods": ["GET"]}]})
    assert refused.value.response["Error"]["Code"] == "InvalidRequest"
    s3.delete_bucket_cors(Bucket="assets")
    assert preflight(node, "/assets/a.js", "https://evil.test", "GET")[0] == 403


def test_form_uploads_check_their_policy(node, s3, tmp_path):
    s3.create_bucket(Bucket="forms")
    key = new_user(node, "former", "readwrite")
    uploader = user_s3(node, key)
    http = urllib3.PoolManager()

    def post(fields, body=b"form body"):
        parts = dict(fields)
        parts["file"] = ("upload.txt", body, "text/plain")
        return http.request("POST", f"{node.endpoint}/forms", fields=parts, redirect=False)

    signed = uploader.generate_presigned_post(
        "forms",
        "in/upload.txt",
        Fields={"success_action_redirect": "http://127.0.0.1:1/done", "x-amz-meta-origin": "form", "x-amz-tagging": "via=post"},
        Conditions=[
            ["starts-with", "$key", "in/"],
            {"success_action_redirect": "http://127.0.0.1:1/done"},
            {"x-amz-meta-origin": "form"},
            ["starts-with", "$x-amz-tagging", ""],
            ["content-length-range", 1, 100],
        ],
        ExpiresIn=600,
    )
    answer = post(signed["fields"])
    assert answer.status == 303, answer.data
    assert answer.headers["Location"].startswith("http://127.0.0.1:1/done?bucket=forms&key=in%2Fupload.txt"), answer.headers["Location"]
    head = s3.head_object(Bucket="forms", Key="in/upload.txt")
    assert head["Metadata"] == {"origin": "form"}
    assert s3.get_object_tagging(Bucket="forms", Key="in/upload.txt")["TagSet"] == [{"Key": "via", "Value": "post"}]

    assert post(signed["fields"], b"x" * 101).status == 400
    # A field changed against the policy: 403 AccessDenied as S3 answers, and nothing is stored.
    tampered = dict(signed["fields"], **{"x-amz-meta-origin": "elsewhere"})
    s3.delete_object(Bucket="forms", Key="in/upload.txt")
    answer = post(tampered)
    assert answer.status == 403, answer.data
    assert b"<Code>AccessDenied</Code>" in answer.data and b"Invalid according to Policy" in answer.data
    assert code_of(lambda: s3.head_object(Bucket="forms", Key="in/upload.txt")) == "404"
    # Signed by a user whose policy does not allow writes here: refused.
    reader = user_s3(node, new_user(node, "reader", "readonly"))
    refused = reader.generate_presigned_post("forms", "r.txt", ExpiresIn=600)
    assert post(refused["fields"]).status == 403
