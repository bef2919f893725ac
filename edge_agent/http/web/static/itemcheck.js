// The item check at the station: where the warehouse checks items (the snapshot's `item_check`),
// an order scanned for packing first shows its lines; each item scanned (its EAN/UPC, a GS1 code
// or its SKU) is counted by the agent, and a wrong item or one unit too many is refused loudly
// (a red panel and the failure sound). Once every line's count matches, the order goes on to
// weighing and printing. The count lives in the agent, so a reload resumes it where it was.
// The agent's routes: edge_agent/http/item_check_api.py.

import { playSound } from "/station/floor.js";

const $ = (id) => document.getElementById(id);

// The order under check: {item, check} (item is the page's pending scan), or null.
// `refused` is the last scan refused since the last one counted (shown under the lines).
const state = { active: null, helpers: null, sending: false, waiting: [], refused: "", lang: "" };

function t(key, arg) {
  return state.helpers.t(key, arg);
}

function base() {
  const code = state.helpers.snapshot()?.station;
  return `/api/v1/stations/${encodeURIComponent(code)}/item-check`;
}

// Called by the page once it knows which parcel of which order a scan packs: true when the item
// check takes over (the order goes on to weighing once its items are scanned), false to go on now.
export async function itemsFirst(item) {
  const snapshot = state.helpers.snapshot();
  if (!snapshot?.item_check) return false;
  const found = await state.helpers.call("GET", `${base()}/${encodeURIComponent(item.ref)}`);
  if (state.helpers.pending() !== item) return true; // cleared (Esc) while the agent was asked
  if (!found.ok) return false; // the pack answers for the order (it refuses it if items are due)
  if (found.body.complete) return false;
  state.active = { item, check: found.body };
  state.refused = "";
  showCheck(found.body.restarted ? "items_restarted" : "items_todo");
  return true;
}

// Called by the page for every scan: true when it is an item of the order under check (counted
// here), false when no check is under way (the page takes it as an order).
export function itemScanned(raw) {
  if (!state.active) return false;
  state.waiting.push(raw);
  next();
  return true;
}

// Scans are counted one after the other: the agent's answer to each decides the next view.
async function next() {
  if (state.sending || !state.waiting.length || !state.active) return;
  state.sending = true;
  const raw = state.waiting.shift();
  const { item } = state.active;
  const result = await state.helpers.call("POST", `${base()}/${encodeURIComponent(item.ref)}/scan`, { scan: raw });
  state.sending = false;
  if (!state.active || state.active.item !== item) return; // Esc while it was counted
  if (result.ok) {
    state.active.check = result.body;
    state.refused = "";
    if (result.body.complete) {
      finish();
      return;
    }
    showCheck("items_todo");
  } else if (["wrong_item", "extra_unit"].includes(result.error.code)) {
    refused(result.error.code, raw);
  } else {
    refused("item_unreadable", raw, result.error);
  }
  next();
}

function finish() {
  const { item } = state.active;
  state.active = null;
  state.waiting = [];
  renderBox(null);
  state.helpers.proceed(item);
}

function summary(check) {
  return { scanned: check.units_scanned, units: check.units };
}

function showCheck(todo) {
  const { check } = state.active;
  state.helpers.show("items", { word: "s_items", order: check.order_ref, detail: "items_detail", arg: summary(check), todo });
  renderBox(check);
}

// Loud: the panel turns red with what to do, and the failure sound plays.
// `error` is the agent's answer when it is not one of the page's own words (its code, params and
// English message: the page words it in its language where it can).
function refused(code, raw, error) {
  const { check } = state.active;
  const scan = raw.length > 40 ? `${raw.slice(0, 40)}…` : raw;
  const detail = error ? { raw: error.message, code: error.code, params: error.params } : `${code}_detail`;
  state.refused = scan;
  state.helpers.show("item_refused", { word: `s_${code}`, order: check.order_ref, detail, arg: { scan }, todo: `${code}_todo` });
  playSound("failure");
  renderBox(check);
}

