// ARK console: polls the metrics server's /console/ JSON and draws it. Every figure from the
// server is written as text (textContent), never as markup: trace ids, reasons and payloads
// are data a producer chose. Actions send the operator's bearer token; it stays in this
// tab's sessionStorage and goes nowhere but this server.
"use strict";

const POLL_STATE_MS = 2000, POLL_SLOW_MS = 5000;
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("ark-token") || "";

// ---- DOM and HTTP helpers -------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k.startsWith("data_")) e.dataset[k.slice(5)] = v;
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const badge = (status, text) => el("span", { class: "badge", data_status: status, text: text || status });
const fmt = (v, digits = 3) => (v === null || v === undefined) ? "–" : (typeof v === "number" ? Number(v.toPrecision(digits)).toString() : String(v));
const pct = (v) => (v === null || v === undefined) ? "–" : (v * 100).toFixed(1) + "%";

class HTTPFailure extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { "Accept": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) throw new HTTPFailure(response.status, (data && data.error) || (response.status + " " + response.statusText));
  return data;
}

function notice(kind, text) {
  const n = $("notice");
  n.hidden = false;
  n.dataset.kind = kind;
  n.textContent = text;
}

// ---- token --------------------------------------------------------------------------------

async function checkToken() {
  const state = $("token-state");
  if (!token) { state.textContent = "no token: read-only"; state.dataset.status = ""; return false; }
  try {
    const who = await api("/console/whoami");
    state.textContent = "acting as " + who.subject;
    state.dataset.status = "ok";
    return true;
  } catch (e) {
    state.textContent = "token refused: " + e.message;
    state.dataset.status = "failed";
    return false;
  }
}

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  $("token").value = "";
  if (token) sessionStorage.setItem("ark-token", token); else sessionStorage.removeItem("ark-token");
  await checkToken();
  refreshState();
  refreshSlow();
});

// ---- pipeline, health and SLOs --------------------------------------------------------------

const SEVERITY = { quarantined: 0, silent: 1, probation: 2, live: 3 };
let lastState = null;

// Five tiles, the pipeline's order, each with its instances' sums and its worst standing;
// then every instance in one table, the ones not live first.
function renderStages(state) {
  lastState = state;
  $("stages").replaceChildren(...state.stages.map((s) => {
    const worst = s.instances.reduce((w, i) => SEVERITY[i.standing] < SEVERITY[w] ? i.standing : w, "live");
    const rate = s.instances.reduce((n, i) => n + (i.rate_per_s || 0), 0);
    const p95 = s.instances.reduce((m, i) => Math.max(m, i.p95_ms || 0), 0);
    return el("li", { class: "stage", id: "stage-" + s.stage, data_stage: s.stage, data_worst: s.instances.length ? worst : "silent" },
      el("h3", {}, s.stage),
      el("div", { class: "figures" },
        el("div", {}, `${s.live} of ${s.instances.length} taking work`),
        el("div", {}, `${fmt(rate, 4)}/s · p95 ≤ ${fmt(p95)} ms`),
        el("div", {}, `pending ${s.pending} · lag ${fmt(s.lag)}`)));
  }));
  renderInstances();
  $("gone").textContent = state.gone_instances ? `(${state.gone_instances} instance(s) silent over a minute not shown)` : "";
  const problems = Object.entries(state.health.checks).filter(([, c]) => c.status !== "healthy");
  $("problems").replaceChildren(...problems.map(([name, c]) => el("p", {}, badge(c.status), " ", el("strong", {}, name), ": ", c.detail)));
}

