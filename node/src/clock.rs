//! The wall clock, in the units the cluster's files and calls use: Unix seconds, the
//! same clock the admin API signs requests with.

pub use buckets_api::auth::unix_now;
