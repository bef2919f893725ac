// The packing station page: scan -> weigh -> print, driven by the agent's event stream.
import { WORDS, fmtWeight, fmtWeightValue, setWeightUnit, unitName } from "/station/i18n.js";
import { agentText, said } from "/station/messages.js";
import { renderWaves, watchWaves } from "/station/waves.js";
import { itemScanned, itemsFirst, wireItemCheck } from "/station/itemcheck.js";
import { countLabel, openSignIn, playSound, renderPacker, watchPacker, wireFloor } from "/station/floor.js";
import { currentOrder, extraParcel, nextParcel, openClose, parcelTotal, readOrder, refreshOrder, renderParcels,
  setOrder, wireParcels } from "/station/parcels.js";

const $ = (id) => document.getElementById(id);
const NOTHING_SENT = new Set(["printer_unreachable", "printer_not_configured",
  "printer_language_unsupported", "printer_connection_unsupported"]);
// An order barcode is short and printable: anything longer, or with control characters, is not
// an order (a scanner misconfigured, a stuck key, a paste) and is refused before any request.
// GS (U+001D) is FNC1 in a GS1 code: the agent reads those.
const MAX_SCAN = 128;
const CONTROL = /[\u0000-\u001c\u001e-\u001f\u007f-\u009f\u2028\u2029]/;
// A last scan's (or parcel action's) outcome, which a printer fault replaces.
const OUTCOMES = ["printed", "error", "packed", "closed", "voided"];

const page = {
  lang: localStorage.getItem("dockside.lang") || (["zh", "es"].find((l) => navigator.language.startsWith(l)) ?? "en"),
  // The language Alt+L switches to from English: the last other language chosen.
  otherLang: localStorage.getItem("dockside.other_lang") || (navigator.language.startsWith("es") ? "es" : "zh"),
  station: new URLSearchParams(location.search).get("station"),
  snapshot: null,
  state: "starting",    // nothing is READY before the agent said the station can print
  view: { word: "s_starting", order: "", detail: "starting_detail", todo: "" },
  pending: null,        // {ref, requestId, parcel, total}: the order being packed (weighed, printed) now
  queue: [],            // scans typed while an order is being packed, handled in order
  busy: false,          // a request that must not overlap another is in flight
  confirming: null,     // the job id whose printer confirmation the panel (PRINTING) waits for
  checking: false,      // the agent is asked whether a scanned order exists and can be packed
  lastJob: null,        // the last answer with a job id: what Reprint reprints
  heldCode: null,
  watched: new Map(),   // job id -> held label (from the agent's list or a pack answer) not resolved yet
  resolving: new Set(), // held job ids whose outcome is being asked
  heldKey: "",
  viewAt: 0,            // when the panel's view was set (performance.now())
  faultSince: Infinity, // when the label printer's fault was first seen; Infinity while it can print
  recent: JSON.parse(sessionStorage.getItem("dockside.recent") || "[]"),
  pairing: false,       // this screen waits for IT's pairing code
  dock: false,          // dock mode: a scan hands the parcel over (?mode=dock, or the toggle)
};

function t(key, arg) {
  const word = (WORDS[page.lang] ?? WORDS.en)[key] ?? WORDS.en[key] ?? key;
  return typeof word === "function" ? word(arg) : word;
}

// What the agent said (an error, a held label, a printer), in the page's language.
function sayText(what) {
  return agentText(page.lang, what && typeof what === "object" ? what : { raw: what ?? "" });
}

// The page's languages (the language picker lists them).
const LANGS = ["en", "zh", "es"];
const HTML_LANG = { en: "en", zh: "zh-Hans", es: "es" };
// The scale's state in the snapshot, as the code of its message.
const SCALE_CODES = { unplugged: "scale_unplugged", port_denied: "scale_port_denied",
  not_answering: "scale_not_answering", overload: "scale_overload", underload: "scale_underload",
  garbled: "scale_garbled_frame", error: "scale_error" };

