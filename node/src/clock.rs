//! The wall clock, in the units the cluster's files and calls use: Unix seconds, the
//! same clock the admin API signs requests with.

pub use buckets_api::auth::unix_now;

/// `unix_now` as an unsigned count (0 before 1970), for expiries stored as `u64`.
pub fn unix_seconds() -> u64 {
    u64::try_from(unix_now()).unwrap_or(0)
}
