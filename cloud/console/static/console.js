// The admin console: a few pages over the admin API, signed in with an API token kept in this tab.
const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("dockside.token"), me: null };
const EDITORS = new Set(["admin", "editor"]);

function canEdit() { return state.me && EDITORS.has(state.me.role); }

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function toast(message) {
  const el = $("toast");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${state.token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (response.status === 401) { signOut("Your token was refused: sign in again."); throw new Error("unauthorized"); }
  const json = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(json.error?.message || `HTTP ${response.status}`);
    error.status = response.status;
    error.code = json.error?.code;
    throw error;
  }
  return json;
}

// The preview is an image behind the bearer token: fetch it and show it as an object URL.
async function previewUrl(name, version) {
  const response = await fetch(`/api/v1/templates/${encodeURIComponent(name)}/versions/${version}/preview.png`,
    { headers: { authorization: `Bearer ${state.token}` } });
  if (!response.ok) throw new Error(`preview: HTTP ${response.status}`);
  return { url: URL.createObjectURL(await response.blob()), note: response.headers.get("x-preview-note") };
}

function when(iso) {
  if (!iso) return "never";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

function page(title, subtitle, ...content) {
  const main = $("main");
  main.replaceChildren(h("div", { class: "page-head" },
    h("div", {}, h("h1", {}, title), subtitle ? h("div", { class: "muted" }, subtitle) : null)), ...content);
  main.focus();
}

function failure(error) {
  return h("div", { class: "card" }, h("p", { class: "error" }, error.message));
}

// -- templates -------------------------------------------------------------------------------

async function templatesPage() {
  const { templates } = await api("GET", "/api/v1/templates");
  if (!templates.length) return page("Templates", "Label templates", h("div", { class: "card empty" }, "No templates yet."));
  const rows = templates.map((t) => h("tr", { class: "clickable", onclick: () => { location.hash = `#/templates/${encodeURIComponent(t.name)}`; } },
    h("td", {}, h("a", { href: `#/templates/${encodeURIComponent(t.name)}` }, t.name)),
    h("td", {}, t.active ? h("span", { class: "badge ok" }, `v${t.active} live`) : h("span", { class: "badge grey" }, "not published")),
    h("td", {}, t.versions), h("td", {}, `v${t.latest}`), h("td", { class: "muted" }, when(t.updated_at))));
  page("Templates", "Label templates, their versions and what the stations print now",
    h("div", { class: "card" }, h("table", {}, h("thead", {}, h("tr", {}, ["Template", "Live", "Versions", "Latest", "Last change"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows))));
}

// Which version each warehouse runs: the tenant's live version unless a staged rollout says otherwise.
async function rolloutOf(name) {
  const [{ warehouses }, rollout] = await Promise.all([
    api("GET", "/api/v1/warehouses"),
    api("GET", `/api/v1/templates/${encodeURIComponent(name)}/rollout`).catch((error) => {
      if (error.status === 404) return { active_version: null, warehouses: {} };
      throw error;
    }),
  ]);
  const running = {};
  for (const w of warehouses) running[w.code] = rollout.warehouses[w.code] ?? rollout.active_version;
  return { tenant: rollout.active_version, staged: rollout.warehouses, running, names: Object.fromEntries(warehouses.map((w) => [w.code, w.name])) };
}

function rolloutSummary(rollout) {
  const codes = Object.keys(rollout.running);
  const staged = codes.filter((c) => c in rollout.staged && rollout.staged[c] !== rollout.tenant);
  if (rollout.tenant == null && !staged.length) return "Not published yet";
  if (!staged.length) return `Live: v${rollout.tenant} on every warehouse of the tenant`;
  const byVersion = {};
  for (const c of staged) (byVersion[rollout.staged[c]] ||= []).push(c);
  const stagedText = Object.entries(byVersion).map(([v, cs]) => `v${v} on ${cs.join(", ")}`).join("; ");
  return rollout.tenant == null ? `Staged: ${stagedText}` : `Staged: ${stagedText}; v${rollout.tenant} on every other warehouse`;
}

// The warehouses an admin chose to publish to, per template, for this visit to the console. Every
// draw of a template page reads it, so a redraw (after a publish, or a late route) keeps the choice.
const rolloutTargets = new Map();

async function templatePage(name, selected) {
  const [{ versions }, rollout] = await Promise.all([
    api("GET", `/api/v1/templates/${encodeURIComponent(name)}/versions`), rolloutOf(name)]);
  const live = versions.find((v) => v.active);
  const shown = versions.find((v) => v.version === selected) || live || versions[versions.length - 1];
  const img = h("img", { id: "preview", alt: `Preview of ${name} v${shown.version}` });
  const note = h("div", { class: "muted small" });
  const codes = Object.keys(rollout.running);
  // A token limited to some warehouses cannot publish tenant-wide, so it always picks warehouses.
  const mayReachAll = !state.me.warehouses;
  if (!rolloutTargets.has(name)) rolloutTargets.set(name, { all: mayReachAll, codes: new Set() });
  const chosen = rolloutTargets.get(name);
  chosen.all &&= mayReachAll;
  const targetCodes = () => chosen.all ? codes : codes.filter((c) => chosen.codes.has(c));
  const whereText = (word) => chosen.all ? "" : targetCodes().length > 2 ? ` ${word} ${targetCodes().length} warehouses` : ` ${word} ${targetCodes().join(", ")}`;
  const runningOn = (version) => codes.filter((c) => rollout.running[c] === version);

  const publishButton = (v) => {
    if (!canEdit()) return null;
    const reach = targetCodes();
    if (!chosen.all && !reach.length) return null;
    if (chosen.all ? v.active && runningOn(v.version).length === codes.length : reach.every((c) => rollout.running[c] === v.version)) return null;
    const newest = Math.max(0, ...reach.map((c) => rollout.running[c] ?? 0), chosen.all ? live?.version ?? 0 : 0);
    const rollback = v.version < newest;
    return h("button", { class: rollback ? "danger" : "primary", "data-publish": v.version,
      onclick: (event) => { event.stopPropagation(); publish(name, v.version, rollback, chosen.all ? null : reach); } },
      rollback ? `Roll back to v${v.version}${whereText("at")}` : `Publish v${v.version}${whereText("to")}`);
  };
  const statusOf = (v) => {
    const on = runningOn(v.version);
    if (codes.length && on.length === codes.length) return h("span", { class: "badge ok" }, "live");
    // The tenant's live version minus the staged warehouses reads "live on", a staged one "staged on".
    const where = on.length > 2 ? `${on.length} warehouses` : on.join(", ");
    if (on.length) return h("span", { class: `badge ${v.active ? "ok" : "warn"}`, title: `live on ${on.join(", ")}` }, `${v.active ? "live" : "staged"} on ${where}`);
    if (v.active) return h("span", { class: "badge ok" }, "live");
    return h("span", { class: "badge grey" }, "draft");
  };
  const tbody = h("tbody", {});
  const drawRows = () => tbody.replaceChildren(...[...versions].reverse().map((v) => h("tr", { class: `clickable ${v.version === shown.version ? "selected" : ""}`,
    onclick: () => { location.hash = `#/templates/${encodeURIComponent(name)}/${v.version}`; } },
    h("td", {}, h("strong", {}, `v${v.version}`)),
    h("td", {}, statusOf(v)),
    h("td", {}, h("div", {}, v.language.toUpperCase()), h("div", { class: "muted small" }, `${v.width_dots}×${v.height_dots} dots, ${v.dpi} dpi`)),
    h("td", { class: "muted" }, when(v.created_at)),
    h("td", {}, publishButton(v)))));
  drawRows();

  const boxes = codes.map((c) => h("input", { type: "checkbox", value: c, "data-warehouse": c, checked: chosen.all || chosen.codes.has(c), disabled: chosen.all,
    onchange: (event) => { if (event.target.checked) chosen.codes.add(c); else chosen.codes.delete(c); drawRows(); } }));
  const allBox = h("input", { type: "checkbox", id: "rollout-all", checked: chosen.all, onchange: (event) => {
    chosen.all = event.target.checked;
    for (const box of boxes) { box.disabled = chosen.all; box.checked = chosen.all || chosen.codes.has(box.value); }
    drawRows();
  } });
  const targetChooser = canEdit() && codes.length ? h("div", { class: "rollout-target", id: "rollout-target" },
    h("div", { class: "muted small" }, "Publish and roll back to:"),
    mayReachAll ? h("label", {}, allBox, " All warehouses") : null,
    boxes.map((box) => h("label", {}, box, ` ${box.value}`))) : null;
  const rolloutRows = codes.map((c) => h("tr", { "data-rollout": c },
    h("td", {}, h("strong", {}, c), h("div", { class: "muted small" }, rollout.names[c])),
    h("td", {}, rollout.running[c] != null ? `v${rollout.running[c]}` : "–"),
    h("td", {}, rollout.running[c] == null ? h("span", { class: "badge grey" }, "not published")
      : c in rollout.staged && rollout.staged[c] !== rollout.tenant ? h("span", { class: "badge warn" }, "staged")
        : h("span", { class: "badge ok" }, "tenant's live version"))));
  const rolloutCard = h("div", { class: "card", id: "rollout" }, h("h2", {}, "Rollout"),
    codes.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Warehouse", "Live version", ""].map((c) => h("th", {}, c)))), h("tbody", {}, rolloutRows))
      : h("p", { class: "muted" }, "No warehouse yet: a published version reaches every warehouse you add."),
    targetChooser);

  page(name, rolloutSummary(rollout),
    h("div", { class: "grid2 wide-left" },
      h("div", {}, rolloutCard,
        h("div", { class: "card" }, h("h2", {}, "Version history"),
          h("table", { class: "versions" }, h("thead", {}, h("tr", {}, ["Version", "Status", "Format", "Created", ""].map((c) => h("th", {}, c)))), tbody))),
      h("div", { class: "card" }, h("h2", {}, `Preview of v${shown.version} with its sample data`), h("div", { class: "preview" }, img), note)));
  try {
    const preview = await previewUrl(name, shown.version);
    img.src = preview.url;
    if (preview.note) note.textContent = preview.note;
  } catch (error) { note.textContent = error.message; }
}

// warehouses is null for the whole tenant, else the chosen codes (a staged rollout or a partial rollback).
async function publish(name, version, rollback, warehouses) {
  const where = warehouses ? warehouses.join(", ") : "every warehouse";
  if (rollback && !confirm(`Roll ${name} back to v${version} on ${where}? Stations print it from their next label.`)) return;
  try {
    const scope = warehouses ? { warehouses } : {};
    if (rollback) await api("POST", `/api/v1/templates/${encodeURIComponent(name)}/rollback`, { version, ...scope });
    else await api("POST", `/api/v1/templates/${encodeURIComponent(name)}/versions/${version}/publish`, scope);
    toast(`${name} v${version} is live on ${where}; agents pick it up within seconds.`);
    await templatePage(name, version);
  } catch (error) { toast(error.message); }
}

// -- rulesets --------------------------------------------------------------------------------

const SAMPLE_RULESET = { default: { carrier: "DOCKSIDE", service: "standard", template: "shipping-4x6", printer_role: "label" },
  rules: [{ name: "heavy parcels by freight", when: "weight_g > 20000", then: { carrier: "FREIGHT", service: "pallet" } }] };

async function rulesetsPage(name = "default") {
  let versions = [];
  try { versions = (await api("GET", `/api/v1/rulesets/${encodeURIComponent(name)}/versions`)).versions; }
  catch (error) { if (error.status !== 404) throw error; }
  const live = versions.find((v) => v.active);
  const latest = versions[versions.length - 1];
  const source = latest ? { default: latest.default ?? latest.body?.default, rules: latest.rules ?? latest.body?.rules ?? [], sku_tags: latest.sku_tags ?? latest.body?.sku_tags ?? {} } : SAMPLE_RULESET;
  const editor = h("textarea", { class: "editor", id: "ruleset-editor", spellcheck: "false", readonly: !canEdit() }, JSON.stringify(source, null, 2));
  const messages = h("ul", { class: "messages", id: "ruleset-messages" });
  const diff = h("div", { id: "ruleset-diff" });
  const nameInput = h("input", { value: name, "aria-label": "Ruleset name" });
  async function saveDraft() {
    messages.replaceChildren();
    let document;
    try { document = JSON.parse(editor.value); } catch (error) { messages.append(h("li", {}, `Not valid JSON: ${error.message}`)); return null; }
    try { return await api("POST", `/api/v1/rulesets/${encodeURIComponent(name)}/versions`, document); }
    catch (error) { for (const line of error.message.split("; ")) messages.append(h("li", {}, line)); return null; }
  }
  async function simulate() {
    const draft = await saveDraft();
    if (!draft) return;
    const result = await api("POST", `/api/v1/rulesets/${encodeURIComponent(name)}/versions/${draft.version}/simulate`, { last: 1000 });
    const show = (d) => d ? `${d.carrier} ${d.service} · ${d.template}` : "–";
    diff.replaceChildren(h("h2", {}, `Simulation of v${draft.version} on the last ${result.summary.orders ?? ""} orders: ${result.summary.changed} change(s)`),
      result.changes.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Order", "Now", "With this draft"].map((c) => h("th", {}, c)))),
        h("tbody", {}, result.changes.slice(0, 200).map((c) => h("tr", { class: "diff-changed" }, h("td", { class: "mono" }, c.order_ref), h("td", {}, show(c.before)), h("td", {}, show(c.after))))))
        : h("p", { class: "muted" }, "No order would be decided differently."),
      h("div", { class: "actions" }, h("button", { class: "primary", onclick: async () => {
        await api("POST", `/api/v1/rulesets/${encodeURIComponent(name)}/versions/${draft.version}/publish`);
        toast(`Ruleset ${name} v${draft.version} is live.`); rulesetsPage(name);
      } }, `Publish v${draft.version}`)));
  }
  page("Rulesets", live ? `${name}: v${live.version} is live` : `${name}: nothing published yet`,
    h("div", { class: "search" }, nameInput, h("button", { onclick: () => rulesetsPage(nameInput.value.trim() || "default") }, "Open")),
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h2", {}, "Editor"), editor, messages,
        canEdit() ? h("div", { class: "actions" }, h("button", { onclick: async () => { if (await saveDraft()) toast("Valid: saved as a draft."); } }, "Validate and save draft"),
          h("button", { class: "primary", onclick: simulate }, "Simulate")) : h("p", { class: "muted" }, "Your role can read rulesets but not change them.")),
      h("div", { class: "card" }, h("h2", {}, "Versions"),
        versions.length ? h("table", {}, h("tbody", {}, [...versions].reverse().map((v) => h("tr", {}, h("td", {}, `v${v.version}`),
          h("td", {}, v.active ? h("span", { class: "badge ok" }, "live") : h("span", { class: "badge grey" }, "draft")), h("td", { class: "muted" }, when(v.created_at))))))
          : h("p", { class: "muted" }, "No versions yet."), diff)));
}

