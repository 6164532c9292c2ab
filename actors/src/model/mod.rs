//! Data that crosses actors: the source's records, as received and as validated.

pub mod batch;
pub mod created_user;
pub mod digest;
pub mod raw_user;

pub use batch::{FetchedBatch, Run, StagedUser};
pub use created_user::{CreatedUser, Provenance};
pub use digest::Digest;
pub use raw_user::{RawUser, Rejected, SourcePage};