function newRequestId() {
  return globalThis.crypto?.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

// -- showing the state ----------------------------------------------------------------------

function show(state, view) {
  page.state = state;
  page.view = view;
  page.viewAt = performance.now();
  render();
  if (SOUNDS[state]) playSound(SOUNDS[state]);
}

// What a packer hears as the panel changes: a label printed (or a parcel handed over), or trouble.
const SOUNDS = { printed: "success", error: "failure", held: "failure" };

// An icon per state (the word stays): shapes tell the states apart where colours may not.
const ICONS = { starting: "…", ready: "◎", weighing: "⚖", printing: "➜", printed: "✓", held: "‖", error: "✗", sent: "?",
  fault: "⚠", closed: "■", voided: "⊘", packed: "↺", items: "☑", item_refused: "✗" };

const READY = { word: "s_ready", detail: "ready_detail" };
const DOCK_READY = { word: "s_ready", detail: "dock_ready" };

// An order is on its way (looked up, weighing, printing, or waiting for F2 / the printer).
function midPack() {
  return Boolean(page.busy || page.checking || page.pending);
}

// The printer a label would go to now cannot print (and no fallback can): what stops it, or null.
function stationFault() {
  const printer = page.snapshot?.label_printer;
  return !page.dock && printer && !printer.ready ? printer : null;
}

// What the panel shows: a printer fault says what to do, whatever the last scan was (READY, or
// an outcome from before the fault). A pack under way, the answer to a scan made during the
// fault (the packer must read it) and a held label (which names the fault) keep their view.
function shown() {
  const fault = stationFault();
  const older = ["ready", "starting"].includes(page.state) || page.viewAt < page.faultSince;
  if (fault && !midPack() && page.state !== "held" && older) {
    return ["fault", { word: "s_fault", order: "", detail: said(fault), todo: "fault_todo" }];
  }
  return [page.state, page.view];
}

function text(value, arg) {
  if (value == null) return "";
  if (typeof value === "object") return sayText(value);
  return t(value, arg);
}

function render() {
  const [state, v] = shown();
  document.body.dataset.state = state;
  if (page.drawnLang !== page.lang) { // the page's fixed words: again only when the language changes
    page.drawnLang = page.lang;
    document.documentElement.lang = HTML_LANG[page.lang] || "en";
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  }
  document.body.dataset.mode = page.dock ? "dock" : "pack";
  $("dock").checked = page.dock;
  $("scan-help").textContent = t(page.dock ? "dock_help" : "scan_help");
  document.querySelector(".scan-label").textContent = t(page.dock ? "dock_label" : "scan_label");
  $("lang").value = page.lang;
  $("state-icon").textContent = ICONS[state] || "";
  $("state-word").textContent = text(v.word);
  $("state-order").textContent = v.order || "";
  $("state-parcel").hidden = !v.parcel;
  $("state-parcel").textContent = v.parcel ? t(v.parcel.key, v.parcel.arg) : "";
  $("state-detail").textContent = text(v.detail, v.arg);
  $("state-todo").textContent = text(v.todo, v.arg);
  $("print").hidden = !(page.pending && !page.busy && !page.checking && ["weighing", "error"].includes(state));
  // Reprint, Add parcel and Close order act on the last order packed: hidden while the panel
  // names another (an unknown scan's CHECK), where they would act on an order nobody looks at.
  const named = (ref) => !v.order || v.order === ref;
  $("reprint").hidden = !(page.lastJob && !midPack() && ["printed", "sent", "ready", "error", "held", "fault", "closed",
    "voided"].includes(state) && page.lastJob.status !== "failed_nothing" && named(page.lastJob.order_ref));
  $("reprint-what").textContent = page.lastJob ? t("reprint_what", page.lastJob) : "";
  const order = currentOrder();
  const canAct = Boolean(order && order.parcels.length && !midPack() && !page.dock && state !== "starting"
    && named(order.order_ref));
  $("add-parcel").hidden = !canAct;
  $("close").hidden = !canAct;
  renderSnapshot();
  renderHeld(true);
  renderQueue();
  renderRecent();
  renderWaves();
  renderParcels();
  renderPacker();
}

function renderSnapshot() {
  const s = page.snapshot;
  if (!s) return;
  $("station-code").textContent = s.station;
  $("station-name").textContent = s.name && s.name !== s.station ? s.name : "";
  $("warehouse").textContent = s.warehouse;
  const pill = $("cloud-pill");
  pill.className = `pill ${s.online ? "pill-online" : "pill-offline"}`;
  $("cloud-text").textContent = t(s.online ? "online" : "offline");
  $("offline-banner").hidden = s.online;
  $("offline-detail").textContent = s.credential_refused ? t("credential_refused") : t("offline_detail", s.outbox_depth);
  const scale = s.scale;
  setWeightUnit(s.weight_unit);
  $("weight-value").textContent = scale && scale.weight_g != null ? fmtWeightValue(scale.weight_g) : "–";
  document.querySelector(".weight .unit").textContent = unitName();
  const stable = $("stable");
  const used = weightUsed(scale);
  stable.className = `stable ${scale && scale.stable && !used ? "stable-yes" : "stable-no"}`;
  $("stable-text").textContent = !scale ? t("no_scale") : used ? t("next_parcel") : t(scale.stable ? "stable" : "unstable");
  if (!page.scaleNote) {
    $("scale-message").textContent = scale && scale.state !== "ok"
      ? sayText({ raw: scale.message, code: SCALE_CODES[scale.state] }) : "";
  }
  const list = $("printers");
  list.replaceChildren(...s.printers.map((p) => {
    const li = document.createElement("li");
    li.className = `device-${p.state}`;
    const badge = document.createElement("span");
    badge.className = `badge badge-${p.state}`;
    badge.textContent = t(`p_${p.state}`);
    const what = document.createElement("span");
    const role = WORDS.en[`role_${p.role}`] ? t(`role_${p.role}`) : p.role;
    what.textContent = `${p.id} (${role}) — ${sayText(said(p))}`;
    li.append(badge, what);
    return li;
  }));
}

function renderRecent() {
  if (!page.recent.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = t("no_recent");
    $("recent").replaceChildren(li);
    return;
  }
  $("recent").replaceChildren(...page.recent.slice(0, 6).map((r) => {
    const li = document.createElement("li");
    li.className = `recent-${r.kind || "printed"}`;
    const ref = document.createElement("span");
    ref.className = "ref";
    ref.textContent = r.order_ref;
    ref.title = r.order_ref;
    const what = document.createElement("span");
    what.className = "muted what";
    what.textContent = r.kind === "failed" ? `✗ ${t("not_printed")}: ${sayText(r.message)}`
      : `${r.kind === "sent" ? `? ${t("s_sent")} · ` : ""}${r.parcel > 1 ? `#${r.parcel} · ` : ""}${r.carrier} · ${fmtWeight(r.weight_g)}${r.reprint ? " · ↻" : ""}${docName(r.document, true)}`;
    what.title = what.textContent;
    li.append(ref, what);
    return li;
  }));
}

// Every scan's outcome goes here: each printed label, and each order that printed nothing (why).
function remember(answer, reprint = false) {
  countLabel();
  // A label its printer could not confirm is "sent" in Recent labels: the packer checks it came out.
  note({ kind: answer.status === "sent" ? "sent" : "printed", order_ref: answer.order_ref, carrier: answer.carrier,
    weight_g: answer.weight_g, reprint, document: answer.document, parcel: answer.parcel });
}

function rememberFailed(ref, message) {
  note({ kind: "failed", order_ref: shortRef(ref), message });
}

function note(entry) {
  page.recent.unshift(entry);
  page.recent = page.recent.slice(0, 20);
  sessionStorage.setItem("dockside.recent", JSON.stringify(page.recent));
}

// " · packing slip" for a document other than the shipping label ("" for the label itself).
function docName(document, separated = false) {
  if (!document || document === "shipping_label") return separated ? "" : t("doc_shipping_label");
  const name = WORDS.en[`doc_${document}`] ? t(`doc_${document}`) : String(document).replaceAll("_", " ");
  return separated ? ` · ${name}` : name;
}

// A reference as the page may show it: at most 40 characters, control characters made visible.
function shortRef(ref) {
  const clean = String(ref).replace(new RegExp(CONTROL.source, "g"), "\ufffd");
  return clean.length > 40 ? `${clean.slice(0, 40)}…` : clean;
}

// -- held labels: the agent's list, each announced when it prints ---------------------------

function renderHeld(force = false) {
  const held = page.snapshot?.held || [];
  const count = page.snapshot?.held_count ?? held.length;
  const key = `${page.lang}|${count}|${held.map((h) => `${h.job_id}:${h.code}:${JSON.stringify(h.params)}:${h.message}`).join(",")}`;
  if (!force && key === page.heldKey) return;
  page.heldKey = key;
  $("held-card").hidden = held.length === 0;
  $("held-count").textContent = count ? String(count) : "";
  const items = held.map((h) => {
    const li = document.createElement("li");
    li.className = "held-item";
    li.dataset.job = h.job_id;
    const head = document.createElement("div");
    head.className = "held-head";
    const ref = document.createElement("span");
    ref.className = "ref";
    ref.textContent = h.order_ref;
    ref.title = h.order_ref;
    const what = document.createElement("span");
    what.className = "muted held-what";
    what.textContent = [docName(h.document), h.parcel > 1 ? t("held_parcel", h.parcel) : "",
      h.reprint ? t("reprint") : "", t("held_since", clock(h.since_ms))].filter(Boolean).join(" · ");
    head.append(ref, what);
    const todo = document.createElement("div");
    todo.className = "held-todo";
    todo.textContent = sayText(said(h));
    li.append(head, todo);
    return li;
  });
  if (count > held.length) {
    const more = document.createElement("li");
    more.className = "muted";
    more.textContent = t("held_more", count - held.length);
    items.push(more);
  }
  $("held").replaceChildren(...items);
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString({ zh: "zh-CN", es: "es-ES" }[page.lang] || "en-GB", { hour: "2-digit", minute: "2-digit" });
}

// Follow every held label the agent lists (and the ones a pack answer held): those that left the
// list are asked about one after the other, oldest first, and each is announced if it printed.
function trackHeld(snapshot) {
  const listed = new Map((snapshot.held || []).map((h) => [h.job_id, h]));
  const gone = [];
  for (const [id, label] of page.watched) {
    if (listed.has(id) || page.resolving.has(id)) continue;
    if (label.askedAt && Date.now() - label.askedAt < 2000) continue; // still held a moment ago
    page.resolving.add(id);
    gone.push(id);
  }
  for (const [id, label] of listed) if (!page.watched.has(id)) page.watched.set(id, label);
  if (gone.length) resolveInTurn(gone);
}

async function resolveInTurn(ids) {
  for (const id of ids) {
    try {
      await resolveHeld(id);
    } finally {
      page.resolving.delete(id);
    }
  }
}

async function resolveHeld(id) {
  const result = await call("GET", `/api/v1/jobs/${encodeURIComponent(id)}`);
  const label = page.watched.get(id);
  if (!label) return;
  if (!result.ok) {
    if (result.status === 404) page.watched.delete(id); // forgotten: nothing was sent
    return; // the agent is not answering: the next snapshot asks again
  }
  const job = result.body;
  if (job.status === "held") {
    label.askedAt = Date.now();
    return;
  }
  if (unsettled(job)) {
    label.askedAt = Date.now() - 1500; // on its way to the printer: ask again in half a second
    return;
  }
  page.watched.delete(id);
  if (job.status === "printed") return announcePrinted(job);
  if (job.status === "sent") return unconfirmed({ answer: job, reprint: Boolean(job.reprint_of) }, job, !midPack());
  rememberFailed(job.order_ref, jobSaid(job));
  if (!midPack()) {
    show("error", { word: "s_error", order: job.order_ref, detail: jobSaid(job),
      todo: "held_unsure_todo" });
  } else {
    renderRecent();
  }
}

// A held label printed: it joins Recent labels, and the panel says PRINTED unless a pack is under way.
function announcePrinted(job) {
  remember(job, Boolean(job.reprint_of));
  if (midPack()) {
    renderRecent();
    return;
  }
  page.heldCode = null;
  page.lastJob = job;
  show("printed", { word: "s_printed", order: job.order_ref, detail: "printed_detail", todo: "held_printed_todo", arg: job,
    parcel: parcelLine(job) });
}

// -- scans waiting their turn ----------------------------------------------------------------

function renderQueue() {
  const box = $("queue-box");
  box.hidden = page.queue.length === 0;
  if (box.hidden) return;
  const shownItems = page.queue.slice(0, 5).map((item) => {
    const li = document.createElement("li");
    li.textContent = item.ref;
    li.title = item.ref;
    return li;
  });
  if (page.queue.length > 5) {
    const more = document.createElement("li");
    more.textContent = t("queue_more", page.queue.length - 5);
    shownItems.push(more);
  }
  $("queue").replaceChildren(...shownItems);
}

// -- talking to the agent --------------------------------------------------------------------

async function call(method, path, body, retried = false) {
  let response;
  try {
    response = await fetch(path, {
      method, headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch {
    return { ok: false, status: 0, error: { code: "agent_unreachable", message: t("agent_lost") + " " + t("agent_lost_todo") } };
  }
  // The session is gone (the agent restarted, or this screen was unpaired): get a new one, once.
  const json = await response.json().catch(() => ({}));
  // (A badge or PIN no packer has is 401 too: that answer is the packer's, not the session's.)
  const sessionLost = response.status === 401 && json.error?.code !== "packer_not_recognised";
  if (sessionLost && !retried && await signIn()) return call(method, path, body, true);
  if (response.ok) return { ok: true, status: response.status, body: json };
  return { ok: false, status: response.status, error: json.error || { code: "http_error", message: `HTTP ${response.status}` } };
}

// A weight serves one parcel: the agent says whether the scale holds one not packed yet. The
// order that took the weight may ask again for its first parcel (the agent answers it, e.g.
// "already packed"); a later parcel of that order waits for a parcel of its own on the scale.
function scaleReady(item) {
  const scale = page.snapshot?.scale;
  if (!scale) return true; // no scale: let the agent say what to do
  return scale.parcel_ready === true || (!(item.parcel > 1) && Boolean(scale.stable && scale.last_used
    && scale.last_used.order_ref === item.ref));
}

// The scale still shows the weight this order's last parcel took: the agent would take it again.
function staleWeight(item) {
  const scale = page.snapshot?.scale;
  return item.parcel > 1 && weightUsed(scale) && scale.last_used.order_ref === item.ref;
}

// "Parcel n of m · tracking number" for an answer; m from the order last read when it is this one.
function parcelLine(answer, total) {
  const order = currentOrder();
  const n = answer.parcel || 1;
  const m = total ?? parcelTotal(order?.order_ref === answer.order_ref ? order : null, n);
  return { key: "parcel_of", arg: { n, m, tracking: answer.tracking_number } };
}

// The scale settled, but on the weight the last pack took (or on nothing): the next parcel is due.
function weightUsed(scale) {
  return Boolean(scale && scale.stable && !scale.parcel_ready && scale.last_used);
}

// Why a scan cannot be an order barcode, as {key, arg}; null when it may be one.
function refusal(ref) {
  if (ref.length > MAX_SCAN) return { key: "scan_too_long", arg: ref.length };
  if (CONTROL.test(ref)) return { key: "scan_garbage" };
  return null;
}

function scanned(raw) {
  const ref = raw.trim();
  if (!ref) return;
  const refused = refusal(ref);
  if (refused) {
    $("scan-note").textContent = t(refused.key, refused.arg);
    $("scan-note").hidden = false;
    if (!midPack()) {
      show("error", { word: "s_error", order: shortRef(ref), detail: refused.key, arg: refused.arg, todo: "scan_again_todo" });
    }
    return;
  }
  $("scan-note").hidden = true;
  if (itemScanned(ref)) return; // an item of the order under check (itemcheck.js)
  page.queue.push({ ref, requestId: newRequestId(), dock: page.dock });
  advance();
}

// Start the next waiting scan once nothing else is under way.
function advance() {
  if (midPack() || !page.queue.length) {
    renderQueue();
    return;
  }
  const item = page.queue.shift();
  renderQueue();
  if (item.dock) handOver(item.ref);
  else begin(item);
}

async function begin(item) {
  page.pending = item;
  page.heldCode = null;
  // Ask the agent before asking for a parcel: an unknown or cancelled order answers at once, and
  // the parcels labelled so far say which one this scan packs. The agent reads the scan as the
  // pack does (a GS1 code, the scanner's prefix), so every scan is asked about.
  page.checking = true;
  const found = await call("GET", `/api/v1/orders/${encodeURIComponent(item.ref)}`);
  page.checking = false;
  if (page.pending !== item) { // cleared (Esc) while the agent was asked
    advance();
    return;
  }
  if (!found.ok && ["order_not_found", "scan_unreadable"].includes(found.error.code)) {
    return fail(item.ref, said(found.error), "error_todo", said(found.error));
  }
  if (!found.ok) { // the agent did not say: the pack answers for the order
    item.parcel ??= 1;
    readyToPack(item);
    return;
  }
  const order = readOrder(found.body);
  setOrder(order);
  item.ref = order.order_ref;
  if (order.state === "cancelled" && !found.body.job) {
    return fail(item.ref, "order_cancelled", "cancelled_todo", t("order_cancelled"));
  }
  const next = item.extra ? extraParcel(order) : nextParcel(order);
  if (next === null) { // every parcel has its label: the agent answers "already packed" without weighing
    item.parcel = 1;
    pack();
    return;
  }
  item.parcel = next;
  item.total = parcelTotal(order, next);
  if (await itemsFirst(item)) return; // its items are checked first; then it goes on to readyToPack
  readyToPack(item);
}

// Pack now if the scale holds this order's parcel, else ask for it (F2 prints without "auto").
function readyToPack(item) {
  if ($("auto").checked && scaleReady(item)) {
    pack();
    return;
  }
  weighing(item);
}

function weighing(item) {
  const later = item.parcel > 1 && $("auto").checked;
  const detail = later ? "weigh_parcel" : weightUsed(page.snapshot?.scale) ? "next_parcel_detail"
    : $("auto").checked ? "weighing_detail" : "weighing_manual";
  show("weighing", { word: "s_weighing", order: item.ref, detail, arg: { n: item.parcel, m: item.total },
    parcel: item.parcel > 1 ? parcelLine({ order_ref: item.ref, parcel: item.parcel }, item.total) : null });
}

// The order printed nothing and needs nothing more: say why, keep it in Recent, take the next scan.
function fail(ref, detail, todo, why) {
  page.pending = null;
  rememberFailed(ref, why);
  show("error", { word: "s_error", order: ref, detail, todo });
  advance();
}

async function pack() {
  const pending = page.pending;
  if (!pending || page.busy || page.checking) return;
  if (staleWeight(pending)) { // the parcel before it is still on the scale: wait for this one
    weighing(pending);
    return;
  }
  page.busy = true;
  // Asked alongside the pack: the agent answers it once the printer confirmed the label (or could
  // not), so PRINTED ✓ needs no request after the pack's answer. Both go out before the panel
  // draws PRINTING, so the label is on its way while the page draws.
  const confirmation = call("GET", `/api/v1/requests/${encodeURIComponent(pending.requestId)}/job?wait_s=10`);
  const packing = call("POST", "/api/v1/pack", { order_ref: pending.ref,
    station: page.snapshot?.station ?? page.station, request_id: pending.requestId, parcel: pending.parcel ?? 1 });
  const parcel = pending.parcel > 1 ? parcelLine({ order_ref: pending.ref, parcel: pending.parcel }, pending.total) : null;
  show("printing", { word: "s_printing", order: pending.ref, detail: "printing_detail", parcel });
  const result = await packing;
  page.busy = false;
  if (result.ok) {
    packed(result.body, confirmation);
    advance();
    return;
  }
  const { code } = result.error;
  const message = said(result.error);
  if (code.startsWith("printer_")) {
    page.heldCode = code;
    if (!NOTHING_SENT.has(code)) { // it may have printed: a person decides
      page.pending = null;
      rememberFailed(pending.ref, message);
    }
    show("held", { word: "s_held", order: pending.ref, detail: message,
      todo: NOTHING_SENT.has(code) ? "held_todo" : "held_unsure_todo" });
  } else if (code.startsWith("scale_")) { // the order stays: F2 tries again
    show("error", { word: "s_error", order: pending.ref, detail: message, todo: "scale_todo" });
  } else {
    return fail(pending.ref, message, "error_todo", message);
  }
  advance();
}

function packed(answer, confirmation = null) {
  const item = page.pending;
  page.pending = null;
  const scale = page.snapshot?.scale;
  if (scale && answer.status !== "already_packed") { // until the agent's next snapshot: the weight is spent
    scale.parcel_ready = false;
    scale.last_used = { grams: answer.weight_g, order_ref: answer.order_ref };
  }
  const total = item?.ref === answer.order_ref && item.parcel === answer.parcel ? item.total : undefined;
  // a held label has nothing to reprint yet
  page.lastJob = answer.status === "held" ? null : { ...answer, total };
  refreshOrder(answer.order_ref).then(() => { if (!midPack()) render(); });
  if (answer.status === "held") return held(answer);
  if (answer.status === "already_packed") {
    const order = currentOrder();
    const parcel = order?.order_ref === answer.order_ref ? { key: "parcels_labelled",
      arg: { labelled: order.parcels.length, expected: order.expected ?? order.parcels.length } } : null;
    return show("error", { word: "s_packed", order: answer.order_ref, detail: "packed_detail", todo: "packed_todo",
      arg: answer, parcel });
  }
  // The order read before this pack still expects a parcel without a label: the packer scans it again.
  const order = currentOrder();
  const more = order?.order_ref === answer.order_ref && order.expected != null
    && new Set([...order.parcels.map((p) => p.parcel), answer.parcel]).size < order.expected;
  sentLabel({ answer, total, todo: more ? "next_parcel_todo" : "printed_todo", reprint: false, confirmation });
}

// -- confirmed printing: PRINTED ✓ only once the printer says so -------------------------------

// A job the printer has not had its say on yet: still going out, or sent and not confirmed.
function unsettled(job) {
  return job.status === "sending" || (job.status === "sent" && !job.message);
}

// The label went out (`sent`): PRINTING until its printer confirms it, PRINTED ✓ only then; HELD
// with the fix if the printer faults with the label inside; SENT (check the label) if the printer
// cannot confirm it. The next scan never waits for this: its own outcome takes the panel.
function sentLabel(done) {
  const answer = done.answer;
  if (answer.status === "printed") return printedLabel(done, true);
  if (!unsettled(answer)) return unconfirmed(done, answer, true);
  page.confirming = answer.job_id;
  const waiting = { word: "s_printing", order: answer.order_ref, detail: "confirming_detail",
    parcel: parcelLine(answer, done.total) };
  // The panel says PRINTING since the scan: it says "waiting for the printer" only once the printer
  // takes a moment, so a label confirmed at once goes straight to PRINTED ✓ (one change, one paint).
  const slow = setTimeout(() => { if (page.confirming === answer.job_id && !midPack()) show("printing", waiting); }, 40);
  if (page.state !== "printing") show("printing", waiting);
  awaitConfirmation(done).finally(() => clearTimeout(slow));
}

async function awaitConfirmation(done) {
  const id = done.answer.job_id;
  let job = null;
  const early = done.confirmation ? await done.confirmation : null; // asked alongside the pack
  if (early?.ok && early.body.job_id === id && !unsettled(early.body)) job = early.body;
  for (let tries = 0; !job && tries < 1000; tries++) {
    const result = await call("GET", `/api/v1/jobs/${encodeURIComponent(id)}?wait_s=10`);
    if (result.ok && !unsettled(result.body)) { job = result.body; break; }
    if (!result.ok && result.status === 404) break; // forgotten: nothing to announce
    if (!result.ok) await new Promise((resolve) => setTimeout(resolve, 500)); // busy or unreachable
  }
  const current = page.confirming === id;
  if (current) page.confirming = null;
  const here = current && !midPack(); // the panel still shows this label
  if (!job) return;
  if (job.status === "printed") return printedLabel({ ...done, answer: { ...done.answer, status: "printed" } }, here);
  if (job.status === "sent") return unconfirmed(done, job, here);
  if (job.status === "held") { // the printer faulted with the label inside: it prints once fixed
    page.watched.set(id, { ...job, askedAt: Date.now() });
    if (here) {
      page.heldCode = "held_job";
      page.lastJob = null;
      show("held", { word: "s_held", order: job.order_ref, detail: heldSaid(job),
        todo: "held_todo", parcel: parcelLine(job) });
    }
    return;
  }
  rememberFailed(job.order_ref, jobSaid(job));
  if (here) {
    show("error", { word: "s_error", order: job.order_ref, detail: jobSaid(job),
      todo: "held_unsure_todo" });
  } else {
    renderRecent();
  }
}

function printedLabel(done, here) {
  const answer = done.answer;
  remember(answer, done.reprint);
  if (!here) return renderRecent();
  show("printed", { word: "s_printed", order: answer.order_ref, detail: "printed_detail",
    todo: done.todo || "printed_todo", arg: answer, parcel: parcelLine(answer, done.total) });
}

// What a label's outcome says to the packer, as a code the page words (the agent's English
// message stays for the fallback): sent but never confirmed, failed (it may have printed in
// part), or unknown (the agent stopped while sending it).
const JOB_CODES = { sent: "label_unconfirmed", failed: "label_maybe_printed", unknown: "label_outcome_unknown" };
function jobSaid(job) {
  const code = JOB_CODES[job.status];
  return { raw: job.message || job.status, code, params: { printer: job.printer, order_ref: job.order_ref } };
}

// The label went out but its printer could not confirm it: never PRINTED ✓; the packer checks it.
function unconfirmed(done, job, here) {
  remember({ ...done.answer, status: "sent", message: job.message }, done.reprint);
  if (!here) return renderRecent();
  show("sent", { word: "s_sent", order: job.order_ref, detail: jobSaid(job), todo: "sent_todo",
    parcel: parcelLine(done.answer, done.total) });
}

// The agent holds the label and prints it when it can: the held list follows it from here.
function held(answer) {
  page.heldCode = "held_job";
  page.watched.set(answer.job_id, { ...answer, askedAt: Date.now() });
  show("held", { word: "s_held", order: answer.order_ref, detail: heldSaid(answer), todo: "held_todo",
    parcel: parcelLine(answer) });
}

function heldPrinterMessage() {
  const faulty = (page.snapshot?.printers || []).filter((p) => p.state !== "ready");
  return faulty.map((p) => p.message).join(" ");
}

// Why a held label waits, as the agent said it: the held list names each held job's reason with
// a code; a label not listed yet waits for its printer, whose fault the snapshot names.
function heldSaid(job) {
  if (job.code) return said(job);
  const listed = (page.snapshot?.held || []).find((h) => h.job_id === job.job_id);
  if (listed) return said({ ...listed, message: job.message || listed.message });
  const printer = (page.snapshot?.printers || []).find((p) => p.id === job.printer && p.code === "printer_fault")
    || (page.snapshot?.printers || []).find((p) => p.code === "printer_fault");
  const raw = job.message || heldPrinterMessage();
  return printer ? { raw, code: "held_printer_fault", params: printer.params } : { raw };
}

async function zeroOrTare(action) {
  const code = page.snapshot?.station;
  if (!code) return;
  const result = await call("POST", `/api/v1/stations/${encodeURIComponent(code)}/scale/${action}`);
  let note;
  if (result.ok) note = t(action === "zero" ? "zero_done" : "tare_done");
  else if (result.status === 404 && result.error.code === "not_found") note = t("zero_missing");
  else note = sayText(said(result.error));
  page.scaleNote = note;
  $("scale-message").textContent = note;
  setTimeout(() => { page.scaleNote = null; renderSnapshot(); }, 5000);
  focusScan();
}

// -- reprint ---------------------------------------------------------------------------------

function openReprint() {
  if (!page.lastJob || $("reprint").hidden) return;
  const job = page.lastJob;
  $("reprint-which").textContent = t("reprint_which", { ...job, parcel: job.parcel || 1,
    m: parcelLine(job, job.total).arg.m, doc: docName(job.document) });
  $("reprint-dialog").showModal();
  document.querySelector('input[name="reason"]:checked').focus();
}

async function reprint(event) {
  event.preventDefault();
  const choice = document.querySelector('input[name="reason"]:checked').value;
  const reason = choice === "other" ? $("reason-other").value.trim() : choice;
  if (!reason) { $("reason-other").placeholder = t("reason_needed"); $("reason-other").focus(); return; }
  $("reprint-dialog").close();
  const job = page.lastJob;
  page.busy = true;
  show("printing", { word: "s_printing", order: job.order_ref, detail: "printing_detail" });
  const result = await call("POST", `/api/v1/jobs/${encodeURIComponent(job.job_id)}/reprint`,
    { reason, request_id: newRequestId() });
  page.busy = false;
  if (!result.ok) {
    const unsure = result.error.code.startsWith("printer_");
    show(unsure ? "held" : "error", { word: unsure ? "s_held" : "s_error", order: job.order_ref,
      detail: said(result.error), todo: unsure ? "held_unsure_todo" : "error_todo" });
  } else if (result.body.status === "held") { // accepted, not printed: announced when it prints
    held(result.body);
  } else {
    sentLabel({ answer: result.body, total: job.total, todo: "reprinted", reprint: true });
  }
  focusScan();
  advance();
}

// -- an order's parcels: add one, close the order, void one parcel's label ----------------------

// Add parcel: one more parcel of the order last read than it expects (weighed, then printed).
function addParcel() {
  const order = currentOrder();
  if (!order || $("add-parcel").hidden) return;
  page.queue.push({ ref: order.order_ref, requestId: newRequestId(), dock: false, extra: true });
  advance();
}

// A close or a void the packer confirmed: the panel says what came of it, then the order is read again.
async function act(what, request, kind) {
  page.busy = true;
  render();
  const result = await request();
  page.busy = false;
  if (!result.ok) {
    show("error", { word: "s_error", order: what.order_ref, detail: said(result.error), todo: "error_todo" });
  } else if (kind === "voided") {
    if (page.lastJob?.order_ref === what.order_ref && page.lastJob.parcel === what.parcel) page.lastJob = null;
    show("voided", { word: "s_voided", order: what.order_ref, detail: "voided_detail", todo: "voided_todo", arg: result.body });
  } else {
    show("closed", { word: "s_closed", order: what.order_ref, detail: "closed_detail", todo: "closed_todo", arg: result.body });
  }
  await refreshOrder(what.order_ref);
  render();
  focusScan();
  advance();
}

// -- the session: the agent's API answers this screen only while it holds a station session ----
// Opened on the agent's PC, the page has one from the start and gets a new one by asking (after an
// agent restart); a screen on another PC pairs once with a one-time code IT reads from the agent.

let signingIn = null;

function signIn() {
  signingIn ??= (async () => {
    try {
      const response = await fetch("/api/v1/session", { cache: "no-store" });
      const answer = await response.json();
      if (answer.signed_in) return true;
    } catch {
      return false; // the agent is not answering: the stream's banner says so, and it retries
    }
    showPairing();
    return false;
  })().finally(() => { signingIn = null; });
  return signingIn;
}

function showPairing() {
  page.pairing = true;
  document.querySelector("main").hidden = true;
  $("pair-panel").hidden = false;
  $("pair-code").focus();
}

async function pair(event) {
  event.preventDefault();
  const code = $("pair-code").value.trim();
  if (!code) return;
  let response;
  try {
    response = await fetch("/api/v1/pair", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ code }),
    });
  } catch {
    $("pair-error").textContent = t("agent_lost");
    return;
  }
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    $("pair-error").textContent = answer.error ? sayText(said(answer.error)) : `HTTP ${response.status}`;
    $("pair-code").select();
    return;
  }
  page.pairing = false;
  $("pair-code").value = "";
  $("pair-error").textContent = "";
  $("pair-panel").hidden = true;
  document.querySelector("main").hidden = false;
  focusScan();
  start();
}

