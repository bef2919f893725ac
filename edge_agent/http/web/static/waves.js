// The station's waves: the orders the cloud released to this station, printed in one run.
// Lists them with their progress (n of N printed, held, skipped) and offers "Print wave".

const $ = (id) => document.getElementById(id);
const IDLE_REFRESH_MS = 3000;
const BUSY_REFRESH_MS = 400;

const state = { station: null, waves: [], printing: null, result: null, helpers: null, timer: null };

function t(key, arg) {
  return state.helpers.t(key, arg);
}

function progressText(wave) {
  return t("wave_progress", wave);
}

function renderWaves() {
  if (!state.helpers) return;
  const list = $("waves");
  if (!state.waves.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = t("no_waves");
    list.replaceChildren(li);
  } else {
    list.replaceChildren(...state.waves.map(waveItem));
  }
  const note = $("wave-result");
  note.hidden = !state.result;
  if (state.result) note.replaceChildren(...resultLines(state.result));
}

function waveItem(wave) {
  const li = document.createElement("li");
  li.className = "wave";
  li.dataset.wave = String(wave.wave_id);
  const title = document.createElement("div");
  title.className = "wave-title";
  title.textContent = t("wave_title", wave);
  const bar = document.createElement("div");
  bar.className = "wave-bar";
  const done = document.createElement("span");
  done.className = "wave-bar-printed";
  done.style.width = `${wave.total ? (100 * wave.printed) / wave.total : 0}%`;
  const held = document.createElement("span");
  held.className = "wave-bar-held";
  held.style.width = `${wave.total ? (100 * wave.held) / wave.total : 0}%`;
  bar.append(done, held);
  const progress = document.createElement("div");
  progress.className = "wave-progress small";
  progress.textContent = progressText(wave);
  const button = document.createElement("button");
  button.type = "button";
  button.className = "print-wave";
  const busy = state.printing === wave.wave_id || wave.running;
  button.textContent = busy ? t("wave_printing") : t("print_wave");
  button.disabled = busy || state.printing !== null || wave.to_print === 0;
  button.addEventListener("click", () => printWave(wave.wave_id));
  li.append(title, bar, progress, button);
  return li;
}

function resultLines(result) {
  const lines = [];
  const head = document.createElement("div");
  head.className = "wave-result-head";
  head.textContent = result.error ? state.helpers.say(result.error) : t("wave_done", result);
  lines.push(head);
  if (!result.error) {
    const weight = document.createElement("div");
    weight.className = "muted small";
    weight.textContent = t("wave_expected_weight");
    lines.push(weight);
    for (const skipped of [...result.skipped, ...result.failed]) {
      const line = document.createElement("div");
      line.className = `wave-skip small wave-skip-${skipped.code}`;
      line.textContent = `${skipped.order_ref}: ${state.helpers.say(skipped)}`;
      lines.push(line);
    }
  }
  return lines;
}

async function refresh() {
  if (!state.station) return;
  const result = await state.helpers.call("GET", `/api/v1/waves?station=${encodeURIComponent(state.station)}`);
  if (result.ok) state.waves = result.body.waves;
  renderWaves();
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => {
    await refresh();
    schedule();
  }, state.printing !== null ? BUSY_REFRESH_MS : IDLE_REFRESH_MS);
}

async function printWave(waveId) {
  if (state.printing !== null) return;
  state.printing = waveId;
  state.result = null;
  renderWaves();
  schedule(); // follow the progress while the run goes on
  const result = await state.helpers.call("POST", `/api/v1/waves/${waveId}/print`,
    { station: state.station, request_id: state.helpers.newRequestId() });
  state.printing = null;
  state.result = result.ok ? result.body : { error: result.error };
  await refresh();
  $("wave-result").scrollIntoView({ block: "nearest" });
  // The clicked button was re-rendered away with the focus on it: give the scanner its field back.
  state.helpers.focusScan();
  schedule();
}

export function watchWaves(station, helpers) {
  state.station = station;
  state.helpers = helpers;
  refresh();
  schedule();
}

export { renderWaves };
