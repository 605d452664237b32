//! Integration tests: real `buckets-node` processes driven by the Rust AWS SDK and by raw
//! HTTP where a test needs bytes the SDK will not send.

mod admin_buckets;
mod auth;
mod buckets_and_lists;
mod cluster;
mod drives;
mod harness;
mod lifecycle;
mod member;
mod migration;
mod multipart;
mod object_lock;
mod objects;
mod registry;
mod s3_details;
mod tls;
mod topology;
mod users;
mod versioning;