// -- fleet, exceptions, orders, audit ----------------------------------------------------------

function deviceBadge(d) {
  const cls = d.state === "ready" ? "ok" : d.state === "unknown" ? "grey" : "bad";
  return h("div", {}, h("span", { class: `badge ${cls}` }, d.state), " ", `${d.kind} ${d.id}`, d.station ? h("span", { class: "muted" }, ` @ ${d.station}`) : null);
}

async function fleetPage() {
  const { agents } = await api("GET", "/api/v1/agents");
  const online = (a) => !a.revoked_at && a.last_seen && Date.now() - new Date(a.last_seen).getTime() < 90_000;
  page("Fleet", `${agents.filter(online).length} of ${agents.length} agent(s) online`,
    h("div", { class: "card" }, agents.length ? h("table", {},
      h("thead", {}, h("tr", {}, ["Agent", "Warehouse", "Status", "Last seen", "Version", "Outbox", "Printers and scales"].map((c) => h("th", {}, c)))),
      h("tbody", {}, agents.map((a) => h("tr", {},
        h("td", {}, h("div", {}, a.hostname || a.id), h("div", { class: "muted small mono" }, a.id)),
        h("td", {}, a.warehouse),
        h("td", {}, a.revoked_at ? h("span", { class: "badge grey", title: a.revoked_at }, "revoked") : online(a) ? h("span", { class: "badge ok" }, "online") : h("span", { class: "badge bad" }, "offline")),
        h("td", { title: a.last_seen || "" }, ago(a.last_seen)),
        h("td", { title: a.update ? `update ${a.update.version}: ${a.update.outcome} ${a.update.message}` : "" }, a.version || "–", a.update && a.update.outcome !== "installed" ? h("span", { class: "badge warn" }, ` ${a.update.outcome} ${a.update.version}`) : null),
        h("td", {}, a.outbox_depth > 0 ? h("span", { class: "badge warn" }, a.outbox_depth) : "0"),
        h("td", {}, (a.devices || []).map(deviceBadge))))))
      : h("p", { class: "empty" }, "No agent enrolled yet: create an enrollment token for a warehouse.")));
}