// -- the live stream -------------------------------------------------------------------------

function onSnapshot(snapshot) {
  const faultBefore = stationFault();
  page.snapshot = snapshot;
  $("agent-banner").hidden = true;
  trackHeld(snapshot);
  const fault = stationFault();
  if (!fault) page.faultSince = Infinity;
  else if (!faultBefore) page.faultSince = performance.now();
  const outcomeBeforeFault = fault && OUTCOMES.includes(page.state) && page.viewAt < page.faultSince;
  if (page.state === "starting" || (outcomeBeforeFault && !midPack())) {
    page.state = "ready"; // the fault shows now, and READY once it is fixed
    page.view = page.dock ? DOCK_READY : READY;
  }
  const printersReady = snapshot.printers.length > 0 && snapshot.printers.every((p) => p.state === "ready");
  if (page.state === "held" && printersReady && page.heldCode !== "held_job") {
    if (page.pending && NOTHING_SENT.has(page.heldCode)) {
      pack(); // the label never left: print it now
      return;
    }
    page.heldCode = null;
    show("ready", READY);
    advance();
    return;
  }
  if (page.state === "weighing" && page.pending && $("auto").checked && scaleReady(page.pending)) {
    pack();
    return;
  }
  if (fault?.message !== faultBefore?.message || document.body.dataset.state !== shown()[0]) {
    render();
    return;
  }
  renderSnapshot();
  renderHeld();
}

