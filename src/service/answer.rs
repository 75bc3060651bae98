//! A signed answer as the statement cache keeps it, and what it weighs.
//!
//! Its own file so that the assessment service, which makes answers, and the
//! committee's tables, which frame them, both import it from below instead
//! of from each other.

use crate::proto::v1 as pb;

/// A signed answer as the cache keeps it: the message, and its encoded
/// protobuf bytes, which a cache hit on Assess sends as they are (no
/// decoding, cloning or re-encoding).
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    pub response: pb::AssessResponse,
    pub encoded: prost::bytes::Bytes,
}

impl CachedAnswer {
    pub(crate) fn new(response: pb::AssessResponse) -> CachedAnswer {
        use prost::Message;
        let encoded = response.encode_to_vec().into();
        CachedAnswer { response, encoded }
    }

    /// Bytes the statement cache counts for an answer: the envelope's
    /// payload, the decoded copy (its strings and vectors: more than as large
    /// again, measured with RSS under 200,000 distinct bidders,
    /// tests/api/cache.rs), and the signatures.
    pub fn weight(&self) -> u32 {
        let r = &self.response;
        let payload = r.envelope.as_ref().map_or(0, |e| e.payload.len()) + self.encoded.len();
        (payload * 3 + 1024).min(u32::MAX as usize) as u32
    }
}

/// The cache as the services use it: each statement is kept as the answer
/// and as that answer's encoded protobuf bytes.
pub type Cache = crate::cache::CreditCache<CachedAnswer>;