function renderInstances() {
  if (!lastState) return;
  const filter = $("instance-filter").value.trim().toLowerCase(), problemsOnly = $("problems-only").checked;
  const order = Object.fromEntries(lastState.stages.map((s, k) => [s.stage, k]));
  const all = lastState.stages.flatMap((s) => s.instances.map((i) => ({ ...i, stage: s.stage })));
  const shown = all.filter((i) => (!problemsOnly || i.standing !== "live") && (!filter || i.instance.toLowerCase().includes(filter) || i.host.toLowerCase().includes(filter)))
    .sort((a, b) => SEVERITY[a.standing] - SEVERITY[b.standing] || order[a.stage] - order[b.stage] || a.instance.localeCompare(b.instance, "en", { numeric: true }));
  $("instance-count").textContent = `${shown.length} of ${all.length} shown`;
  $("instance-table").tBodies[0].replaceChildren(...shown.map((i) => el("tr", { data_instance: i.instance, data_stage: i.stage, title: `${i.host} pid ${i.pid}` + (i.backpressure ? `; held back by ${i.backpressure}` : "") },
    el("td", { class: "name" }, i.instance),
    el("td", {}, i.stage),
    el("td", {}, badge(i.standing)),
    el("td", { class: "num" }, fmt(i.rate_per_s, 4)),
    el("td", { class: "num" }, String(i.pending)),
    el("td", { class: "num" }, fmt(i.p95_ms)),
    el("td", { class: "num wide" }, String(i.processed)),
    el("td", { class: "num wide" }, fmt(i.heartbeat_age_s, 2) + " s"))));
}
$("instance-filter").addEventListener("input", renderInstances);
$("problems-only").addEventListener("change", renderInstances);

function renderSLOs(report) {
  const body = $("slo-table").tBodies[0];
  if (!report) { body.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "muted" }, "the state store is unavailable"))); return; }
  $("slo-window").textContent = `over the last ${report.window_seconds} s`;
  body.replaceChildren(...Object.keys(report.slos).sort().map((name) => {
    const s = report.slos[name];
    const burn = ["5m", "30m", "1h", "6h"].map((w) => el("td", { class: "num", data_window: w }, fmt(s.burn_rates[w])));
    return el("tr", { data_slo: name, title: s.objective },
      el("td", {}, name), el("td", { class: "num" }, fmt(s.target, 4)), el("td", { class: "num slo-actual" }, fmt(s.actual, 4)),
      el("td", {}, badge(s.status)), el("td", { class: "num" }, pct(s.error_budget_remaining)), burn);
  }));
  $("slo-violations").replaceChildren(...report.violations.map((v) => el("div", {}, badge("violated", "violation"), " ", v)));
}

// A line chart in a 320×120 box: the series, its target as a dashed line, min and max labels.
function drawChart(svg, points, key, target, { floor } = {}) {
  const ns = "http://www.w3.org/2000/svg";
  const mk = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const values = points.filter((p) => p[key] !== null);
  svg.replaceChildren();
  if (values.length === 0) { svg.append(mk("text", { x: 10, y: 60, class: "axis" }, "no passes in the last hour")); return; }
  const xs = values.map((p) => p.t), ys = values.map((p) => p[key]).concat(target === undefined ? [] : [target]);
  let lo = floor !== undefined ? Math.min(floor, ...ys) : Math.min(...ys), hi = Math.max(...ys);
  const pad = Math.max((hi - lo) * 0.1, Math.abs(hi) * 0.002, 1e-6);
  hi += pad;
  if (floor === undefined) lo -= pad;
  const x1 = Math.max(...xs, Date.now() / 1000 - 60), x0 = Math.min(...xs, x1 - 3600 + 60);
  const X = (t) => 34 + (t - x0) / (x1 - x0) * 278, Y = (v) => 104 - (v - lo) / (hi - lo) * 94;
  svg.append(mk("polyline", { class: "line", points: values.map((p) => `${X(p.t).toFixed(1)},${Y(p[key]).toFixed(1)}`).join(" ") }));
  for (const p of values) svg.append(mk("circle", { class: "bar", cx: X(p.t).toFixed(1), cy: Y(p[key]).toFixed(1), r: 1.6 }));
  if (target !== undefined) svg.append(mk("line", { class: "target", x1: 34, x2: 312, y1: Y(target), y2: Y(target) }));
  const clock = (t) => new Date(t * 1000).toTimeString().slice(0, 5);
  svg.append(mk("text", { x: 2, y: 14, class: "axis" }, fmt(hi, 5)), mk("text", { x: 2, y: 104, class: "axis" }, fmt(lo, 5)),
    mk("text", { x: 34, y: 117, class: "axis" }, clock(x0)), mk("text", { x: 285, y: 117, class: "axis" }, clock(x1)));
  svg.dataset.points = String(values.length);
}

