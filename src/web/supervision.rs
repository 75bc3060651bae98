//! The supervisor's page: what credit changed in tendering, by month and by
//! region, as charts the server draws (SVG, no script), a table beneath with
//! the tenders behind every row, and the same figures as CSV. The figures are
//! GetOutcomes' (`crate::supervision`), asked with the caller's identity, so
//! a platform sees only its regions here too.

use super::page::esc;
use super::reply::{WebState, caller_of};
use crate::access::Caller;
use crate::proto::v1 as pb;
use crate::service::ApiError;
use axum::extract::{Extension, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// The page's query: the GetOutcomes request's fields; the dates default to
/// the current year (Shanghai).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct OutcomesQuery {
    #[serde(default)]
    region_prefix: String,
    #[serde(default)]
    domain: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

impl OutcomesQuery {
    /// The request, the current year (in Shanghai, at `now`) where no dates are given.
    fn request(&self, now: chrono::DateTime<chrono::Utc>) -> pb::GetOutcomesRequest {
        let year = crate::domain::date::shanghai_date(now).format("%Y").to_string();
        let or = |v: &str, d: String| if v.trim().is_empty() { d } else { v.to_owned() };
        pb::GetOutcomesRequest {
            region_prefix: self.region_prefix.clone(),
            domain: self.domain.clone(),
            from: or(&self.from, format!("{year}-01-01")),
            to: or(&self.to, format!("{year}-12-31")),
        }
    }
}

async fn outcomes(s: &WebState, caller: &Caller, q: &OutcomesQuery) -> Result<(pb::GetOutcomesRequest, pb::Outcomes), Response> {
    let request = q.request(s.cache.clock().now());
    match s.supervision.outcomes_for(caller, &request).await {
        Ok(o) => Ok((request, o)),
        Err(e) => Err(refusal(e)),
    }
}

fn refusal(e: ApiError) -> Response {
    match e {
        ApiError::Unauthenticated(why) => (StatusCode::UNAUTHORIZED, why).into_response(),
        ApiError::Denied(why) => (StatusCode::FORBIDDEN, why).into_response(),
        ApiError::Invalid(v) => (StatusCode::BAD_REQUEST, v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")).into_response(),
        other => {
            tracing::warn!(error = %other, "the supervisor's page could not be made");
            (StatusCode::SERVICE_UNAVAILABLE, "the figures cannot be read now; retry").into_response()
        }
    }
}

/// A column of the table and the CSV: its Chinese heading and its value.
type Column = (&'static str, fn(&pb::OutcomeFigures) -> String);

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, (fen % 100).abs())
}

fn points(centi: i64) -> String {
    format!("{}.{:02}", centi / 100, (centi % 100).abs())
}

const COLUMNS: &[Column] = &[
    ("招标项目", |f| f.tenders.to_string()),
    ("已评价投标", |f| f.bids_assessed.to_string()),
    ("享受信用优惠", |f| f.bidders_with_credit_benefit.to_string()),
    ("资格审查加分", |f| points(f.qualification_points_centi)),
    ("评标加分", |f| points(f.evaluation_points_centi)),
    ("保证金免缴", |f| f.deposits_waived.to_string()),
    ("保证金减缴", |f| f.deposits_reduced.to_string()),
    ("保证金全额", |f| f.deposits_full.to_string()),
    ("少缴保证金（元）", |f| yuan(f.deposit_saved_fen)),
    ("信用保函", |f| f.credit_guarantees.to_string()),
    ("保函替代金额（元）", |f| yuan(f.credit_guarantee_fen)),
    ("被排除", |f| f.excluded.to_string()),
    ("资格不合格", |f| f.not_qualified.to_string()),
    ("红名单激励", |f| f.rewards.to_string()),
];

/// One bar chart with a line over it: bars are bids assessed, the line the
/// deposit firms did not have to lodge, each on its own scale. Every bar and
/// point carries its key and value as data attributes.
fn chart(id: &str, title: &str, groups: &[pb::OutcomeGroup]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 200.0;
    const TOP: f64 = 20.0;
    let n = groups.len().max(1) as f64;
    let slot = W / n;
    let figures = |g: &pb::OutcomeGroup| g.figures.clone().unwrap_or_default();
    let max_bids = groups.iter().map(|g| figures(g).bids_assessed).max().unwrap_or(0).max(1) as f64;
    let max_saved = groups.iter().map(|g| figures(g).deposit_saved_fen).max().unwrap_or(0).max(1) as f64;
    let mut svg = format!(
        "<svg id=\"{id}\" class=\"chart\" role=\"img\" aria-label=\"{title}\" viewBox=\"0 0 {W} {}\" width=\"{W}\" height=\"{}\">\
         <title>{title}</title>",
        H + TOP + 30.0,
        H + TOP + 30.0
    );
    let mut line = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let f = figures(g);
        let height = H * f64::from(f.bids_assessed) / max_bids;
        let x = slot * i as f64 + slot * 0.15;
        let key = esc(&g.key);
        svg.push_str(&format!(
            "<rect class=\"bar\" data-key=\"{key}\" data-value=\"{}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"#4a78b5\"><title>{key}：已评价投标 {}</title></rect>",
            f.bids_assessed,
            TOP + H - height,
            slot * 0.7,
            f.bids_assessed
        ));
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{key}</text>",
            slot * i as f64 + slot / 2.0,
            TOP + H + 18.0
        ));
        let cy = TOP + H - H * f.deposit_saved_fen as f64 / max_saved;
        line.push(format!("{:.1},{cy:.1}", slot * i as f64 + slot / 2.0));
        svg.push_str(&format!(
            "<circle class=\"point\" data-key=\"{key}\" data-value=\"{}\" cx=\"{:.1}\" cy=\"{cy:.1}\" r=\"4\" fill=\"#c0504d\"><title>{key}：少缴保证金 {} 元</title></circle>",
            f.deposit_saved_fen,
            slot * i as f64 + slot / 2.0,
            yuan(f.deposit_saved_fen)
        ));
    }
    if !line.is_empty() {
        svg.push_str(&format!(
            "<polyline class=\"line\" points=\"{}\" fill=\"none\" stroke=\"#c0504d\" stroke-width=\"2\"/>",
            line.join(" ")
        ));
    }
    svg.push_str("</svg>");
    format!("<figure><figcaption>{title}（柱：已评价投标数；线：少缴保证金，元）</figcaption>{svg}</figure>")
}

