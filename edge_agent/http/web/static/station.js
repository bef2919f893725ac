// The packing station page: scan -> weigh -> print, driven by the agent's event stream.
import { WORDS, fmtKg } from "/station/i18n.js";
import { renderWaves, watchWaves } from "/station/waves.js";

const $ = (id) => document.getElementById(id);
const NOTHING_SENT = new Set(["printer_unreachable", "printer_not_configured",
  "printer_language_unsupported", "printer_connection_unsupported"]);

const page = {
  lang: localStorage.getItem("dockside.lang") || (navigator.language.startsWith("zh") ? "zh" : "en"),
  station: new URLSearchParams(location.search).get("station"),
  snapshot: null,
  state: "ready",
  view: { word: "s_ready", order: "", detail: "ready_detail", todo: "" },
  pending: null,        // {ref, requestId}: an order scanned and not printed yet
  busy: false,
  lastJob: null,        // the last answer with a job id: what Reprint reprints
  heldCode: null,
  recent: JSON.parse(sessionStorage.getItem("dockside.recent") || "[]"),
  pairing: false,       // this screen waits for IT's pairing code
  dock: false,          // dock mode: a scan hands the parcel over (?mode=dock, or the toggle)
};

function t(key, arg) {
  const word = WORDS[page.lang][key] ?? WORDS.en[key] ?? key;
  return typeof word === "function" ? word(arg) : word;
}