async function refreshHistory() {
  try {
    const h = await api("/console/history?minutes=60");
    drawChart($("chart-latency"), h.points, "p95_ms", h.targets.p95_ms, { floor: 0 });
    drawChart($("chart-availability"), h.points, "availability", h.targets.availability);
    drawChart($("chart-throughput"), h.points, "throughput_per_s", undefined, { floor: 0 });
  } catch (e) { /* the state store is down: the SLO table says so */ }
}

async function refreshState() {
  try {
    const state = await api("/console/state");
    const overall = $("overall");
    overall.dataset.status = state.health.status;
    overall.textContent = state.health.status;
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    renderStages(state);
    renderSLOs(state.slos);
    renderQuarantined(state);
    renderTrading(state.trading);
    document.body.dataset.updated = state.generated_at;
  } catch (e) {
    $("overall").dataset.status = "unhealthy";
    $("overall").textContent = "metrics server unreachable";
  }
}

// ---- trading states (the kill switch) -----------------------------------------------------

function renderTrading(trading) {
  const summary = $("trading-summary");
  if (!trading) { summary.dataset.status = "unknown"; summary.textContent = "unknown: Redis unreachable"; return; }
  const set = trading.states.filter((s) => s.mode !== "ACTIVE");
  const worst = set.some((s) => s.mode === "HALTED") ? "HALTED" : set.length ? "REDUCING" : "ACTIVE";
  summary.dataset.status = worst === "ACTIVE" ? "healthy" : (worst === "HALTED" ? "unhealthy" : "degraded");
  summary.textContent = worst === "ACTIVE" ? "ACTIVE: every account may trade" : `${set.length} scope${set.length === 1 ? "" : "s"} not active`;
  const rows = set.map((s) => el("tr", { data_scope: s.scope },
    el("td", { class: "name" }, s.scope), el("td", {}, badge(s.mode === "HALTED" ? "failed" : "silent", s.mode)),
    el("td", {}, s.by || "–"), el("td", {}, s.at || "–"), el("td", {}, s.reason || "")));
  const books = trading.unreadable_books.map((b) => el("p", { class: "problem" }, badge("failed", "book unreadable"), ` account ${b.account} (shard ${b.shard}): ${b.problem}`));
  const ledger = trading.ledger ? [el("p", { id: "ledger-status", class: trading.ledger.status === "healthy" ? "muted" : "problem" },
    badge(trading.ledger.status === "healthy" ? "ok" : "failed", trading.ledger.status === "healthy" ? "reconciled" : "not reconciled"),
    " Books against the audit: " + trading.ledger.detail)] : [];
  $("trading-states").replaceChildren(...ledger, ...books, set.length === 0 ? el("p", { class: "muted" }, "No halt and no reduce-only state is set.") :
    el("div", { class: "scroll" }, el("table", { id: "trading-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Scope"), el("th", {}, "State"), el("th", {}, "By"), el("th", {}, "Since"), el("th", {}, "Why"))),
      el("tbody", {}, rows))));
  for (const id of ["trading-halt", "trading-reduce", "trading-resume"]) {
    $(id).disabled = !token;
    $(id).title = token ? "" : "a token is needed";
  }
}

