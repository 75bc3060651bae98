//! The tonic services. Proto messages become domain values here and nowhere
//! else, and every error reaches the wire through [`ApiError`]'s one mapping.

mod answer;
mod assessment;
mod authorize;
mod commands;
mod convert;
pub mod credit_data;
mod error;
mod identity;
mod keys;
mod log;
pub mod policies;
pub mod recompute;
pub(crate) mod statement;
mod table;
mod tenders;

pub use answer::{Cache, CachedAnswer};
pub use assessment::{AssessmentApi, AssessmentRoutes};
pub(crate) use authorize::authorize;
pub use commands::{MAX_BATCH, MAX_TABLE_PAGE, TablePage};
pub use credit_data::CreditDataApi;
pub use error::{ApiError, BUSY_RETRY_AFTER, UNREACHABLE_RETRY_AFTER, retry_status};
pub use keys::{KeyApi, key_to_proto};
pub use log::{LogApi, MAX_ENTRIES_BYTES};
pub use policies::PolicySet;
pub use statement::{ASSESSMENT_PAYLOAD_TYPE, DEPOSIT_CHECK_PAYLOAD_TYPE, envelope_from_proto, envelope_to_proto};
pub use table::Encoded;
pub use tenders::{TenderApi, check_against_policy};