async function optionalList(path, title, subtitle, columns, row) {
  try {
    const body = await api("GET", path);
    const items = body.items ?? body.exceptions ?? body.entries ?? body.events ?? [];
    page(title, subtitle, h("div", { class: "card" }, items.length
      ? h("table", {}, h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))), h("tbody", {}, items.map((i) => h("tr", {}, row(i).map((cell) => h("td", {}, cell))))))
      : h("p", { class: "empty" }, "Nothing here.")));
  } catch (error) {
    if (error.status === 404 && error.code !== "not_found_item") {
      page(title, subtitle, h("div", { class: "card empty" }, `This cloud does not serve ${path} yet.`));
    } else throw error;
  }
}

async function exceptionsPage() {
  const { exceptions } = await api("GET", "/api/v1/exceptions?limit=200");
  const open = exceptions.filter((e) => e.status !== "resolved");
  const badge = { open: "bad", acknowledged: "warn", resolved: "ok" };
  async function act(e, action) {
    let body;
    if (action === "resolve") {
      const comment = prompt(`What was done about ${e.order_ref}?`);
      if (!comment) return;
      body = { comment };
    }
    try { await api("POST", `/api/v1/exceptions/${e.id}/${action}`, body); toast(`Exception ${e.id}: ${action}d.`); exceptionsPage(); }
    catch (error) { toast(error.message); }
  }
  page("Exceptions", `${open.length} open of ${exceptions.length} shown — parcels that need a person`,
    h("div", { class: "card" }, exceptions.length ? h("table", {},
      h("thead", {}, h("tr", {}, ["Opened", "Order", "Warehouse", "Kind", "What happened", "Status", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, exceptions.map((e) => h("tr", {},
        h("td", { class: "muted" }, when(e.opened_at)),
        h("td", {}, h("a", { href: `#/orders/${encodeURIComponent(e.order_ref)}`, class: "mono" }, e.order_ref)),
        h("td", {}, e.warehouse),
        h("td", {}, e.kind.replaceAll("_", " ")),
        h("td", {}, e.message, e.comment ? h("div", { class: "muted small" }, `Resolved: ${e.comment}`) : null),
        h("td", {}, h("span", { class: `badge ${badge[e.status] || "grey"}` }, e.status), e.assignee ? h("div", { class: "muted small" }, e.assignee) : null),
        h("td", {}, canEdit() && e.status === "open" ? h("button", { onclick: () => act(e, "acknowledge") }, "Acknowledge") : null,
          canEdit() && e.status !== "resolved" ? h("button", { onclick: () => act(e, "resolve") }, "Resolve") : null)))))
      : h("p", { class: "empty" }, "No exceptions: every parcel went as planned.")));
}

function auditPage() {
  return optionalList("/api/v1/audit?limit=200", "Audit log", "Who changed what, newest first",
    ["When", "Who", "Action", "What"],
    (e) => [when(e.at), h("span", {}, e.actor, " ", h("span", { class: "badge grey" }, e.role || "")),
      (e.action || "").replaceAll("_", " "), h("span", { class: "mono" }, `${e.object_kind} ${e.object_key}`)]);
}

async function ordersPage(ref) {
  const input = h("input", { id: "order-search", placeholder: "Order reference, e.g. DEMO-0001", value: ref || "", "aria-label": "Order reference" });
  const result = h("div", {});
  const form = h("form", { class: "search", onsubmit: (event) => { event.preventDefault(); location.hash = `#/orders/${encodeURIComponent(input.value.trim())}`; } },
    input, h("button", { class: "primary", type: "submit" }, "Find"));
  page("Orders", "Find an order and follow it from ingest to label", form, result);
  if (!ref) return;
  try {
    const order = await api("GET", `/api/v1/orders/${encodeURIComponent(ref)}`);
    result.append(h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h2", {}, order.order_ref, " ", h("span", { class: "badge grey" }, order.state)),
        h("table", {}, h("tbody", {},
          h("tr", {}, h("th", {}, "Warehouse"), h("td", {}, order.warehouse)),
          h("tr", {}, h("th", {}, "Service"), h("td", {}, order.service_level)),
          h("tr", {}, h("th", {}, "Ship to"), h("td", {}, [order.ship_to?.name, order.ship_to?.city, order.ship_to?.country].filter(Boolean).join(", "))),
          h("tr", {}, h("th", {}, "Lines"), h("td", {}, (order.lines || []).map((l) => `${l.qty} × ${l.sku}`).join(", "))),
          h("tr", {}, h("th", {}, "Ingested"), h("td", {}, when(order.created_at)))))),
      h("div", { class: "card" }, h("h2", {}, "Timeline"), timelineList(await timelineOf(order)))));
  } catch (error) { result.append(failure(error)); }
}

