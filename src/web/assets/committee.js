// The committee's table. Every row is built from a signed statement that this
// page verifies itself (Ed25519 over DSSE's PAE) against the service's
// published keys; the figures shown are those of the verified payload.
// Ed25519 is verified with WebCrypto where the browser has it (Chromium 137
// and later), else with @noble/ed25519 (vendored: /assets/noble-ed25519.js,
// see README), whose SHA-512 is WebCrypto's where there is WebCrypto, else
// the vendored @noble/hashes (/assets/noble-hashes/sha2.js): so a browser
// with no WebCrypto at all (a plain-HTTP intranet address is not a secure
// context) verifies every row too, in pure JavaScript. Only where even that
// cannot run (the fallback cannot be loaded: a browser without BigInt or
// module imports, or the assets blocked) does the page say 此浏览器无法核验签名
// and mark each row 未核验, never 签名无效, which is kept for a signature that fails.
// Each row is then checked to be in the service's transparency log: the leaf
// (the envelope as compact DSSE JSON) hashed as RFC 6962 says, its inclusion
// proof recomputed to a root (RFC 9162 §2.1.3.2), and that root found in a
// checkpoint signed by the log key (a C2SP signed note) — then 已入账. Only a
// proof that does not lead to a signed root is 入账核验失败; a proof the server
// cannot give now (busy: 503 or 429, which the page waits out as Retry-After
// asks, with a doubling back-off, at most 10 s a wait and 20 s in all; not yet
// in a checkpoint; unreachable) leaves the row 暂未核验, never failed.
// SHA-256 (each statement's digest, the log's hashes) is WebCrypto's, else the
// vendored @noble/hashes (/assets/noble-hashes/sha2.js), so the printed record
// and the CSV carry every statement's SHA-256 in any browser.
"use strict";

const GRADE_RANK = { AA: 4, A: 3, B: 2, C: 1, D: 0 };
const SOURCE_ZH = {
  dynamic_d: "动态降为D级", provincial: "省级评价", national: "全国评价", carried_over: "沿用上期评价", new_entrant: "新进入（默认等级）",
};
const BASIS_ZH = { waived: "免缴", reduced: "减缴", full: "全额" };
const OUTCOME_ZH = { chosen: "采用", not_found: "无", skipped: "不适用" };
// For statements signed before they carried Chinese (messageZh): the reason by its code.
const REASON_ZH = {
  GRADE_EXCLUDED: "信用等级不符合招标文件要求，予以排除",
  GRADE_NOT_QUALIFIED: "信用等级未通过资格审查",
  NEW_ENTRANT_NO_BENEFIT: "无适用的信用评价结果，不享受信用加分和保证金优惠",
  PENALTY_IN_PUBLICATION: "有处于公示期内的行政处罚，不享受信用加分",
  COMMITMENT_BREACHED: "近期有失信的信用承诺，不享受信用加分",
  DEPOSIT_NOT_REDUCED: "不享受信用优惠，投标保证金全额缴纳",
};
const LIST_ZH = {
  TRANSPORT_BLACKLIST: "交通运输失信黑名单", TRANSPORT_RED_LIST: "交通运输守信红名单", KEY_ATTENTION: "重点关注名单",
  COURT_ENFORCEMENT: "失信被执行人", MAJOR_TAX_VIOLATION: "重大税收违法失信主体", MARKET_SERIOUS_VIOLATION: "严重违法失信名单",
  PROCUREMENT_DEBARMENT: "政府采购严重违法失信行为记录", OVERLOAD_TRANSPORT: "超限超载运输失信名单",
};

function reasonZh(r) {
  if (r.messageZh) return r.messageZh;
  if (REASON_ZH[r.code]) return REASON_ZH[r.code];
  let m = /^LISTED_(.+)$/.exec(r.code);
  if (m) return "列入" + (LIST_ZH[m[1]] || m[1]) + "，予以排除";
  m = /^BONUS_WITHHELD_(.+)$/.exec(r.code);
  if (m) return "列入" + (LIST_ZH[m[1]] || m[1]) + "，不享受信用加分";
  return "原因代码 " + r.code;
}

