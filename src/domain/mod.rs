//! Plain types and rules of transport credit: no I/O, no async, no generated code.

pub mod credit_code;
pub mod date;
pub mod grade;
pub mod input;
pub mod issuer;
pub mod money;
pub mod ownership;
pub mod profile;
pub mod publication;
pub mod records;
pub mod regions;
pub mod score_bands;
pub mod text;
pub(crate) mod vocab;

pub use credit_code::{AllowList, CodeCheck, CreditCode, CreditCodeError};
pub use grade::{CreditDomain, Grade};
pub use input::FieldError;
pub use issuer::{Issuer, RegionCode};
pub use money::Fen;
pub use publication::PublicationPeriods;
pub use records::*;
pub use regions::{region_display, region_name};
pub use score_bands::ScoreBands;
pub mod points;
pub mod tender;

pub use points::Points;
pub use tender::{Bidder, CommitteeGrant, EvaluationMethod, Tender, TenderId, TenderTerms};
