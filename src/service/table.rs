//! The committee's table as it goes on the wire.
//!
//! An `AssessTenderResponse` is, in protobuf's encoding, the concatenation of
//! its rows (field 1, one `AssessedBid` each) and the page token (field 2).
//! Each row is a short frame (the row's tag and length, the encoded `Bid`,
//! the answer's tag and length) followed by the answer's encoded bytes, which
//! the statement cache already keeps. So a page is written by copying, never
//! by encoding: each tender keeps the frames of its rows beside the answers
//! they frame, and a frame is rebuilt only when its row's answer changed.
//!
//! While the tender entry, the data version, the policy set and the active
//! key are those a table was checked at, every row stands as it is and the
//! page is served without asking the statement cache at all.

use super::answer::CachedAnswer;
use super::identity::Stamp;
use crate::cache::{CachedTender, ENTRY_OVERHEAD};
use crate::domain::TenderId;
use crate::proto::v1 as pb;
use moka::future::Cache;
use prost::Message;
use prost::bytes::{Bytes, BytesMut};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use std::collections::HashMap;
use std::sync::Arc;

/// One encoded answer: the pieces written one after the other.
#[derive(Debug, Clone, Default)]
pub struct Encoded(pub Vec<Bytes>);

impl Encoded {
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A row's frame and the answer it frames: the answer's encoded bytes, and
/// which answer they were (a weak reference: it keeps the allocation, so the
/// address is never another answer's, but not the decoded statement, which
/// goes when the statement cache lets it go).
#[derive(Clone)]
struct Row {
    answer: std::sync::Weak<CachedAnswer>,
    encoded: Bytes,
    frame: Bytes,
}

impl Row {
    fn frames(&self, answer: &Arc<CachedAnswer>) -> bool {
        std::ptr::eq(self.answer.as_ptr(), Arc::as_ptr(answer))
    }
}

struct Table {
    stamp: Stamp,
    /// By bid sequence.
    rows: HashMap<u32, Row>,
}

/// Encoded tables, per tender.
pub(super) struct Tables {
    tables: Cache<TenderId, Arc<Table>, crate::cache::Hasher>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Tables {
    /// Up to `bytes` of tables (frames, and the answers' encoded bytes they keep alive).
    pub(super) fn new(bytes: u64, ttl: std::time::Duration, metrics: Arc<crate::metrics::Metrics>) -> Tables {
        let tables = Cache::builder()
            .max_capacity(bytes)
            .weigher(|_: &TenderId, t: &Arc<Table>| {
                let rows: usize = t.rows.values().map(|r| r.frame.len() + r.encoded.len() + std::mem::size_of::<CachedAnswer>() + 96).sum();
                (ENTRY_OVERHEAD + rows).min(u32::MAX as usize) as u32
            })
            .time_to_live(ttl)
            .build_with_hasher(crate::cache::Hasher::default());
        Tables { tables, metrics }
    }

    /// The page, if the tender's table was checked at `stamp` and holds
    /// every row of it.
    pub(super) async fn page(&self, stamp: &Stamp, rows: &[crate::store::BidRow], token: &str) -> Option<Encoded> {
        let table = self.tables.get(&stamp.tender.tender.tender_id).await?;
        if !table.stamp.same(stamp) {
            return None;
        }
        let mut parts = Vec::with_capacity(rows.len() * 2 + 1);
        for bid in rows {
            let row = table.rows.get(&bid.sequence)?;
            parts.push(row.frame.clone());
            parts.push(row.encoded.clone());
        }
        parts.extend(token_field(token));
        self.metrics.cache("table", "hit");
        Some(Encoded(parts))
    }

    /// Encodes a page from its rows' answers, reusing the frame of every row
    /// whose answer is the one the table already frames; keeps the table
    /// when `stamp` is given (`None`: the answers are not to be reused).
    pub(super) async fn build(
        &self,
        stamp: Option<Stamp>,
        tender: &CachedTender,
        rows: &[crate::store::BidRow],
        answers: &[Arc<CachedAnswer>],
        token: &str,
    ) -> Encoded {
        self.metrics.cache("table", "miss");
        let id = &tender.tender.tender_id;
        let prior = self.tables.get(id).await;
        let mut parts = Vec::with_capacity(rows.len() * 2 + 1);
        let mut fresh = Vec::with_capacity(rows.len());
        for (bid, answer) in rows.iter().zip(answers) {
            let kept = prior.as_ref().and_then(|t| t.rows.get(&bid.sequence)).filter(|r| r.frames(answer));
            let frame = match kept {
                Some(row) => row.frame.clone(),
                None => {
                    self.metrics.table_rows_encoded(1);
                    frame(&super::tenders::bid_to_proto(id, bid), answer.encoded.len())
                }
            };
            parts.push(frame.clone());
            parts.push(answer.encoded.clone());
            fresh.push((bid.sequence, Row { answer: Arc::downgrade(answer), encoded: answer.encoded.clone(), frame }));
        }
        parts.extend(token_field(token));
        if let Some(stamp) = stamp {
            // Rows of other pages are kept only when they were checked at
            // this same stamp; otherwise they are checked when next asked.
            let mut kept: HashMap<u32, Row> = match &prior {
                Some(t) if t.stamp.same(&stamp) => t.rows.clone(),
                _ => HashMap::with_capacity(fresh.len()),
            };
            kept.extend(fresh);
            self.tables.insert(id.clone(), Arc::new(Table { stamp, rows: kept })).await;
        }
        Encoded(parts)
    }
}

/// A row's frame: field 1 of the response (an `AssessedBid`), holding the
/// bid (its field 1) and the header of the answer (its field 2) whose
/// `answer_len` bytes follow.
fn frame(bid: &pb::Bid, answer_len: usize) -> Bytes {
    let bid_len = bid.encoded_len();
    let row_len =
        key_len(1) + encoded_len_varint(bid_len as u64) + bid_len + key_len(2) + encoded_len_varint(answer_len as u64) + answer_len;
    let mut out = BytesMut::with_capacity(row_len - answer_len + 2 * key_len(1) + 10);
    encode_key(1, WireType::LengthDelimited, &mut out);
    encode_varint(row_len as u64, &mut out);
    encode_key(1, WireType::LengthDelimited, &mut out);
    encode_varint(bid_len as u64, &mut out);
    bid.encode(&mut out).expect("BytesMut grows");
    encode_key(2, WireType::LengthDelimited, &mut out);
    encode_varint(answer_len as u64, &mut out);
    out.freeze()
}

/// Field 2, the next page's token; absent when empty, as prost writes it.
fn token_field(token: &str) -> Option<Bytes> {
    if token.is_empty() {
        return None;
    }
    let mut out = BytesMut::with_capacity(token.len() + 6);
    encode_key(2, WireType::LengthDelimited, &mut out);
    encode_varint(token.len() as u64, &mut out);
    out.extend_from_slice(token.as_bytes());
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(n: u8) -> pb::AssessResponse {
        pb::AssessResponse {
            envelope: Some(pb::Envelope { payload: vec![n; 300 * n as usize].into(), payload_type: "t".into(), signatures: vec![] }),
            statement: None,
            log_index: Some(u64::from(n)),
        }
    }

    #[test]
    fn frames_and_answers_concatenate_to_what_prost_encodes() {
        let bids: Vec<pb::Bid> = (1..=3)
            .map(|n| pb::Bid {
                tender_id: "T".into(),
                sequence: n,
                bidder: Some(pb::Bidder { credit_codes: vec!["c".repeat(n as usize)] }),
                registered_at: None,
            })
            .collect();
        for token in ["", "after:3"] {
            let mut bytes = Vec::new();
            let mut rows = Vec::new();
            for (i, bid) in bids.iter().enumerate() {
                let a = answer(i as u8 + 1);
                let encoded = a.encode_to_vec();
                bytes.extend_from_slice(&frame(bid, encoded.len()));
                bytes.extend_from_slice(&encoded);
                rows.push(pb::AssessedBid { bid: Some(bid.clone()), assessment: Some(a) });
            }
            bytes.extend(token_field(token).unwrap_or_default());
            let want = pb::AssessTenderResponse { bids: rows, next_page_token: token.into() };
            assert_eq!(bytes, want.encode_to_vec(), "token {token:?}");
        }
    }
}
