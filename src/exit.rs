//! Process exit codes. Scripts and supervisors (systemd, Kubernetes) read them, so they
//! are part of the interface.

use tributary_actors::store::StoreError;

/// Everything worked.
pub const OK: i32 = 0;
/// The operation failed at run time (a store rejected a request, a check failed).
pub const FAILURE: i32 = 1;
/// The service cannot start as configured: a bad or unknown configuration key, an
/// unreadable credential or certificate file, or a store that cannot be reached (a TLS
/// handshake refused included). Fix and retry.
pub const CONFIG: i32 = 2;

/// The exit code for a store error: unreachable stores, credentials, TLS set-up and what
/// a store refuses for good (an incompatible schema) are set-up problems ([`CONFIG`]),
/// anything else is a run-time failure.
pub fn for_store_error(error: &StoreError) -> i32 {
    match error {
        StoreError::Unreachable { .. }
        | StoreError::Credentials { .. }
        | StoreError::Tls { .. }
        | StoreError::Refused { .. } => CONFIG,
        StoreError::Request { .. } => FAILURE,
    }
}
