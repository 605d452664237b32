//! The admin API's error codes. Every error answer is `{"error": CODE, "message": TEXT}`
//! with an HTTP status; clients decide on the code, people read the message.

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// An admin API error code. A code this build does not know (a newer server's)
        /// arrives as `Other`, and so does the status of an answer without a JSON body
        /// (`HTTP502`).
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum AdminErrorCode {
            $($(#[$doc])* $name,)*
            Other(String),
        }

        impl AdminErrorCode {
            pub fn as_str(&self) -> &str {
                match self {
                    $(AdminErrorCode::$name => stringify!($name),)*
                    AdminErrorCode::Other(code) => code,
                }
            }

            pub fn parse(code: &str) -> AdminErrorCode {
                match code {
                    $(stringify!($name) => AdminErrorCode::$name,)*
                    other => AdminErrorCode::Other(other.to_string()),
                }
            }
        }
    };
}

codes! {
    /// The request is not signed with the root credentials.
    AccessDenied,
    BodyTooLarge,
    MalformedRequest,
    MalformedTopology,
    /// No such admin endpoint.
    NotFound,
    NoSuchNode,
    NoSuchSet,
    /// A set id that is not a number.
    InvalidSet,
    /// The topology would break a rule (states, drives, generation, size).
    InvalidTopology,
    /// Drives of a new set cannot be opened or formatted.
    InvalidDrives,
    /// The caller's expected generation is not the current one.
    GenerationConflict,
    /// A set still holds objects and cannot be removed yet.
    SetNotEmpty,
    AlreadyDraining,
    /// Remove asked of a set that is still active.
    SetNotDrained,
    SetRemoved,
    /// Draining the set would leave no active set.
    LastActiveSet,
    /// The node waits for a topology and serves nothing else yet.
    AwaitingTopology,
    AlreadyBootstrapped,
    BootstrapFailed,
    NoSuchUser,
    NoSuchGroup,
    NoSuchPolicy,
    NoSuchKey,
    /// A user, group or policy of that name exists.
    AlreadyExists,
    /// A name or value that is not allowed (what is said in the message).
    InvalidArgument,
    MalformedPolicy,
    /// A built-in policy cannot be changed or removed; a policy in use cannot be removed.
    PolicyInUse,
    NoSuchBucket,
    /// A bucket that still holds objects (versions and delete markers too) cannot be
    /// deleted.
    BucketNotEmpty,
    /// The bucket's settings refuse the change (object lock cannot be turned on or off
    /// for an existing bucket; a locked bucket's versioning stays Enabled).
    InvalidBucketState,
    /// Not enough drives answered; retry.
    Unavailable,
    InternalError,
}

impl std::fmt::Display for AdminErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &AdminErrorCode, message: &str) -> Self {
        ErrorBody { error: code.as_str().to_string(), message: message.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_back_from_their_names_and_unknown_ones_are_kept() {
        for code in [AdminErrorCode::SetNotEmpty, AdminErrorCode::GenerationConflict, AdminErrorCode::AccessDenied] {
            assert_eq!(AdminErrorCode::parse(code.as_str()), code);
        }
        assert_eq!(AdminErrorCode::SetNotEmpty.as_str(), "SetNotEmpty");
        assert_eq!(AdminErrorCode::parse("FromTheFuture"), AdminErrorCode::Other("FromTheFuture".into()));
        assert_eq!(AdminErrorCode::parse("FromTheFuture").to_string(), "FromTheFuture");
    }
}