fn table(id: &str, heading: &str, groups: &[pb::OutcomeGroup]) -> String {
    let mut out = format!("<table id=\"{id}\"><thead><tr><th>{heading}</th>");
    for (name, _) in COLUMNS {
        out.push_str(&format!("<th>{name}</th>"));
    }
    out.push_str("<th>招标项目编号</th></tr></thead><tbody>");
    for g in groups {
        let f = g.figures.clone().unwrap_or_default();
        out.push_str(&format!("<tr data-key=\"{}\"><th>{}</th>", esc(&g.key), esc(&g.key)));
        for (_, value) in COLUMNS {
            out.push_str(&format!("<td>{}</td>", value(&f)));
        }
        let links: Vec<String> = g.tender_ids.iter().map(|t| format!("<a href=\"/tenders/{}\">{}</a>", percent(t), esc(t))).collect();
        out.push_str(&format!("<td class=\"tenders\">{}</td></tr>", links.join(" ")));
    }
    out.push_str("</tbody></table>");
    out
}

/// RFC 3986's unreserved characters stay as they are; everything else is encoded.
const ENCODED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ENCODED).to_string()
}

fn query_string(r: &pb::GetOutcomesRequest) -> String {
    format!("region_prefix={}&domain={}&from={}&to={}", percent(&r.region_prefix), percent(&r.domain), percent(&r.from), percent(&r.to))
}