function listen(code) {
  const source = new EventSource(`/api/v1/stations/${encodeURIComponent(code)}/events`);
  source.onmessage = (event) => onSnapshot(JSON.parse(event.data));
  source.onerror = () => {
    if (source.readyState !== EventSource.OPEN) $("agent-banner").hidden = false;
    // Refused (not just unreachable: that one retries by itself), e.g. a session lost to an agent
    // restart: sign in again and listen anew.
    if (source.readyState === EventSource.CLOSED) {
      setTimeout(async () => { if (await signIn()) listen(code); }, 1000);
    }
  };
  source.addEventListener("gone", () => { source.close(); start(); });
}

async function start() {
  if (!(await signIn())) return; // the pairing form starts the page once this screen is paired
  let code = page.station;
  const result = await call("GET", "/api/v1/stations");
  const stations = result.ok ? result.body.stations : [];
  if (!code) {
    if (!stations.length) {
      show("error", { word: "s_error", detail: "no_station", todo: "" });
      setTimeout(start, 3000);
      return;
    }
    code = stations[0].code;
  }
  page.station = code;
  $("station-code").textContent = code;
  const mode = new URLSearchParams(location.search).get("mode");
  const synced = (stations.find((s) => s.code === code) || {}).mode; // the station's config
  page.dock = startsInDock(mode, synced, localStorage.getItem(dockKey(code)));
  if (page.dock) show("ready", DOCK_READY);
  listen(code);
  watchWaves(code, { t, call, newRequestId, focusScan, say: (error) => sayText(said(error)) });
  watchPacker(code, { t, call, focusScan, say: (error) => sayText(said(error)) });
}