// Each warning in Chinese; a statement signed before warnings had codes has only the English.
function warningsZh(s) {
  const details = s.warningDetails || [];
  return (s.warnings || []).map((w, i) => (details[i] && details[i].messageZh) || "提示（仅有英文原文）：" + w);
}

function b64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const hex = bytes => Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("");

// DSSE pre-authentication encoding: "DSSEv1" SP len(type) SP type SP len(body) SP body.
function pae(type, body) {
  const enc = new TextEncoder();
  const t = enc.encode(type);
  const head = enc.encode(`DSSEv1 ${t.length} ${type} ${body.length} `);
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

function yuan(fen) {
  const n = Number(fen);
  return "¥" + (n / 100).toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// A raw Ed25519 public key that WebCrypto must accept if it knows Ed25519
// (RFC 8032 §7.1, test 1).
const PROBE_KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

// How this browser verifies Ed25519: { name, verify(rawKey, sig, msg) → bool },
// or null when it cannot at all. WebCrypto first; the vendored noble fallback
// where WebCrypto refuses Ed25519 ("noble", SHA-512 from WebCrypto) or where
// there is no WebCrypto at all ("noble-js", SHA-512 from @noble/hashes); null
// only when the fallback cannot be loaded.
async function ed25519() {
  const subtle = window.crypto && crypto.subtle;
  if (subtle) {
    try {
      await subtle.importKey("raw", b64(PROBE_KEY), { name: "Ed25519" }, false, ["verify"]);
      const keys = new Map();
      return {
        name: "webcrypto",
        async verify(raw, sig, msg) {
          const id = hex(raw);
          if (!keys.has(id)) keys.set(id, subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]));
          return subtle.verify({ name: "Ed25519" }, await keys.get(id), sig, msg);
        },
      };
    } catch (e) {
      console.info("WebCrypto has no Ed25519; using the vendored @noble/ed25519", e);
    }
  }
  try {
    const noble = await import("/assets/noble-ed25519.js");
    if (!subtle) {
      // noble's own SHA-512 hook (README: `ed.hashes.sha512 = sha512`): its
      // async default asks crypto.subtle, which is not there.
      const { sha512 } = await import("/assets/noble-hashes/sha2.js");
      noble.hashes.sha512 = sha512;
      noble.hashes.sha512Async = async m => sha512(m);
    }
    return {
      name: subtle ? "noble" : "noble-js",
      async verify(raw, sig, msg) {
        try {
          // Strict RFC 8032 (not ZIP-215), as WebCrypto and the service's ring.
          return await noble.verifyAsync(sig, msg, raw, { zip215: false });
        } catch (e) {
          return false;
        }
      },
    };
  } catch (e) {
    console.warn("the Ed25519 fallback could not be loaded", e);
    return null;
  }
}

function statementKeys(list) {
  const keys = new Map();
  for (const k of (list.keys || []).filter(k => (k.role || "statement") === "statement")) keys.set(k.keyid, b64(k.publicKey));
  return keys;
}

let nobleSha256 = null;
async function sha256(bytes) {
  if (window.crypto && crypto.subtle) return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  if (!nobleSha256) nobleSha256 = import("/assets/noble-hashes/sha2.js").then(m => m.sha256);
  return (await nobleSha256)(bytes);
}

// The statement's SHA-256 in hex, or "" if this browser cannot compute it.
async function digestOf(payload) {
  try {
    return hex(await sha256(payload));
  } catch (e) {
    console.warn("SHA-256 is not available in this browser", e);
    return "";
  }
}

const sleep = ms => new Promise(ok => setTimeout(ok, ms));
const TRIES = 6;
// No one wait longer than this, whatever Retry-After asks (a proxy may ask
// for a day), and no more than TOTAL_WAIT_MS of waiting for one answer: past
// it, the row is left 暂未核验 and the committee is told to refresh later.
const MAX_WAIT_MS = 10000;
const TOTAL_WAIT_MS = 20000;

// How long to wait before try `attempt + 1` after a refusal for load: what
// the server's Retry-After asks (seconds), at least, and at least a back-off
// that doubles from 0.5 s to at most 4 s; never more than MAX_WAIT_MS.
function backoff(r, attempt) {
  const asked = r ? Number(r.headers.get("Retry-After")) : NaN;
  const doubling = Math.min(500 * 2 ** attempt, 4000);
  return Math.min(Number.isFinite(asked) && asked > 0 ? Math.max(asked * 1000, doubling) : doubling, MAX_WAIT_MS);
}

