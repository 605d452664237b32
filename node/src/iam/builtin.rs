//! The policies every cluster has: `readonly`, `writeonly`, `readwrite` and `admin`.

pub const BUILTIN: &[(&str, &str)] = &[
    (
        "readonly",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"ReadEverything","Effect":"Allow","Action":["s3:Get*","s3:List*"],"Resource":"*"}]}"#,
    ),
    (
        "writeonly",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"WriteObjects","Effect":"Allow","Action":["s3:PutObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts","s3:ListBucketMultipartUploads","s3:GetBucketLocation"],"Resource":"*"}]}"#,
    ),
    (
        "readwrite",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"ReadWriteObjectsAndBuckets","Effect":"Allow","Action":["s3:Get*","s3:List*","s3:PutObject","s3:PutObjectTagging","s3:PutObjectVersionTagging","s3:DeleteObject","s3:DeleteObjectVersion","s3:DeleteObjectTagging","s3:DeleteObjectVersionTagging","s3:AbortMultipartUpload","s3:CreateBucket","s3:DeleteBucket"],"Resource":"*"}]}"#,
    ),
    (
        "admin",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"Everything","Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
    ),
];

pub fn is_builtin(name: &str) -> bool {
    BUILTIN.iter().any(|(n, _)| *n == name)
}