function renderBox(check) {
  const refusedScan = state.refused;
  const box = ensureBox();
  box.hidden = !check;
  if (!check) return;
  const title = box.querySelector(".items-title");
  title.textContent = t("items_title", summary(check));
  const rows = check.lines.map((line) => {
    const li = document.createElement("li");
    const done = line.scanned >= line.quantity;
    li.className = done ? "item-line item-done" : "item-line";
    li.dataset.sku = line.sku;
    const mark = document.createElement("span");
    mark.className = "item-mark";
    mark.textContent = done ? "✓" : "·";
    const what = document.createElement("span");
    what.className = "item-what";
    what.textContent = [line.sku, line.description, line.barcode].filter(Boolean).join(" · ");
    what.title = what.textContent;
    const count = document.createElement("span");
    count.className = "item-count";
    count.textContent = `${line.scanned} / ${line.quantity}`;
    li.append(mark, what, count);
    return li;
  });
  box.querySelector(".items-list").replaceChildren(...rows);
  const last = box.querySelector(".items-refused");
  last.hidden = !refusedScan;
  last.textContent = refusedScan ? `✗ ${refusedScan}` : "";
}

function ensureBox() {
  let box = $("items-box");
  if (box) return box;
  box = document.createElement("div");
  box.id = "items-box";
  box.className = "items-box";
  box.hidden = true;
  const title = document.createElement("div");
  title.className = "items-title";
  const list = document.createElement("ol");
  list.className = "items-list";
  const last = document.createElement("div");
  last.className = "items-refused";
  last.hidden = true;
  box.append(title, list, last);
  const panel = $("state-panel");
  panel.insertBefore(box, $("queue-box") || null);
  return box;
}

// Esc: the page forgets the order; the agent keeps its count, and a reload no longer resumes it.
function setAside() {
  if (!state.active) return;
  state.active = null;
  state.waiting = [];
  renderBox(null);
  state.helpers.call("DELETE", base());
}

// After a reload: the check the station was at (and did not finish) is resumed, as if its order
// was scanned again.
async function resumeAfterReload() {
  const snapshot = state.helpers.snapshot();
  if (!snapshot) {
    setTimeout(resumeAfterReload, 100);
    return;
  }
  if (!snapshot.item_check) return;
  const found = await state.helpers.call("GET", base());
  const check = found.ok ? found.body.check : null;
  if (check && !check.complete && !state.active && !state.helpers.pending()) state.helpers.resume(check.order_ref);
}

const STYLE = `
body[data-state="items"] .state-panel { background: #0f766e; }
body[data-state="item_refused"] .state-panel { background: repeating-linear-gradient(135deg, #b91c1c 0 28px, #991b1b 28px 56px); }
.items-box { margin-top: 16px; background: rgba(255,255,255,.94); color: #0f172a; border-radius: 10px; padding: 12px 16px; }
.items-title { font-weight: 700; font-size: 20px; margin-bottom: 6px; }
.items-list { list-style: none; margin: 0; padding: 0; max-height: 40vh; overflow-y: auto; }
.item-line { display: flex; gap: 12px; align-items: baseline; font-size: 20px; padding: 4px 0; border-top: 1px solid #d6dce5; }
.item-what { flex: 1; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.item-count { font: 700 24px/1 "DejaVu Sans Mono", monospace; }
.item-done { color: #047857; }
.item-mark { width: 1.2em; font-weight: 700; }
.items-refused { margin-top: 8px; font-weight: 700; color: #b91c1c; font-size: 20px; }
`;

export function wireItemCheck(helpers) {
  state.helpers = helpers;
  const style = document.createElement("style");
  style.textContent = STYLE;
  document.head.append(style);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !document.querySelector("dialog[open]")) setAside();
  });
  // The page's language changed: the lines' title follows.
  new MutationObserver(() => {
    const lang = document.documentElement.lang;
    if (lang === state.lang) return;
    state.lang = lang;
    if (state.active) renderBox(state.active.check);
  })
    .observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
  resumeAfterReload();
}