// -- dock mode: scan a parcel's label to hand it over to the carrier ------------------------------

// ?mode= wins; else the station's synced mode "dock"; else the toggle as last left here.
export function startsInDock(urlMode, syncedMode, remembered) {
  if (urlMode === "dock" || urlMode === "pack") return urlMode === "dock";
  return syncedMode === "dock" || remembered === "1";
}

function dockKey(code) {
  return `dockside.dock.${code}`;
}

function setDock(on) {
  page.dock = on;
  if (page.station) localStorage.setItem(dockKey(page.station), on ? "1" : "0");
  page.pending = null;
  page.queue = [];
  show("ready", on ? DOCK_READY : READY);
}

async function handOver(scan) {
  page.busy = true;
  show("printing", { word: "s_handing", order: scan, detail: "" });
  const result = await call("POST", "/api/v1/handover",
    { scan, station: page.snapshot?.station ?? page.station, request_id: newRequestId() });
  page.busy = false;
  handedOver(scan, result);
  advance();
}

function handedOver(scan, result) {
  if (result.ok) {
    const already = result.body.status === "already_handed_over";
    show(already ? "packed" : "printed", {
      word: already ? "s_already_handed" : "s_handed", order: result.body.tracking_number,
      detail: "handed_detail", todo: already ? "already_handed_todo" : "handed_todo", arg: result.body,
    });
  } else {
    show("error", { word: "s_error", order: scan, detail: said(result.error), todo: "dock_error_todo" });
  }
}