async function changeTrading(action, button) {
  const account = $("trading-account").value.trim(), reason = $("trading-reason").value.trim();
  if (!reason) { notice("error", "a reason is required: it is audited with the change"); return; }
  const what = account ? "account " + account : "every account";
  if (action === "halt" && !confirm("Halt trading for " + what + "?")) return;
  button.disabled = true;
  try {
    const r = await api("/console/trading/" + action, { method: "POST", body: account ? { account, reason } : { reason } });
    notice("ok", r.changes.map((c) => `${c.scope}: ${c.from} → ${c.mode}`).join("; "));
  } catch (e) {
    notice("error", action + " refused: " + e.message);
  }
  button.disabled = false;
  refreshState();
}

// ---- watchdog -----------------------------------------------------------------------------

async function release(selector, button) {
  button.disabled = true;
  try {
    const r = await api("/console/watchdog/release", { method: "POST", body: { selector } });
    notice("ok", "released " + r.released.map((x) => x.instance).join(", ") + " onto probation");
  } catch (e) {
    notice("error", "release of " + selector + " refused: " + e.message);
  }
  button.disabled = false;
  refreshState();
  refreshWatchdog();
}

function renderQuarantined(state) {
  const quarantined = state.stages.flatMap((s) => s.instances).filter((i) => i.standing === "quarantined");
  $("quarantined").replaceChildren(quarantined.length === 0 ? el("p", { class: "muted" }, "No instance is quarantined.") :
    el("div", { class: "scroll" }, el("table", { id: "quarantine-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Quarantined"), el("th", {}, "Why"), el("th", {}, "Auto release"), el("th", {}, ""))),
      el("tbody", {}, quarantined.map((i) => el("tr", { data_instance: i.instance },
        el("td", { class: "name" }, i.instance),
        el("td", {}, i.watchdog ? i.watchdog.reason : "flagged by its heartbeat"),
        el("td", {}, i.watchdog && i.watchdog.release_in_s !== null ? `in ${i.watchdog.release_in_s} s if healthy` : "–"),
        el("td", {}, el("button", { class: "release", disabled: token ? null : "disabled", title: token ? null : "a token is needed",
          onclick: (e) => release(i.instance, e.target) }, "Release"))))))));
}

async function refreshWatchdog() {
  let events;
  try { events = (await api("/console/watchdog?limit=50")).events; } catch (e) { return; }
  $("watchdog-events").tBodies[0].replaceChildren(...events.map((e) => el("tr", {},
    el("td", {}, new Date(e.ts_ns / 1e6).toLocaleTimeString()),
    el("td", {}, badge(e.action === "quarantine" ? "quarantined" : e.action === "release" ? "probation" : "silent", e.action)),
    el("td", { class: "name" }, e.instance), el("td", {}, e.by), el("td", {}, e.reason))));
}

// ---- canary -------------------------------------------------------------------------------

function flatten(object, prefix = "", out = []) {
  for (const [k, v] of Object.entries(object || {})) {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) flatten(v, prefix + k + ".", out);
    else out.push([prefix + k, Array.isArray(v) ? v.join(", ") : fmt(v, 4)]);
  }
  return out;
}

async function canaryAction(action, button) {
  if (action === "abort" && !confirm("Roll the canary back now?")) return;
  button.disabled = true;
  try {
    await api("/console/canary/" + action, { method: "POST" });
    notice("ok", "asked the canary's controller to " + action + "; its status follows below");
  } catch (e) {
    notice("error", action + " refused: " + e.message);
  }
  button.disabled = false;
  refreshCanary();
}