async function timelineOf(order) {
  try {
    return (await api("GET", `/api/v1/orders/${encodeURIComponent(order.order_ref)}/timeline`)).timeline;
  } catch (error) {
    if (error.status !== 404) throw error;
    return [{ at: order.created_at, kind: "order_created", source: { type: "oms" } },
      ...(order.events || []).map((e) => ({ at: e.occurred_at, kind: e.kind, source: { type: e.source, agent: e.agent, station: e.station } }))];
  }
}

function timelineList(entries) {
  const from = (s) => [s.type, s.user, s.station && `station ${s.station}`, s.printer && `printer ${s.printer}`, s.agent]
    .filter(Boolean).join(" · ");
  return h("ol", { class: "timeline" }, entries.map((e) => h("li", {},
    h("strong", {}, e.kind.replaceAll("_", " ")), h("div", { class: "muted small" }, `${when(e.at)} · ${from(e.source || {})}`))));
}

// -- shell -----------------------------------------------------------------------------------

const ROUTES = {
  templates: (rest) => rest[0] ? templatePage(decodeURIComponent(rest[0]), rest[1] ? Number(rest[1]) : undefined) : templatesPage(),
  rulesets: () => rulesetsPage(),
  fleet: () => fleetPage(),
  exceptions: () => exceptionsPage(),
  orders: (rest) => ordersPage(rest[0] ? decodeURIComponent(rest[0]) : ""),
  audit: () => auditPage(),
};