// A GET that waits out a busy server (503, 429) and a failed connection, up
// to TRIES times and TOTAL_WAIT_MS of waiting; with `notYet`, a 404 too (a
// proof whose checkpoint is not signed yet), every 0.7 s. The last answer,
// or null if none came.
async function patientFetch(url, notYet) {
  let r = null;
  let waited = 0;
  for (let attempt = 0; attempt < TRIES; attempt++) {
    try { r = await fetch(url); } catch (e) { r = null; }
    if (r && r.ok) return r;
    const busy = !r || r.status === 503 || r.status === 429;
    if (!busy && !(notYet && r.status === 404)) return r;
    const wait = busy ? backoff(r, attempt) : 700;
    if (attempt === TRIES - 1 || waited + wait > TOTAL_WAIT_MS) break;
    waited += wait;
    await sleep(wait);
  }
  return r;
}

// One bid: "ok" (a listed key's signature verifies), "bad" (none does), or
// "unchecked" (this browser cannot verify). Figures are read from the payload
// only when it verified or could not be checked; an unchecked row says so.
async function check(bid, keys, ed) {
  const env = bid.envelope;
  const payload = b64(env.payload);
  let sig = "unchecked";
  if (ed) {
    sig = "bad";
    for (const s of env.signatures || []) {
      const key = keys.get(s.keyid);
      if (!key) continue;
      if (await ed.verify(key, b64(s.sig), pae(env.payloadType, payload))) {
        sig = "ok";
        break;
      }
    }
  }
  let st = null;
  if (sig !== "bad" && env.payloadType === "application/vnd.credit-tender.assessment.v1+json") {
    try { st = JSON.parse(new TextDecoder().decode(payload)); } catch (e) { st = null; }
  }
  if (st === null) sig = "bad";
  const digest = await digestOf(payload);
  return { seq: bid.sequence, sig, st, keyid: (env.signatures[0] || {}).keyid || "", env, logIndex: bid.log_index, digest };
}

const utf8 = s => new TextEncoder().encode(s);
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
const nodeHash = (l, r) => sha256(concat([1], l, r));
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// The leaf: the envelope as compact DSSE JSON, keys in this order.
async function leafHash(env) {
  const leaf = JSON.stringify({ payload: env.payload, payloadType: env.payloadType,
    signatures: (env.signatures || []).map(s => ({ keyid: s.keyid, sig: s.sig })) });
  return sha256(concat([0], utf8(leaf)));
}

// RFC 9162 §2.1.3.2: the root an inclusion proof leads to, or null.
async function rootFromProof(index, size, leaf, proof) {
  if (index >= size) return null;
  let fn = index, sn = size - 1, r = leaf;
  for (const p of proof) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

// A C2SP checkpoint signed as a C2SP note by one of the log keys: its size
// and root, or null. Key id: SHA-256(name ‖ "\n" ‖ 0x01 ‖ key)[:4].
async function verifyCheckpoint(note, logKeys, ed) {
  const at = note.indexOf("\n\n");
  if (at < 0) return null;
  const text = note.slice(0, at + 1);
  const lines = text.split("\n");
  const origin = lines[0], size = Number(lines[1]), root = b64(lines[2] || "");
  for (const line of note.slice(at + 2).split("\n")) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m || m[1] !== origin) continue;
    const sig = b64(m[2]);
    for (const raw of logKeys) {
      const id = (await sha256(concat(utf8(origin + "\n"), [1], raw))).slice(0, 4);
      if (!same(id, sig.slice(0, 4))) continue;
      if (await ed.verify(raw, sig.slice(4), utf8(text))) return { size, root };
    }
  }
  return null;
}

const logKeysOf = list => (list.keys || []).filter(k => k.role === "log" && k.status !== "revoked").map(k => b64(k.publicKey));

