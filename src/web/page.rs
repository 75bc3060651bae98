//! Server-rendered HTML: the tender list, the committee page's shell, and
//! error pages. Every value from data is escaped here; figures in the table
//! are filled in by the browser from verified payloads only.

use crate::domain::date::shanghai;
use crate::domain::{Tender, region_display};
use std::fmt::Write;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/assets/committee.css\"></head>\
         <body>{body}</body></html>\n",
        esc(title)
    )
}

fn deadline(t: &Tender) -> String {
    t.terms.bid_deadline.with_timezone(&shanghai()).format("%Y-%m-%d %H:%M").to_string()
}

/// `/`: every tender, newest deadline first.
pub(super) fn tender_list(tenders: &[(Tender, u32)]) -> String {
    let mut rows = String::new();
    for (t, bids) in tenders {
        let _ = write!(
            rows,
            "<tr><td><a href=\"/tenders/{id_url}\">{id}</a></td><td>{title}</td><td>{domain}</td><td>{region}</td>\
             <td>{deadline}</td><td class=\"num\">{bids}</td></tr>",
            id_url = esc(&url_segment(t.tender_id.as_str())),
            id = esc(t.tender_id.as_str()),
            title = esc(&t.terms.title),
            domain = t.terms.domain.chinese_name(),
            region = esc(&region_display(&t.terms.region.to_string())),
            deadline = deadline(t),
        );
    }
    if tenders.is_empty() {
        rows.push_str("<tr><td colspan=\"6\" class=\"empty\">尚无登记的招标项目。</td></tr>");
    }
    layout(
        "招标项目 · 信用评价",
        &format!(
            "<header><h1>招标项目</h1><p class=\"sub\">交通运输信用评价结果在招标投标中的应用</p></header>\
             <main><table class=\"list\"><thead><tr><th>项目编号</th><th>项目名称</th><th>信用领域</th><th>地区</th>\
             <th>投标截止时间（北京时间）</th><th>投标数</th></tr></thead><tbody>{rows}</tbody></table></main>"
        ),
    )
}

/// `/tenders/{id}`: the committee's page. The table is filled in by
/// `committee.js` from signed statements it verifies itself.
/// `policy_title` is the policy's display name (its file's title), shown
/// with its digest; the tooltip repeats the title with the digest's start,
/// the version (the policy id, an English file name, is not shown). The CSV
/// link stays hidden until the script has rows to put in it.
pub(super) fn committee(t: &Tender, policy_title: Option<&str>, bidders: &[(u32, Vec<(String, String)>)]) -> String {
    let mut list = String::new();
    for (seq, members) in bidders {
        let names: Vec<String> = members
            .iter()
            .map(|(code, name)| if name.is_empty() { esc(code) } else { format!("{}（{}）", esc(name), esc(code)) })
            .collect();
        let _ = write!(list, "<li value=\"{seq}\">{}</li>", names.join(" + "));
    }
    let body = format!(
        "<header><p class=\"crumbs\"><a href=\"/\">招标项目</a> › {id}</p>\
         <h1>{title}</h1>\
         <dl class=\"facts\"><dt>项目编号</dt><dd>{id}（第 {version} 版）</dd>\
         <dt>信用领域</dt><dd>{domain}</dd><dt>地区</dt><dd>{region}</dd>\
         <dt>投标截止时间</dt><dd>{deadline}（北京时间，信用评价以此时点为准）</dd>\
         <dt>投标保证金（名义）</dt><dd>{deposit}</dd>\
         <dt>信用评价规则</dt><dd><span title=\"{policy_tooltip}\">{policy_title}</span> <code class=\"digest\">sha256:{digest}</code></dd></dl>\
         <div class=\"actions noprint\"><button id=\"print\" type=\"button\">打印</button>\
         <a id=\"csv\" class=\"button\" href=\"#\" download=\"{id}-credit.csv\" hidden>下载 CSV</a></div></header>\
         <main>\
         <div id=\"status\" class=\"status\" role=\"status\">正在读取并校验各投标人的信用评价结论…</div>\
         <table id=\"table\" class=\"committee\" hidden><thead><tr>\
         <th data-key=\"seq\" class=\"num\">序号</th><th data-key=\"names\">投标人</th>\
         <th data-key=\"grade\">信用等级</th><th data-key=\"source\">等级来源</th>\
         <th data-key=\"qual\" class=\"num\">资格审查加分</th><th data-key=\"eval\" class=\"num\">评标加分</th>\
         <th data-key=\"total\" class=\"num\">合计</th><th data-key=\"deposit\" class=\"num\">应缴投标保证金</th>\
         <th data-key=\"bond\" class=\"num\">履约保证金比例</th><th data-key=\"eligible\">是否排除</th>\
         <th data-key=\"qualified\">资格审查</th><th data-key=\"warnings\">提示</th><th data-key=\"sig\">签名</th>\
         <th data-key=\"logIndex\" class=\"num\">入账</th>\
         </tr></thead><tbody></tbody></table>\
         <section class=\"bidders\"><h2>投标人（按投标顺序）</h2><ol>{list}</ol></section>\
         <footer class=\"sign\">评标委员会成员签字：<span class=\"line\"></span> 日期：<span class=\"short line\"></span></footer>\
         </main><script src=\"/assets/committee.js\" defer></script>",
        id = esc(t.tender_id.as_str()),
        title = esc(&t.terms.title),
        version = t.version,
        domain = t.terms.domain.chinese_name(),
        region = esc(&region_display(&t.terms.region.to_string())),
        deadline = deadline(t),
        deposit = esc(&t.terms.nominal_deposit.to_string()),
        policy_title = esc(policy_title.unwrap_or("（规则名称无法读取）")),
        // The tooltip names the version a person can compare: the title
        // and the digest's first twelve hex digits (the id is a file name).
        policy_tooltip = esc(&format!(
            "{}，版本 sha256:{}…",
            policy_title.unwrap_or("信用评价规则"),
            t.policy_digest.get(..12).unwrap_or(&t.policy_digest)
        )),
        digest = esc(&t.policy_digest),
    );
    let page = layout(&format!("{} · 评标委员会信用评价", t.terms.title), &body);
    page.replacen("<body>", &format!("<body data-tender=\"{}\">", esc(t.tender_id.as_str())), 1)
}

/// A page for an error, in plain words.
pub(super) fn error(status: u16, heading: &str, detail: &str) -> String {
    layout(
        heading,
        &format!(
            "<header><p class=\"crumbs\"><a href=\"/\">招标项目</a></p><h1>{}</h1></header>\
             <main><div class=\"status error\" role=\"alert\"><p>{}</p><p class=\"code\">HTTP {status}</p></div></main>",
            esc(heading),
            esc(detail)
        ),
    )
}

/// Percent-encodes a path segment.
pub(super) fn url_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<script>alert('x')</script> & \""), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;");
        assert_eq!(url_segment("T 1/2"), "T%201%2F2");
    }
}