// Each route() draws when its data arrives, so a slow one started earlier (the page at sign-in)
// can draw over the page the admin went to meanwhile, even after that page drew (a template page
// draws, then waits for its preview). So when an older route ends, the newest draws again: at
// once if it has ended, else as soon as it ends. The last navigation always wins and a redraw
// never triggers another, so nothing loops.
let routeTicket = 0;
let drawnTicket = 0;
let redrawTicket = 0;

async function route() {
  if (!state.me) return;
  const ticket = ++routeTicket;
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const key = ROUTES[name] ? name : "templates";
  for (const link of document.querySelectorAll(".sidebar a")) link.classList.toggle("current", link.dataset.page === key);
  try { await ROUTES[key](rest); } catch (error) { if (error.message !== "unauthorized") page("Something went wrong", "", failure(error)); }
  if (ticket === routeTicket) {
    drawnTicket = ticket;
    if (redrawTicket === ticket) route(); // an older route drew over this one while it loaded
  } else if (drawnTicket === routeTicket) route();
  else redrawTicket = routeTicket;
}

function signOut(message) {
  sessionStorage.removeItem("dockside.token");
  state.token = null;
  state.me = null;
  rolloutTargets.clear();
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("token").focus();
}

async function signIn(token) {
  state.token = token;
  try {
    state.me = await api("GET", "/api/v1/me");
  } catch (error) {
    if (error.message !== "unauthorized") signOut(error.message);
    return;
  }
  sessionStorage.setItem("dockside.token", token);
  $("who-name").textContent = state.me.name || "API token";
  $("who-role").textContent = state.me.role;
  $("who-scope").textContent = state.me.warehouses ? state.me.warehouses.join(", ") : "all warehouses";
  document.body.dataset.role = state.me.role;
  $("signin").hidden = true;
  $("app").hidden = false;
  route();
}

$("signin-form").addEventListener("submit", (event) => { event.preventDefault(); signIn($("token").value.trim()); });
$("signout").addEventListener("click", () => signOut("Signed out."));
window.addEventListener("hashchange", route);
if (state.token) signIn(state.token); else signOut();
