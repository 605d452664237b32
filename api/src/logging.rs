//! Logging as every Buckets binary does it: to stderr, filtered by `BUCKETS_LOG` (an
//! `EnvFilter`, default `info`), as JSON lines when `BUCKETS_LOG_FORMAT=json`.

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BUCKETS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("BUCKETS_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