function newRequestId() {
  return globalThis.crypto?.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

// -- showing the state ----------------------------------------------------------------------

function show(state, view) {
  page.state = state;
  page.view = view;
  render();
}

function text(value, arg) {
  if (value == null) return "";
  if (typeof value === "object") return value.raw;
  return t(value, arg);
}

function render() {
  document.documentElement.lang = page.lang === "zh" ? "zh-Hans" : "en";
  document.body.dataset.state = page.state;
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  document.body.dataset.mode = page.dock ? "dock" : "pack";
  $("dock").checked = page.dock;
  if (page.dock) {
    $("scan-help").textContent = t("dock_help");
    document.querySelector(".scan-label").textContent = t("dock_label");
  }
  $("lang").textContent = t("lang_button");
  const v = page.view;
  $("state-word").textContent = text(v.word);
  $("state-order").textContent = v.order || "";
  $("state-detail").textContent = text(v.detail, v.arg);
  $("state-todo").textContent = text(v.todo, v.arg);
  $("print").hidden = !(page.pending && !page.busy && ["weighing", "error"].includes(page.state));
  $("reprint").hidden = !(page.lastJob && ["printed", "ready", "error", "held"].includes(page.state)
    && page.lastJob.status !== "failed_nothing");
  renderSnapshot();
  renderRecent();
  renderWaves();
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
  $("weight-value").textContent = scale && scale.weight_g != null ? fmtKg(scale.weight_g) : "–";
  const stable = $("stable");
  const used = weightUsed(scale);
  stable.className = `stable ${scale && scale.stable && !used ? "stable-yes" : "stable-no"}`;
  $("stable-text").textContent = !scale ? t("no_scale") : used ? t("next_parcel") : t(scale.stable ? "stable" : "unstable");
  if (!page.scaleNote) $("scale-message").textContent = scale && scale.state !== "ok" ? scale.message : "";
  const list = $("printers");
  list.replaceChildren(...s.printers.map((p) => {
    const li = document.createElement("li");
    const badge = document.createElement("span");
    badge.className = `badge badge-${p.state}`;
    badge.textContent = t(`p_${p.state}`);
    const what = document.createElement("span");
    what.textContent = `${p.id} (${p.role}) — ${p.message}`;
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
    const ref = document.createElement("span");
    ref.className = "ref";
    ref.textContent = r.order_ref;
    const what = document.createElement("span");
    what.className = "muted";
    what.textContent = `${r.carrier} · ${fmtKg(r.weight_g)} kg${r.reprint ? " · ↻" : ""}`;
    li.append(ref, what);
    return li;
  }));
}

function remember(answer, reprint = false) {
  page.recent.unshift({ order_ref: answer.order_ref, carrier: answer.carrier, weight_g: answer.weight_g, reprint });
  page.recent = page.recent.slice(0, 20);
  sessionStorage.setItem("dockside.recent", JSON.stringify(page.recent));
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
  if (response.status === 401 && !retried && await signIn()) return call(method, path, body, true);
  const json = await response.json().catch(() => ({}));
  if (response.ok) return { ok: true, status: response.status, body: json };
  return { ok: false, status: response.status, error: json.error || { code: "http_error", message: `HTTP ${response.status}` } };
}

// A weight serves one parcel: the agent says whether the scale holds one not packed yet. The
// order that took the weight may ask again (the agent answers it, e.g. "already packed").
function scaleReady(ref) {
  const scale = page.snapshot?.scale;
  if (!scale) return true; // no scale: let the agent say what to do
  return scale.parcel_ready === true || Boolean(scale.stable && scale.last_used && scale.last_used.order_ref === ref);
}

// The scale settled, but on the weight the last pack took (or on nothing): the next parcel is due.
function weightUsed(scale) {
  return Boolean(scale && scale.stable && !scale.parcel_ready && scale.last_used);
}

function scanned(ref) {
  ref = ref.trim();
  if (!ref || page.busy) return;
  if (page.dock) { handOver(ref); return; }
  page.pending = { ref, requestId: newRequestId() };
  page.heldCode = null;
  if ($("auto").checked && scaleReady(ref)) {
    pack();
  } else {
    const detail = weightUsed(page.snapshot?.scale) ? "next_parcel_detail"
      : $("auto").checked ? "weighing_detail" : "weighing_manual";
    show("weighing", { word: "s_weighing", order: ref, detail });
  }
}

async function pack() {
  const pending = page.pending;
  if (!pending || page.busy) return;
  page.busy = true;
  show("printing", { word: "s_printing", order: pending.ref, detail: "printing_detail" });
  const result = await call("POST", "/api/v1/pack",
    { order_ref: pending.ref, station: page.snapshot?.station ?? page.station, request_id: pending.requestId });
  page.busy = false;
  if (result.ok) return packed(result.body);
  const { code, message } = result.error;
  if (code.startsWith("printer_")) {
    page.heldCode = code;
    if (!NOTHING_SENT.has(code)) page.pending = null; // it may have printed: a person decides
    return show("held", { word: "s_held", order: pending.ref, detail: { raw: message },
      todo: NOTHING_SENT.has(code) ? "held_todo" : "held_unsure_todo" });
  }
  if (code.startsWith("scale_")) {
    return show("error", { word: "s_error", order: pending.ref, detail: { raw: message }, todo: "scale_todo" });
  }
  page.pending = null;
  show("error", { word: "s_error", order: pending.ref, detail: { raw: message }, todo: "error_todo" });
}

function packed(answer) {
  page.pending = null;
  const scale = page.snapshot?.scale;
  if (scale && answer.status !== "already_packed") { // until the agent's next snapshot: the weight is spent
    scale.parcel_ready = false;
    scale.last_used = { grams: answer.weight_g, order_ref: answer.order_ref };
  }
  page.lastJob = answer.status === "held" ? null : answer; // a held label has nothing to reprint yet
  if (answer.status === "held") {
    page.heldCode = "held_job";
    show("held", { word: "s_held", order: answer.order_ref, detail: { raw: answer.message || heldPrinterMessage() }, todo: "held_todo" });
    watchHeldJob(answer.job_id); // after show(): it follows the job while the page is held
    return;
  }
  if (answer.status === "already_packed") {
    return show("error", { word: "s_packed", order: answer.order_ref, detail: "packed_detail", todo: "packed_todo", arg: answer });
  }
  remember(answer);
  show("printed", { word: "s_printed", order: answer.order_ref, detail: "printed_detail", todo: "printed_todo", arg: answer });
}

function heldPrinterMessage() {
  const faulty = (page.snapshot?.printers || []).filter((p) => p.state !== "ready");
  return faulty.map((p) => p.message).join(" ");
}

// The agent keeps a held label and prints it when its printer is ready: follow that job.
async function watchHeldJob(jobId) {
  while (page.state === "held" && page.heldCode === "held_job") {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const result = await call("GET", `/api/v1/jobs/${encodeURIComponent(jobId)}`);
    if (!result.ok || page.heldCode !== "held_job") continue;
    if (result.body.status === "printed") {
      page.heldCode = null;
      return packed({ ...result.body, status: "printed" });
    }
    if (result.body.status !== "held") {
      page.heldCode = null;
      return show("error", { word: "s_error", order: result.body.order_ref,
        detail: { raw: result.body.error || result.body.status }, todo: "held_unsure_todo" });
    }
  }
}

async function zeroOrTare(action) {
  const code = page.snapshot?.station;
  if (!code) return;
  const result = await call("POST", `/api/v1/stations/${encodeURIComponent(code)}/scale/${action}`);
  let note;
  if (result.ok) note = t(action === "zero" ? "zero_done" : "tare_done");
  else if (result.status === 404 && result.error.code === "not_found") note = t("zero_missing");
  else note = result.error.message;
  page.scaleNote = note;
  $("scale-message").textContent = note;
  setTimeout(() => { page.scaleNote = null; renderSnapshot(); }, 5000);
  focusScan();
}

// -- reprint ---------------------------------------------------------------------------------

function openReprint() {
  if (!page.lastJob || $("reprint").hidden) return;
  $("reprint-which").textContent = `${page.lastJob.order_ref} · ${page.lastJob.carrier} ${page.lastJob.service}`;
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
  show("printing", { word: "s_printing", order: job.order_ref, detail: "printing_detail" });
  const result = await call("POST", `/api/v1/jobs/${encodeURIComponent(job.job_id)}/reprint`,
    { reason, request_id: newRequestId() });
  if (!result.ok) {
    const held = result.error.code.startsWith("printer_");
    return show(held ? "held" : "error", { word: held ? "s_held" : "s_error", order: job.order_ref,
      detail: { raw: result.error.message }, todo: held ? "held_unsure_todo" : "error_todo" });
  }
  remember(result.body, true);
  show("printed", { word: "s_printed", order: job.order_ref, detail: "printed_detail", arg: result.body, todo: "reprinted" });
  focusScan();
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
    $("pair-error").textContent = answer.error?.message || `HTTP ${response.status}`;
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
  page.snapshot = snapshot;
  $("agent-banner").hidden = true;
  const printersReady = snapshot.printers.length > 0 && snapshot.printers.every((p) => p.state === "ready");
  if (page.state === "held" && printersReady && page.heldCode !== "held_job") {
    if (page.pending && NOTHING_SENT.has(page.heldCode)) {
      pack(); // the label never left: print it now
      return;
    }
    page.heldCode = null;
    show("ready", { word: "s_ready", detail: "ready_detail" });
    return;
  }
  if (page.state === "weighing" && page.pending && $("auto").checked && scaleReady(page.pending.ref)) {
    pack();
    return;
  }
  renderSnapshot();
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
  if (page.dock) show("ready", { word: "s_ready", detail: "dock_ready" });
  listen(code);
  watchWaves(code, { t, call, newRequestId, focusScan });
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
  show("ready", { word: "s_ready", detail: on ? "dock_ready" : "ready_detail" });
}

async function handOver(scan) {
  page.busy = true;
  show("printing", { word: "s_handing", order: scan, detail: "" });
  const result = await call("POST", "/api/v1/handover",
    { scan, station: page.snapshot?.station ?? page.station, request_id: newRequestId() });
  page.busy = false;
  if (result.ok) {
    const already = result.body.status === "already_handed_over";
    show(already ? "packed" : "printed", {
      word: already ? "s_already_handed" : "s_handed", order: result.body.tracking_number,
      detail: "handed_detail", todo: already ? "already_handed_todo" : "handed_todo", arg: result.body,
    });
  } else {
    show("error", { word: "s_error", order: scan, detail: { raw: result.error.message }, todo: "dock_error_todo" });
  }
}

// -- keyboard: the scanner types into the scan field, function keys do the rest --------------

function focusScan() {
  if (page.pairing) $("pair-code").focus();
  else if (!$("reprint-dialog").open) $("scan").focus();
}

function clear() {
  page.pending = null;
  page.heldCode = null;
  $("scan").value = "";
  show("ready", { word: "s_ready", detail: "ready_detail" });
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
    if ($("reprint-dialog").open || page.pairing) return;
    const keys = { F2: () => pack(), F4: () => openReprint(), F8: () => zeroOrTare("zero"),
      F9: () => zeroOrTare("tare"), Escape: () => clear() };
    if (keys[event.key]) { event.preventDefault(); keys[event.key](); return; }
    if (event.altKey && event.key.toLowerCase() === "l") { event.preventDefault(); toggleLang(); return; }
    if (event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey && document.activeElement !== scan) scan.focus();
  });
  $("print").addEventListener("click", () => { pack(); focusScan(); });
  $("reprint").addEventListener("click", openReprint);
  $("zero").addEventListener("click", () => zeroOrTare("zero"));
  $("tare").addEventListener("click", () => zeroOrTare("tare"));
  $("lang").addEventListener("click", () => { toggleLang(); focusScan(); });
  $("auto").addEventListener("change", focusScan);
  $("dock").addEventListener("change", (event) => { setDock(event.target.checked); focusScan(); });
  $("reprint-form").addEventListener("submit", reprint);
  $("reprint-cancel").addEventListener("click", () => { $("reprint-dialog").close(); });
  $("reprint-dialog").addEventListener("close", focusScan);
  $("pair-form").addEventListener("submit", pair);
  $("reason-other").addEventListener("focus", () => { document.querySelector('input[value="other"]').checked = true; });
}

function toggleLang() {
  page.lang = page.lang === "zh" ? "en" : "zh";
  localStorage.setItem("dockside.lang", page.lang);
  render();
}

wire();
render();
focusScan();
start();