// -- keyboard: the scanner types into the scan field, function keys do the rest --------------

function focusScan() {
  if (page.pairing) $("pair-code").focus();
  else if (!document.querySelector("dialog[open]")) $("scan").focus();
}

// After a dialog closes: Chromium hands focus back to the scan field itself, but when a click
// closed the dialog that field takes no typing (keys arrive, no text: the next scan would vanish)
// until it is focused anew.
function refocusScan() {
  if (document.activeElement === $("scan")) $("scan").blur();
  focusScan();
}

// Esc: forget the order under way and the scans waiting behind it (a label already sent stays sent).
function clear() {
  page.pending = null;
  page.queue = [];
  page.heldCode = null;
  $("scan").value = "";
  $("scan-note").hidden = true;
  show("ready", page.dock ? DOCK_READY : READY);
}

function wire() {
  const scan = $("scan");
  scan.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      const ref = scan.value;
      scan.value = "";
      scanned(ref);
    }
  });
  // Keep the scan field focused so a keyboard-wedge scanner always types into it; buttons and
  // the dialog may take focus for a moment, then it comes back.
  scan.addEventListener("blur", () => setTimeout(() => {
    const active = document.activeElement;
    const interactive = active && active !== document.body && active.closest("button, dialog, label, input");
    if (!interactive) focusScan();
  }, 0));
  document.addEventListener("keydown", (event) => {
    if (document.querySelector("dialog[open]") || page.pairing) return;
    const keys = { F2: () => pack(), F3: () => addParcel(), F4: () => openReprint(), F6: () => openSignIn(), F7: () => openClose(),
      F8: () => zeroOrTare("zero"),
      F9: () => zeroOrTare("tare"), Escape: () => clear() };
    if (keys[event.key]) { event.preventDefault(); keys[event.key](); return; }
    if (event.altKey && event.key.toLowerCase() === "l") { event.preventDefault(); toggleLang(); return; }
    if (event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey && document.activeElement !== scan) scan.focus();
  });
  $("print").addEventListener("click", () => { pack(); focusScan(); });
  $("reprint").addEventListener("click", openReprint);
  $("add-parcel").addEventListener("click", () => { addParcel(); focusScan(); });
  $("close").addEventListener("click", openClose);
  $("zero").addEventListener("click", () => zeroOrTare("zero"));
  $("tare").addEventListener("click", () => zeroOrTare("tare"));
  $("lang").addEventListener("change", (event) => { setLang(event.target.value); focusScan(); });
  $("auto").addEventListener("change", focusScan);
  $("dock").addEventListener("change", (event) => { setDock(event.target.checked); focusScan(); });
  $("reprint-form").addEventListener("submit", reprint);
  $("reprint-cancel").addEventListener("click", () => { $("reprint-dialog").close(); });
  $("reprint-dialog").addEventListener("close", refocusScan);
  $("pair-form").addEventListener("submit", pair);
  $("reason-other").addEventListener("focus", () => { document.querySelector('input[value="other"]').checked = true; });
}

function toggleLang() {
  setLang(page.lang === "en" ? page.otherLang : "en");
}

// Speak `lang` from now on (and on this screen's next loads).
function setLang(lang) {
  if (!LANGS.includes(lang)) return;
  page.lang = lang;
  localStorage.setItem("dockside.lang", lang);
  if (lang !== "en") {
    page.otherLang = lang;
    localStorage.setItem("dockside.other_lang", lang);
  }
  render();
}

wire();
wireFloor({ t, call, focusScan, refocusScan, say: (error) => sayText(said(error)) });
wireParcels({ t, call, focusScan, refocusScan, act, busy: midPack, hidden: () => page.dock });
wireItemCheck({ t, call, show, snapshot: () => page.snapshot, pending: () => page.pending, proceed: readyToPack,
  resume: (ref) => { page.queue.push({ ref, requestId: newRequestId(), dock: false }); advance(); } });
render();
focusScan();
start();
// A held label that printed while no snapshot came (nothing else changed) is still announced.
setInterval(() => { if (page.snapshot) trackHeld(page.snapshot); }, 500);