// 已入账 once the row's statement is proven to be in a signed checkpoint;
// 入账核验失败 only when the proof does not lead to a root signed by the log
// key; 暂未核验 when no proof could be had.
async function checkLogged(d, logKeys, checkpoints, ed) {
  if (d.sig !== "ok" || d.logIndex === undefined || d.logIndex === null) { d.log = d.sig === "unchecked" ? "unchecked" : "none"; return; }
  const r = await patientFetch(`/api/log/proof?index=${encodeURIComponent(d.logIndex)}`, true);
  if (!r || !r.ok) {
    d.log = "unavailable";
    d.logWhy = r ? `HTTP ${r.status}` : "无法连接服务器";
    return;
  }
  let p;
  try { p = await r.json(); } catch (e) { d.log = "unavailable"; d.logWhy = "答复无法读取"; return; }
  if (!checkpoints.has(p.checkpoint)) checkpoints.set(p.checkpoint, await verifyCheckpoint(p.checkpoint, logKeys, ed));
  const cp = checkpoints.get(p.checkpoint);
  const root = cp && cp.size === p.treeSize ? await rootFromProof(Number(p.index), p.treeSize, await leafHash(d.env), p.hashes.map(b64)) : null;
  d.log = root && same(root, cp.root) && Number(p.index) === Number(d.logIndex) ? "ok" : "bad";
}

function rowData(r) {
  const s = r.st;
  const base = { seq: r.seq, sig: r.sig, keyid: r.keyid, env: r.env, logIndex: r.logIndex, digest: r.digest };
  if (!s) return { ...base, sig: "bad", log: "none" };
  const nameOf = code => {
    const m = s.members.find(m => m.creditCode === code);
    return (m && m.entityName) || code;
  };
  const names = s.members.map(m => (m.entityName || m.creditCode) + (m.lead ? "（牵头人）" : "")).join(" + ");
  const grades = s.memberGrades.map(g => ({ name: nameOf(g.creditCode), grade: g.grade, source: SOURCE_ZH[g.source] || "来源代码 " + g.source }));
  const consortium = s.members.length > 1;
  const reasons = s.reasons.map(r => ({ effect: r.effect, text: reasonZh(r), recordId: r.recordId }));
  const members = s.memberGrades.map(g => `${nameOf(g.creditCode)}（${g.creditCode}）：${g.grade}级（${SOURCE_ZH[g.source] || "来源代码 " + g.source}）`);
  return {
    ...base, st: s, log: "pending",
    names, codes: s.members.map(m => m.creditCode).join(" + "),
    grade: s.appliedGrade,
    // A consortium: each member's grade and source against its name.
    source: consortium ? grades.map(g => `${g.name}：${g.grade}级（${g.source}）`).join("；") : (grades[0] || {}).source || "",
    qual: Number(s.qualificationPoints), eval: Number(s.evaluationPoints), total: Number(s.totalPoints),
    deposit: Number(s.depositOwedFen), nominal: Number(s.nominalDepositFen), basis: s.depositBasis,
    guarantee: s.creditGuaranteeAllowed, bond: Number(s.performanceBondRateBp) / 100,
    eligible: s.eligible, qualified: s.qualified,
    exclusion: reasons.filter(r => r.effect === "exclusion").map(r => r.text),
    refusal: reasons.filter(r => r.effect === "qualification").map(r => r.text),
    reasons, warningsZh: warningsZh(s), members,
    warnings: s.warnings.length,
  };
}

function policyName(s) {
  return s.policyTitle || "规则摘要值";
}

function regionName(s) {
  return s.regionName ? `${s.regionName}（${s.region}）` : s.region;
}