/// `/supervision`: the page.
pub(super) async fn page(State(s): State<WebState>, ext: Option<Extension<Caller>>, Query(q): Query<OutcomesQuery>) -> Response {
    let (r, o) = match outcomes(&s, &caller_of(ext), &q).await {
        Ok(x) => x,
        Err(refused) => return refused,
    };
    let total = o.total.clone().unwrap_or_default();
    let mut summary = String::from("<table id=\"total\"><tbody>");
    for (name, value) in COLUMNS {
        summary.push_str(&format!("<tr><th>{name}</th><td>{}</td></tr>", value(&total)));
    }
    summary.push_str("</tbody></table>");
    let region =
        if r.region_prefix.is_empty() { "全部地区".to_owned() } else { format!("地区代码以 {} 开头", esc(&r.region_prefix)) };
    let html = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>招投标信用成效</title>\
         <link rel=\"stylesheet\" href=\"/assets/committee.css\"></head><body>\
         <h1>招投标信用成效</h1>\
         <form method=\"get\" action=\"/supervision\">\
         <label>地区代码前缀 <input name=\"region_prefix\" value=\"{}\"></label> \
         <label>开标日期自 <input name=\"from\" value=\"{}\"></label> \
         <label>至 <input name=\"to\" value=\"{}\"></label> \
         <label>信用领域 <input name=\"domain\" value=\"{}\"></label> <button>查询</button></form>\
         <p id=\"scope\">{region}；开标日期 {} 至 {}；依据透明日志前 {} 条记录中的签名评价结论。\
         <a id=\"csv\" href=\"/supervision/outcomes.csv?{}\">下载 CSV</a></p>\
         <h2>合计</h2>{summary}\
         <h2>按月份</h2>{}{}\
         <h2>按地区</h2>{}{}\
         </body></html>",
        esc(&r.region_prefix),
        esc(&r.from),
        esc(&r.to),
        esc(&r.domain),
        esc(&o.from),
        esc(&o.to),
        o.tree_size,
        query_string(&r),
        chart("chart-month", "按月份", &o.by_month),
        table("by-month", "月份", &o.by_month),
        chart("chart-region", "按地区", &o.by_region),
        table("by-region", "地区", &o.by_region),
    );
    Html(html).into_response()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// `/supervision/outcomes.csv`: the table's rows (total, each month, each
/// region), UTF-8 with a byte-order mark so that Excel reads the Chinese.
pub(super) async fn csv(State(s): State<WebState>, ext: Option<Extension<Caller>>, Query(q): Query<OutcomesQuery>) -> Response {
    let (_, o) = match outcomes(&s, &caller_of(ext), &q).await {
        Ok(x) => x,
        Err(refused) => return refused,
    };
    let mut out = String::from("\u{feff}分组,键");
    for (name, _) in COLUMNS {
        out.push(',');
        out.push_str(&csv_field(name));
    }
    out.push_str(",招标项目编号\r\n");
    let mut row = |kind: &str, key: &str, f: &pb::OutcomeFigures, tenders: &[String]| {
        out.push_str(&format!("{kind},{}", csv_field(key)));
        for (_, value) in COLUMNS {
            out.push(',');
            out.push_str(&value(f));
        }
        out.push(',');
        out.push_str(&csv_field(&tenders.join(" ")));
        out.push_str("\r\n");
    };
    row("合计", "", &o.total.clone().unwrap_or_default(), &[]);
    for g in &o.by_month {
        row("月份", &g.key, &g.figures.clone().unwrap_or_default(), &g.tender_ids);
    }
    for g in &o.by_region {
        row("地区", &g.key, &g.figures.clone().unwrap_or_default(), &g.tender_ids);
    }
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"outcomes.csv\"")], out)
        .into_response()
}
