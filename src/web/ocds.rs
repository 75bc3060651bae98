//! `/tenders/{id}/ocds.json`: one tender's credit-related facts as an OCDS
//! 1.1 release package ([`crate::supervision::ocds`]), for whoever may read
//! the tender's table: the same access as `/api/tenders/{id}/statements`,
//! which the committee's page reads.

use super::reply::{WebError, WebState, caller_of, json};
use crate::access::Caller;
use crate::domain::TenderId;
use crate::proto::v1 as pb;
use crate::service::ApiError;
use crate::supervision::ocds::{AssessedBid, release_package};
use axum::extract::{Extension, Path, State};
use axum::response::Response;

/// No tender `id` for this caller: absent, whatever the reason.
fn absent(why: String, id: &str) -> WebError {
    let shown = crate::domain::text::shown(id);
    WebError::NotFound { why, zh: format!("没有编号为「{shown}」的招标项目，或当前身份无权查看。") }
}

/// Every bid of the table, page by page, as the statements route reads it.
async fn table(s: &WebState, caller: &Caller, id: &str) -> Result<Vec<pb::AssessedBid>, WebError> {
    let mut bids = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::AssessTenderRequest { tender_id: id.to_owned(), page_size: crate::service::MAX_TABLE_PAGE as u32, page_token };
        let page = match crate::service::TablePage::parse(&request) {
            Ok(page) => s.assessments.assess_tender_table(caller, &page).await,
            Err(e) => Err(e),
        };
        let page = match page {
            Ok(p) => p,
            Err(ApiError::NotFound(why) | ApiError::Denied(why)) => return Err(absent(why, id)),
            Err(e) => return Err(e.into()),
        };
        bids.extend(page.bids);
        if page.next_page_token.is_empty() {
            return Ok(bids);
        }
        page_token = page.next_page_token;
    }
}

pub(super) async fn release(State(s): State<WebState>, Path(id): Path<String>, ext: Option<Extension<Caller>>) -> Response {
    let caller = caller_of(ext);
    let bids = match table(&s, &caller, &id).await {
        Ok(b) => b,
        Err(e) => return e.api(),
    };
    // The table answered, so the tender exists and the caller may read it.
    let tender = match TenderId::parse(&id) {
        Ok(tid) => match s.cache.tender(&tid).await {
            Ok(Some(t)) => t.tender.clone(),
            Ok(None) => return absent(format!("tender '{id}' gone"), &id).api(),
            Err(e) => return WebError::from(e).api(),
        },
        Err(why) => return absent(why, &id).api(),
    };
    let assessed: Vec<AssessedBid<'_>> = bids
        .iter()
        .filter_map(|b| {
            let bid = b.bid.as_ref()?;
            Some(AssessedBid { sequence: bid.sequence, registered_at: bid.registered_at.as_ref(), assessment: b.assessment.as_ref()? })
        })
        .collect();
    match release_package(&tender, &assessed) {
        Ok(package) => json(&package),
        Err(e) => {
            WebError::Invalid { zh: format!("该项目的金额超出 OCDS 导出可精确表示的范围：{e}"), why: e.to_string() }.api()
        }
    }
}