function evidence(d) {
  const s = d.st;
  const box = el("div", { class: "evidence" });
  for (const g of s.memberGrades) {
    const m = s.members.find(m => m.creditCode === g.creditCode) || {};
    box.append(el("h3", {}, `${m.entityName || ""} ${g.creditCode} · 信用等级 ${g.grade}（${SOURCE_ZH[g.source] || g.source}）`));
    const ul = el("ul");
    for (const e of g.evidence) {
      const issuer = e.issuerName || (e.issuer === "national" ? "全国" : e.issuer);
      const ref = e.recordId ? `记录 ${e.recordId}，${e.documentRef}，有效期 ${e.validFrom} 至 ${e.validTo}，发布方 ${issuer}，${e.year} 年度` : "";
      const note = e.noteZh || "说明（仅有英文原文）：" + e.note;
      ul.append(el("li", {}, `${SOURCE_ZH[e.step] || e.step}：${OUTCOME_ZH[e.outcome] || e.outcome}。${note}${ref ? "（" + ref + "）" : ""}`));
    }
    box.append(ul);
  }
  if (d.reasons.length) {
    box.append(el("h3", {}, "原因"));
    const ul = el("ul");
    for (const r of d.reasons) ul.append(el("li", {}, `${r.text}${r.recordId ? "（记录 " + r.recordId + "）" : ""}`));
    box.append(ul);
  }
  if (d.warningsZh.length) {
    box.append(el("h3", {}, "提示"));
    const ul = el("ul");
    for (const w of d.warningsZh) ul.append(el("li", {}, w));
    box.append(ul);
  }
  box.append(el("p", { class: "meta" },
    `地区 ${regionName(s)} · 数据版本 ${s.dataVersion} · 评价时点 ${s.asOfDate} · 规则 ${policyName(s)} 摘要值 sha256:${s.policyDigest} · 签名密钥 ${d.keyid} · 出具时间 ${new Date(s.issuedAt).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai" })}`));
  return box;
}

const LOG_ZH = { ok: "已入账", bad: "入账核验失败", pending: "核验中…", none: "未入账", unchecked: "未核验", unavailable: "暂未核验" };
const LOG_CLASS = { ok: "ok", bad: "bad", pending: "", none: "bad", unchecked: "warn", unavailable: "warn" };

function logCell(d) {
  const text = d.log === "ok" ? `#${d.logIndex} 已入账` : LOG_ZH[d.log];
  const attrs = { class: "log " + LOG_CLASS[d.log], "data-log": d.log };
  if (d.log === "unavailable") attrs.title = `入账证明暂时无法取得（${d.logWhy || "服务器繁忙"}），并非核验失败。请稍后刷新页面再核验。`;
  return el("td", attrs, text);
}

const SIG_ZH = { ok: "签名有效", bad: "签名无效", unchecked: "未核验" };

// Printed with every row: the statement's log index and the SHA-256 of its
// payload, so whoever holds the paper can check it with `credit-tender verify`.
function printRow(d) {
  const index = d.logIndex === undefined || d.logIndex === null ? "无" : d.logIndex;
  return el("tr", { class: "printonly", "data-seq": d.seq }, el("td", { colspan: "14", class: "code" },
    `第 ${d.seq} 号投标 · 日志序号 ${index} · 声明 SHA-256 ${d.digest || "（此浏览器无法计算）"}`));
}

function render(rows, tbody) {
  tbody.replaceChildren();
  for (const d of rows) {
    if (d.sig === "bad") {
      const tr = el("tr", { class: "invalid", "data-seq": d.seq },
        el("td", { class: "num" }, d.seq),
        el("td", { colspan: "11" }, "该投标人的信用评价结论未通过签名校验，内容可能被篡改，不得采信。"),
        el("td", { class: "sig bad" }, "签名无效"),
        logCell(d));
      tbody.append(tr, printRow(d));
      continue;
    }
    const excluded = !d.eligible;
    const tr = el("tr", { class: "row" + (excluded ? " excluded" : "") + (d.sig === "unchecked" ? " unchecked" : ""), "data-seq": d.seq, tabindex: "0" },
      el("td", { class: "num" }, d.seq),
      el("td", {}, el("div", {}, d.names), el("div", { class: "code" }, d.codes)),
      el("td", { class: "grade" }, d.grade),
      el("td", {}, d.source),
      el("td", { class: "num" }, d.qual.toFixed(2)),
      el("td", { class: "num" }, d.eval.toFixed(2)),
      el("td", { class: "num strong" }, d.total.toFixed(2)),
      el("td", { class: "num" }, el("div", {}, yuan(d.deposit)),
        el("div", { class: "code" }, `${BASIS_ZH[d.basis] || d.basis}，名义 ${yuan(d.nominal)}${d.guarantee ? "，可用信用保函" : ""}`)),
      el("td", { class: "num" }, d.bond.toFixed(2) + "%"),
      // The reason for 排除 and 不通过 stands in the row itself.
      el("td", {}, excluded ? el("strong", { class: "bad" }, "排除") : "否",
        ...d.exclusion.map(t => el("div", { class: "why" }, t))),
      el("td", {}, d.qualified ? "通过" : el("strong", { class: "bad" }, "不通过"),
        ...(d.eligible ? d.refusal : []).map(t => el("div", { class: "why" }, t))),
      el("td", {}, d.warnings ? `${d.warnings} 条` : ""),
      el("td", { class: "sig " + (d.sig === "ok" ? "ok" : "warn") }, SIG_ZH[d.sig]),
      logCell(d));
    const detail = el("tr", { class: "detail", hidden: "" }, el("td", { colspan: "14" }, evidence(d)));
    tr.addEventListener("click", () => { detail.hidden = !detail.hidden; });
    tr.addEventListener("keydown", e => { if (e.key === "Enter") detail.hidden = !detail.hidden; });
    tbody.append(tr, detail, printRow(d));
  }
}

