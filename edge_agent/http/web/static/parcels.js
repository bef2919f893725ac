// An order's parcels at the station: which parcel a scan packs, "parcel n of m", and the
// Parcels card with its Void buttons, plus the Close order and Void parcel dialogs. The order
// is read from the agent (`GET /api/v1/orders/{ref}`: its labelled parcels and the count the OMS
// expects); the page keeps only the last one it read.

const $ = (id) => document.getElementById(id);
const MAX_PARCELS = 99;

const state = { order: null, helpers: null, voiding: null };

function t(key, arg) {
  return state.helpers.t(key, arg);
}

// The agent's answer about an order, as the page uses it: its reference (as the agent read the
// scan), the parcels the OMS expects (null when it did not say) and the labelled ones.
export function readOrder(body) {
  const parcels = (body.parcels || []).map((p) => ({ parcel: p.parcel, tracking_number: p.tracking_number,
    status: p.status, job_id: p.job_id }));
  return { order_ref: body.order_ref, state: body.state, expected: body.expected_parcels ?? null, parcels };
}

function labelled(order) {
  return new Set(order.parcels.map((p) => p.parcel));
}

// The parcel a scan of the order packs: the first of the expected ones with no label; null when
// each has one (the agent then answers "already packed").
export function nextParcel(order) {
  const done = labelled(order);
  for (let n = 1; n <= (order.expected || 1); n += 1) if (!done.has(n)) return n;
  return null;
}

// Add parcel: one more than the order expects, or than it has labelled (at most 99).
export function extraParcel(order) {
  return Math.min(MAX_PARCELS, Math.max(order.expected || 1, ...labelled(order)) + 1);
}

// m of "parcel n of m": the parcels expected, or n when more were packed or none were said.
export function parcelTotal(order, n) {
  return Math.max(order?.expected ?? n, n);
}

export function currentOrder() {
  return state.order;
}

export function setOrder(order) {
  state.order = order;
  renderParcels();
}

// Read the order again from the agent (after a pack, a void or a close); keeps the last one on failure.
export async function refreshOrder(ref) {
  const found = await state.helpers.call("GET", `/api/v1/orders/${encodeURIComponent(ref)}`);
  if (found.ok && state.order?.order_ref === found.body.order_ref) setOrder(readOrder(found.body));
  else if (found.ok && !state.order) setOrder(readOrder(found.body));
  return found;
}

export function renderParcels() {
  if (!state.helpers) return;
  const order = state.order;
  const card = $("parcels-card");
  card.hidden = !order || !order.parcels.length || state.helpers.hidden();
  if (card.hidden) return;
  $("parcels-order").textContent = order.order_ref;
  $("parcels-order").title = order.order_ref;
  $("parcels-count").textContent = t("parcels_count", { labelled: order.parcels.length,
    expected: order.expected ?? order.parcels.length });
  const busy = state.helpers.busy();
  $("parcels").replaceChildren(...order.parcels.map((p) => {
    const li = document.createElement("li");
    li.dataset.parcel = String(p.parcel);
    const what = document.createElement("span");
    what.className = "parcel-what";
    what.textContent = `${t("parcel_n", p.parcel)} · ${p.tracking_number || "–"}`;
    what.title = what.textContent;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "void";
    button.textContent = t("void");
    button.disabled = busy;
    button.addEventListener("click", () => openVoid(p));
    li.append(what, button);
    return li;
  }));
}

// -- void one parcel's label, with a reason and a confirmation ----------------------------------

function openVoid(parcel) {
  if (!state.order || state.helpers.busy()) return;
  state.voiding = { order_ref: state.order.order_ref, ...parcel };
  $("void-which").textContent = t("void_which", state.voiding);
  $("void-reason").value = "";
  $("void-reason").placeholder = "";
  $("void-dialog").showModal();
  $("void-reason").focus();
}

async function confirmVoid(event) {
  event.preventDefault();
  const reason = $("void-reason").value.trim();
  if (!reason) { $("void-reason").placeholder = t("void_reason_needed"); $("void-reason").focus(); return; }
  $("void-dialog").close();
  const which = state.voiding;
  const path = `/api/v1/orders/${encodeURIComponent(which.order_ref)}/parcels/${which.parcel}/void`;
  await state.helpers.act(which, () => state.helpers.call("POST", path, { reason }), "voided");
}

// -- close the order with the parcels labelled so far -------------------------------------------

export function openClose() {
  const order = state.order;
  if (!order || !order.parcels.length || state.helpers.busy() || $("close").hidden) return;
  const short = order.expected != null && order.parcels.length < order.expected;
  $("close-which").textContent = t("close_which", { order_ref: order.order_ref, labelled: order.parcels.length,
    expected: order.expected ?? order.parcels.length });
  $("close-reason-row").hidden = !short;
  $("close-reason").value = "";
  $("close-reason").placeholder = "";
  $("close-dialog").showModal();
  (short ? $("close-reason") : $("close-ok")).focus();
}

async function confirmClose(event) {
  event.preventDefault();
  const order = state.order;
  const short = !$("close-reason-row").hidden;
  const reason = short ? $("close-reason").value.trim() : "";
  if (short && !reason) { $("close-reason").placeholder = t("close_reason_needed"); $("close-reason").focus(); return; }
  $("close-dialog").close();
  const path = `/api/v1/orders/${encodeURIComponent(order.order_ref)}/close`;
  await state.helpers.act(order, () => state.helpers.call("POST", path, reason ? { reason } : undefined), "closed");
}

// helpers: {t, call, busy() (a pack or another action is under way), hidden() (dock mode),
// act(what, request, kind) (runs the request with the panel saying what came of it)}.
export function wireParcels(helpers) {
  state.helpers = helpers;
  $("void-form").addEventListener("submit", confirmVoid);
  $("void-cancel").addEventListener("click", () => $("void-dialog").close());
  $("close-form").addEventListener("submit", confirmClose);
  $("close-cancel").addEventListener("click", () => $("close-dialog").close());
  for (const id of ["void-dialog", "close-dialog"]) $(id).addEventListener("close", helpers.refocusScan);
}