async function refreshCanary() {
  let run;
  try { run = (await api("/console/canary")).run; } catch (e) { return; }
  const box = $("canary-run");
  if (!run) { box.replaceChildren(el("p", { class: "muted" }, "No canary run recorded.")); return; }
  const steps = (run.report && run.report.steps) || [];
  const planned = (run.plan && run.plan.steps) || [];
  box.replaceChildren(
    el("dl", { class: "kv" },
      el("dt", {}, "Run"), el("dd", {}, run.run_id),
      el("dt", {}, "Status"), el("dd", {}, badge(run.status), run.requested ? ` (${run.requested} requested)` : ""),
      el("dt", {}, "Release"), el("dd", {}, `${run.release} against ${run.baseline_release}, at ${run.percent}%`),
      el("dt", {}, "Steps"), el("dd", {}, planned.map((p, k) => `${p}%` + (steps[k] && steps[k].outcome ? ` ${steps[k].outcome}` : k < steps.length ? " running" : "")).join(" → ") || "–"),
      run.tripwire ? [el("dt", {}, "Tripwire"), el("dd", {}, badge("tripwire", run.tripwire), " ", (run.report && run.report.tripwireDetail) || "")] : null,
      run.controller_alive === false ? [el("dt", {}, "Controller"), el("dd", {}, badge("failed", "gone"), " run ark canary abort on the host")] : null),
    run.ended_ns === null ? el("div", { class: "actions" },
      el("button", { id: "canary-promote", disabled: token ? null : "disabled", onclick: (e) => canaryAction("promote", e.target) }, "Promote"),
      el("button", { id: "canary-abort", class: "danger", disabled: token ? null : "disabled", onclick: (e) => canaryAction("abort", e.target) }, "Abort")) : null,
    el("div", { class: "scroll" }, el("table", { id: "canary-checks" },
      el("thead", {}, el("tr", {}, el("th", {}, "Step"), el("th", {}, "Share"), el("th", {}, "Verdict"), el("th", {}, "Figures"))),
      el("tbody", {}, run.checks.slice().reverse().map((c) => el("tr", {},
        el("td", { class: "num" }, String(c.step)), el("td", { class: "num" }, c.percent + "%"), el("td", {}, badge(c.verdict)),
        el("td", {}, el("pre", {}, flatten(c.figures).map(([k, v]) => `${k} ${v}`).join("\n")))))))));
}

// ---- trace and proof ----------------------------------------------------------------------

// SHA-256 (FIPS 180-4) in plain JS: WebCrypto's digest exists only in secure contexts, and the
// console is often opened over plain http on a LAN address.
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);
function sha256(bytes) {
  const length = bytes.length, padded = new Uint8Array(((length + 9 + 63) >> 6) << 6);
  padded.set(bytes);
  padded[length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(length / 0x20000000));
  view.setUint32(padded.length - 4, (length << 3) >>> 0);
  const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const W = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) W[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(W[i - 15], 7) ^ rotr(W[i - 15], 18) ^ (W[i - 15] >>> 3), s1 = rotr(W[i - 2], 17) ^ rotr(W[i - 2], 19) ^ (W[i - 2] >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, h] = H;
    for (let i = 0; i < 64; i++) {
      const t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + W[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      h = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
  }
  const out = new Uint8Array(32), outView = new DataView(out.buffer);
  H.forEach((v, i) => outView.setUint32(i * 4, v));
  return out;
}
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
function unhex(s) {
  if (!/^([0-9a-f]{2})*$/.test(s)) throw new Error("not hex: " + s.slice(0, 16));
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
  return out;
}
const concat = (...parts) => { const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0)); let o = 0; for (const p of parts) { out.set(p, o); o += p.length; } return out; };