// A cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a
// leading apostrophe, as OWASP advises for CSV injection; plain numbers stay numbers.
function neutral(v) {
  const s = String(v);
  return /^[=+\-@\t\r]/.test(s) && !/^-?\d+(\.\d+)?$/.test(s) ? "'" + s : s;
}

// The CSV: every column the table shows (等级来源, each member's grade, 提示,
// 入账), and the reasons, the log index and the statement's SHA-256.
function csv(rows, unchecked) {
  const q = v => `"${neutral(v).replace(/"/g, '""')}"`;
  const lines = [];
  // A file of rows nobody could check says so before anything else.
  if (unchecked) lines.push(q("此浏览器无法核验签名：以下结论均未经签名核验，不得作为已核验的结论使用。"));
  // Downloaded before the log checks ended: the file says so, and each such
  // row reads 尚未核验 (not 核验中…, which a file cannot keep its promise of).
  const pending = rows.filter(d => d.log === "pending").length;
  if (pending) lines.push(q(`下载时入账核验尚未完成：${pending} 个结论尚未核验是否入账（入账列为“尚未核验”），请待页面核验完毕后重新下载。`));
  lines.push(["序号", "投标人", "统一社会信用代码", "信用等级", "等级来源", "成员信用等级", "资格审查加分", "评标加分", "合计",
    "应缴投标保证金(元)", "履约保证金比例(%)", "是否排除", "资格审查", "原因", "提示", "签名", "入账", "日志序号", "声明SHA-256"].map(q).join(","));
  for (const d of rows) {
    const index = d.logIndex === undefined || d.logIndex === null ? "" : d.logIndex;
    const log = d.log === "pending" ? "尚未核验" : LOG_ZH[d.log] || "";
    if (d.sig === "bad") {
      lines.push([d.seq, "", "", "", "", "", "", "", "", "", "", "", "", "", "", "签名无效", log, index, d.digest].map(q).join(","));
      continue;
    }
    lines.push([d.seq, d.names, d.codes, d.grade, d.source, d.members.join("；"), d.qual.toFixed(2), d.eval.toFixed(2), d.total.toFixed(2),
      (d.deposit / 100).toFixed(2), d.bond.toFixed(2), d.eligible ? "否" : "排除", d.qualified ? "通过" : "不通过",
      d.reasons.map(r => r.text).join("；"), d.warningsZh.join("；"), SIG_ZH[d.sig], log, index, d.digest].map(q).join(","));
  }
  return "\ufeff" + lines.join("\r\n") + "\r\n";
}

// An error whose message is a Chinese sentence for the committee.
class Said extends Error {}

