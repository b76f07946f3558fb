//! Status codes and the error categories documented by the production guides.
//!
//! The numbers are the C API's `brisk_status` values: explicit, stable, never reused.

/// The outcome of an operation. `Ok` is only ever seen at the C boundary; Rust code uses
/// `Result<T, Error>` and an [`Error`](super::Error) never carries `Ok`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    Ok = 0,
    InvalidArgument = 1,
    Connection = 2,
    Timeout = 3,
    Auth = 4,
    Server = 5,
    BusyLoading = 6,
    ClusterDown = 7,
    ReadOnly = 8,
    Watch = 9,
    PoolExhausted = 10,
    Protocol = 11,
    Tls = 12,
    Sentinel = 13,
    Closed = 14,
    Internal = 15,
}

/// The exception families of redis-py / Jedis that a caller branches on.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    None = 0,
    Connection = 1,
    AccessControl = 2,
    Data = 3,
    Generic = 4,
}

impl Status {
    pub const ALL: [Status; 16] = [
        Status::Ok,
        Status::InvalidArgument,
        Status::Connection,
        Status::Timeout,
        Status::Auth,
        Status::Server,
        Status::BusyLoading,
        Status::ClusterDown,
        Status::ReadOnly,
        Status::Watch,
        Status::PoolExhausted,
        Status::Protocol,
        Status::Tls,
        Status::Sentinel,
        Status::Closed,
        Status::Internal,
    ];

    /// The status with this number, if there is one (numbers come from C and are not trusted).
    pub fn from_u32(n: u32) -> Option<Status> {
        Status::ALL.get(n as usize).copied()
    }

    /// The C constant's name, e.g. `"BRISK_ERR_TIMEOUT"`.
    pub const fn name(self) -> &'static str {
        match self {
            Status::Ok => "BRISK_OK",
            Status::InvalidArgument => "BRISK_ERR_INVALID_ARGUMENT",
            Status::Connection => "BRISK_ERR_CONNECTION",
            Status::Timeout => "BRISK_ERR_TIMEOUT",
            Status::Auth => "BRISK_ERR_AUTH",
            Status::Server => "BRISK_ERR_SERVER",
            Status::BusyLoading => "BRISK_ERR_BUSY_LOADING",
            Status::ClusterDown => "BRISK_ERR_CLUSTER_DOWN",
            Status::ReadOnly => "BRISK_ERR_READONLY",
            Status::Watch => "BRISK_ERR_WATCH",
            Status::PoolExhausted => "BRISK_ERR_POOL_EXHAUSTED",
            Status::Protocol => "BRISK_ERR_PROTOCOL",
            Status::Tls => "BRISK_ERR_TLS",
            Status::Sentinel => "BRISK_ERR_SENTINEL",
            Status::Closed => "BRISK_ERR_CLOSED",
            Status::Internal => "BRISK_ERR_INTERNAL",
        }
    }

    pub fn category(self) -> Category {
        match self {
            Status::Ok => Category::None,
            Status::Connection
            | Status::Timeout
            | Status::Tls
            | Status::BusyLoading
            | Status::ClusterDown => Category::Connection,
            Status::Auth => Category::AccessControl,
            Status::Server | Status::ReadOnly | Status::Watch => Category::Data,
            Status::InvalidArgument
            | Status::PoolExhausted
            | Status::Protocol
            | Status::Sentinel
            | Status::Closed
            | Status::Internal => Category::Generic,
        }
    }

    /// The statuses the default retry policy retries: a new attempt may well succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Status::Connection
                | Status::Timeout
                | Status::BusyLoading
                | Status::ClusterDown
                | Status::ReadOnly
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_numbers_are_rejected() {
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(*s as u32, i as u32);
            assert_eq!(Status::from_u32(i as u32), Some(*s));
        }
        assert_eq!(Status::from_u32(16), None);
        assert_eq!(Status::from_u32(u32::MAX), None);
    }

    #[test]
    fn categories_follow_the_documented_families() {
        assert_eq!(Status::Tls.category(), Category::Connection);
        assert_eq!(Status::Auth.category(), Category::AccessControl);
        assert_eq!(Status::Watch.category(), Category::Data);
        assert_eq!(Status::PoolExhausted.category(), Category::Generic);
        assert!(Status::ReadOnly.is_retryable());
        assert!(!Status::Server.is_retryable());
        assert!(!Status::Auth.is_retryable());
    }
}