// RFC 9162 §2.1.3.2, step by step as scripts/verify_audit_proof.py does it. Returns the
// problem, or null when the record is a leaf of the signed tree and the key signed it.
async function checkProof(p, pem) {
  const c = p.checkpoint;
  if (!c) return { ok: false, text: "no signed checkpoint covers this leaf yet: look it up again in a second" };
  const leaf = sha256(concat(new Uint8Array([0]), new TextEncoder().encode(p.record)));
  if (hex(leaf) !== p.leaf_hash) return { ok: false, text: "the record does not hash to its leaf hash: the record was altered" };
  let fn = p.leaf_index, sn = p.tree_size - 1, r = leaf;
  for (const s of p.audit_path) {
    const sibling = unhex(s);
    if (sn === 0) return { ok: false, text: "the audit path is too long" };
    if ((fn & 1) || fn === sn) {
      r = sha256(concat(new Uint8Array([1]), sibling, r));
      while (fn && !(fn & 1)) { fn >>= 1; sn >>= 1; }
    } else {
      r = sha256(concat(new Uint8Array([1]), r, sibling));
    }
    fn >>= 1; sn >>= 1;
  }
  if (sn !== 0) return { ok: false, text: "the audit path is too short" };
  if (p.tree_size !== c.size || hex(r) !== c.root) return { ok: false, text: "the audit path does not lead to the signed root: the log was altered" };
  if (!c.signed_text.includes(`size ${c.size}\nroot ${c.root}\n`)) return { ok: false, text: "the signed text does not state this size and root" };
  const leafPart = `leaf ${p.leaf_index} of ${c.size} leads to root ${c.root.slice(0, 16)}…`;
  if (!pem) return { ok: false, partial: true, text: `${leafPart}; the signature is not checked: this server has no audit public key to give` };
  if (!window.crypto || !crypto.subtle) return { ok: false, partial: true, text: `${leafPart}; the signature is not checked: the browser offers Ed25519 only on https or localhost (run ark verify-audit --trace ${p.trace_id})` };
  try {
    const der = Uint8Array.from(atob(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "")), (ch) => ch.charCodeAt(0));
    const key = await crypto.subtle.importKey("spki", der, { name: "Ed25519" }, false, ["verify"]);
    const good = await crypto.subtle.verify({ name: "Ed25519" }, key, unhex(c.signature), new TextEncoder().encode(c.signed_text));
    if (!good) return { ok: false, text: "the checkpoint's signature does not verify against the audit key: the checkpoint was forged" };
  } catch (e) {
    return { ok: false, partial: true, text: `${leafPart}; the signature could not be checked here (${e.message})` };
  }
  return { ok: true, text: `proof verified in this page: leaf ${p.leaf_index} of ${c.size}, signed by key ${c.key_id} at ${new Date(c.time_ns / 1e6).toISOString()}` };
}

async function lookUpTrace(id) {
  const box = $("trace-result");
  box.replaceChildren(el("p", { class: "muted" }, "looking up " + id + "…"));
  let t;
  try { t = await api("/console/traces/" + encodeURIComponent(id)); } catch (e) {
    box.replaceChildren(el("p", {}, badge("failed", "not shown"), " ", e.message));
    return;
  }
  const d = t.decision || {}, x = t.execution || {};
  // A hop's times are nanoseconds past 2^53: exact enough for milliseconds.
  const hops = (t.hops || []).map((h) => el("tr", {}, el("td", {}, h.stage), el("td", { class: "name" }, h.instance),
    el("td", { class: "num" }, new Date(h.in_ns / 1e6).toISOString().slice(11, 23)),
    el("td", { class: "num" }, fmt(Math.max(0, h.out_ns - h.in_ns) / 1e6))));
  const proofBox = el("div", { id: "proof-result", class: "proof", data_status: "running" }, "checking the audit proof…");
  box.replaceChildren(
    el("dl", { class: "kv", id: "trace-summary" },
      el("dt", {}, "Trace"), el("dd", {}, t.trace_id),
      el("dt", {}, "Verdict"), el("dd", {}, badge(t.verdict === "approved" ? "ok" : t.verdict === "denied" ? "silent" : "failed", t.verdict)),
      el("dt", {}, "Reasons"), el("dd", {}, (t.reasons || []).join("; ") || "–"),
      el("dt", {}, "Signal"), el("dd", {}, Object.entries(t.signal || {}).map(([k, v]) => `${k}=${v}`).join(" ")),
      el("dt", {}, "Violations"), el("dd", {}, (d.violations || []).map((v) => typeof v === "string" ? v : (v.rule || v.id || JSON.stringify(v))).join("; ") || "none"),
      el("dt", {}, "Policy hash"), el("dd", {}, d.policy_hash || "–"),
      el("dt", {}, "Order"), el("dd", {}, t.order_id || "none", x.status ? ` (${x.status}${x.fill_price !== undefined ? " at " + x.fill_price : ""})` : ""),
      el("dt", {}, "Latency"), el("dd", {}, fmt(t.latency_ms) + " ms"),
      el("dt", {}, "Audit hash"), el("dd", {}, t.audit_hash)),
    el("div", { class: "scroll" }, el("table", { id: "trace-hops" }, el("thead", {}, el("tr", {}, el("th", {}, "Hop"), el("th", {}, "Instance"), el("th", { class: "num" }, "In at (UTC)"), el("th", { class: "num" }, "ms in stage"))), el("tbody", {}, hops))),
    proofBox);
  try {
    const [proof, key] = await Promise.all([
      api("/console/traces/" + encodeURIComponent(id) + "/proof"),
      api("/console/audit-key").then((k) => k.pem, () => null)]);
    const verdict = await checkProof(proof, key);
    proofBox.dataset.status = verdict.ok ? "ok" : verdict.partial ? "inconclusive" : "failed";
    proofBox.textContent = verdict.ok ? verdict.text : (verdict.partial ? "proof partly checked: " : "proof NOT verified: ") + verdict.text;
  } catch (e) {
    proofBox.dataset.status = "failed";
    proofBox.textContent = "proof NOT verified: " + e.message;
  }
}