async function main() {
  const status = document.getElementById("status");
  const table = document.getElementById("table");
  const id = document.body.dataset.tender;
  document.getElementById("print").addEventListener("click", () => window.print());
  try {
    // The statements come a page at a time (AssessTender's pages).
    const base = `/api/tenders/${encodeURIComponent(id)}/statements`;
    const search = new URLSearchParams(location.search);
    const page = async token => {
      if (token) search.set("page_token", token); else search.delete("page_token");
      const r = await patientFetch(`${base}?${search}`, false);
      if (!r) throw new Said("无法连接服务器，未能取得信用评价结论。请检查网络后刷新页面。");
      if (!r.ok) throw new Said(`无法取得信用评价结论（HTTP ${r.status}）：${await r.text()}`);
      return r.json();
    };
    const kr = await patientFetch("/api/keys", false);
    if (!kr) throw new Said("无法连接服务器，未能取得公钥。请检查网络后刷新页面。");
    if (!kr.ok) throw new Said(`无法取得公钥（HTTP ${kr.status}）：${await kr.text()}`);
    const data = await page("");
    for (let next = data.next_page_token; next; ) {
      const more = await page(next);
      data.bids.push(...more.bids);
      next = more.next_page_token;
    }
    const keyList = await kr.json();
    const ed = await ed25519();
    document.body.dataset.verifier = ed ? ed.name : "none";
    const keys = statementKeys(keyList);
    const checked = await Promise.all(data.bids.map(b => check(b, keys, ed)));
    let rows = checked.map(rowData);
    const tbody = table.querySelector("tbody");
    render(rows, tbody);
    const bad = rows.filter(r => r.sig === "bad").length;
    const unchecked = rows.filter(r => r.sig === "unchecked").length;
    status.textContent = rows.length === 0
      ? "本项目尚无投标。"
      : bad ? `共 ${rows.length} 个投标人，其中 ${bad} 个结论签名无效，不得采信！`
      : unchecked ? `此浏览器无法核验签名（页面的核验程序未能加载，请更新浏览器后刷新）。以下 ${unchecked} 个结论未经核验，请以 credit-tender verify 核验后采信。`
      : `共 ${rows.length} 个投标人，全部结论签名有效。点击一行查看依据。`;
    status.className = "status " + (bad ? "error" : unchecked ? "warn" : "ok");
    table.hidden = rows.length === 0;
    let sortKey = "seq", asc = true;
    for (const th of table.querySelectorAll("th[data-key]")) {
      th.addEventListener("click", () => {
        const k = th.dataset.key;
        asc = sortKey === k ? !asc : true;
        sortKey = k;
        const val = d => d.sig === "bad" ? -Infinity : k === "grade" ? GRADE_RANK[d.grade] : d[k];
        rows = [...rows].sort((a, b) => (val(a) > val(b) ? 1 : val(a) < val(b) ? -1 : a.seq - b.seq) * (asc ? 1 : -1));
        for (const h of table.querySelectorAll("th")) h.removeAttribute("aria-sort");
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        render(rows, tbody);
      });
    }
    // The CSV is offered only for a tender with bids; it is made again
    // once the log checks are done, with their outcome.
    const link = document.getElementById("csv");
    const offerCsv = () => {
      if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
      link.href = URL.createObjectURL(new Blob([csv(rows, unchecked > 0)], { type: "text/csv;charset=utf-8" }));
    };
    link.hidden = rows.length === 0;
    if (rows.length) offerCsv();
    // The log check runs after the table is shown; each cell updates when done.
    const checkpoints = new Map();
    const logKeys = logKeysOf(keyList);
    const logged = d => checkLogged(d, logKeys, checkpoints, ed).catch(e => {
      console.warn("log check of bid", d.seq, e);
      d.log = "unavailable";
      d.logWhy = "核验过程出错";
    });
    Promise.all(rows.map(logged)).then(() => {
      render(rows, tbody);
      if (rows.length) offerCsv();
      const waiting = rows.filter(d => d.log === "unavailable").length;
      if (waiting && !bad) {
        status.textContent += ` 其中 ${waiting} 个结论的入账证明暂时无法取得，尚未核验是否入账（不是核验失败），请稍后刷新页面再核验。`;
        status.className = "status warn";
      }
      document.body.dataset.logUnavailable = String(waiting);
      document.body.dataset.logged = String(rows.filter(d => d.log === "ok").length);
    });
  } catch (e) {
    // The page's own sentences are Chinese; a browser's error (a TypeError,
    // a SyntaxError from an answer cut short) is named by its kind only.
    if (!(e instanceof Said)) console.error(e);
    status.textContent = e instanceof Said ? e.message
      : `页面未能完成核验：与服务器通信或处理答复时出错（${e && e.name ? e.name : "错误"}）。请刷新页面重试；如仍出现，请联系系统管理员。`;
    status.className = "status error";
    table.hidden = true;
  } finally {
    document.body.dataset.ready = "1";
  }
}

main();