$("trace-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = $("trace-id").value.trim();
  if (id) { location.hash = "trace=" + encodeURIComponent(id); lookUpTrace(id); }
});

// ---- dead letters -------------------------------------------------------------------------

async function refreshDeadLetters() {
  const box = $("dead-letter-list");
  if (!token) { box.replaceChildren(el("p", { class: "muted" }, "A token is needed to read dead letters.")); return; }
  let r;
  try { r = await api("/console/dead-letters?limit=50"); } catch (e) {
    box.replaceChildren(el("p", {}, badge("failed", "not shown"), " ", e.message));
    return;
  }
  $("dead-letter-total").textContent = `(${r.total} recorded, newest ${r.dead_letters.length} shown)`;
  box.replaceChildren(r.dead_letters.length === 0 ? el("p", { class: "muted" }, "No dead letters.") :
    el("div", { class: "scroll" }, el("table", { id: "dead-letter-table" },
      el("thead", {}, el("tr", {}, ["Time", "Stream", "Reason", "Deliveries", "Trace", "Payload"].map((h) => el("th", {}, h)))),
      el("tbody", {}, r.dead_letters.map((d) => el("tr", { data_id: d.id },
        el("td", {}, new Date(d.ts).toLocaleTimeString()), el("td", { class: "name" }, d.stream), el("td", {}, d.reason),
        el("td", { class: "num" }, String(d.deliveries)), el("td", { class: "name" }, d.trace_id || "–"),
        el("td", {}, el("pre", {}, d.payload_preview))))))));
}

// ---- polling ------------------------------------------------------------------------------

function refreshSlow() { refreshHistory(); refreshWatchdog(); refreshCanary(); refreshDeadLetters(); }

async function start() {
  for (const action of ["halt", "reduce", "resume"]) {
    $("trading-" + action).addEventListener("click", (e) => changeTrading(action, e.target));
  }
  await checkToken();
  refreshState();
  refreshSlow();
  setInterval(refreshState, POLL_STATE_MS);
  setInterval(refreshSlow, POLL_SLOW_MS);
  const m = /^#trace=(.+)$/.exec(location.hash);
  if (m) { $("trace-id").value = decodeURIComponent(m[1]); lookUpTrace(decodeURIComponent(m[1])); }
}
start();
