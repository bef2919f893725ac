// Made for the floor: who packs at this station (badge or PIN sign-in, the shift's count and
// rate) and the sounds a packer hears without looking (one for a printed label, one for a fault),
// which can be muted (remembered on this screen).

const $ = (id) => document.getElementById(id);
const MUTE_KEY = "dockside.muted";
const WHO_REFRESH_MS = 15000; // signed out elsewhere (another station, disabled in the cloud)

const floor = { helpers: null, station: null, packer: null, since: null, count: 0, audio: null };

function t(key, arg) {
  return floor.helpers.t(key, arg);
}

// -- sounds: made with the Web Audio API, no audio files --------------------------------------

// Every sound the page asked for, for tests: {sound, played}; played is false while muted.
window.__sounds = [];

export function muted() {
  return localStorage.getItem(MUTE_KEY) === "1";
}

const TONES = {
  success: [[880, 0, 0.09], [1320, 0.1, 0.14]], // two rising notes
  failure: [[220, 0, 0.22], [165, 0.25, 0.35]], // two low falling notes, longer
};

// Play `sound` ("success" or "failure") unless muted; a browser without audio stays silent.
export function playSound(sound) {
  const played = !muted();
  window.__sounds.push({ sound, played });
  if (!played) return;
  try {
    floor.audio ??= new AudioContext();
    const ctx = floor.audio;
    if (ctx.state === "suspended") ctx.resume();
    for (const [hz, start, length] of TONES[sound]) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = sound === "success" ? "sine" : "square";
      osc.frequency.value = hz;
      const at = ctx.currentTime + start;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.25, at + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
      osc.connect(gain).connect(ctx.destination);
      osc.start(at);
      osc.stop(at + length + 0.02);
    }
  } catch {
    // no audio device: the panel still says it all
  }
}

function renderMute() {
  const off = muted();
  $("mute").setAttribute("aria-pressed", off ? "true" : "false");
  $("mute-icon").textContent = off ? "✕" : "♪";
  $("mute-text").textContent = t(off ? "sound_off" : "sound_on");
}

// -- the packer signed in at this station (kept by the agent, not the page) --------------------

// The shift's count: the agent's GET answer says who and since when, not how many labels, so the
// page counts the labels it shows printed at this station since sign-in (kept per sign-in in
// localStorage, so a reload keeps it; labels printed by another screen of the station are not in it).
function countKey() {
  return `dockside.shift.${floor.station}.${floor.packer?.id}.${floor.since}`;
}

function setWho(body) {
  const before = floor.packer ? `${floor.packer.id}.${floor.since}` : null;
  floor.packer = body?.packer || null;
  floor.since = body?.signed_in_at_ms ?? null;
  const now = floor.packer ? `${floor.packer.id}.${floor.since}` : null;
  if (now !== before) floor.count = now ? Number(localStorage.getItem(countKey()) || 0) : 0;
  renderPacker();
}

// A label printed at this station: it counts for the packer signed in, if any.
export function countLabel() {
  if (!floor.packer) return;
  floor.count += 1;
  localStorage.setItem(countKey(), String(floor.count));
  renderPacker();
}

// Labels per hour since sign-in (the first minutes count as one minute at least).
function rate() {
  const hours = Math.max(Date.now() - floor.since, 60000) / 3600000;
  return Math.round(floor.count / hours);
}

export function renderPacker() {
  if (!floor.helpers) return;
  renderMute();
  const on = Boolean(floor.packer);
  $("packer-name").textContent = on ? floor.packer.name : t("packer_none");
  $("packer").classList.toggle("packer-none", !on);
  $("shift").hidden = !on;
  $("shift").textContent = on ? t("shift", { count: floor.count, rate: rate() }) : "";
  $("sign-in").hidden = on;
  $("sign-out").hidden = !on;
}

async function refreshWho() {
  if (!floor.station) return;
  const result = await floor.helpers.call("GET", `/api/v1/stations/${encodeURIComponent(floor.station)}/packer`);
  if (result.ok) setWho(result.body);
}

export function openSignIn() {
  if (!floor.station || document.querySelector("dialog[open]")) return;
  $("packer-badge").value = "";
  $("packer-pin").value = "";
  $("packer-error").textContent = "";
  $("packer-dialog").showModal();
  $("packer-badge").focus();
}

async function signIn(event) {
  event.preventDefault();
  const badge = $("packer-badge").value.trim();
  const pin = $("packer-pin").value.trim();
  if (!badge && !pin) {
    $("packer-error").textContent = t("packer_needed");
    $("packer-badge").focus();
    return;
  }
  const result = await floor.helpers.call("POST", `/api/v1/stations/${encodeURIComponent(floor.station)}/packer`,
    badge ? { badge } : { pin });
  if (!result.ok) { // 401 packer_not_recognised, 429 too_many_attempts, 422: the agent's words
    $("packer-error").textContent = floor.helpers.say ? floor.helpers.say(result.error) : result.error.message;
    $("packer-pin").value = "";
    (badge ? $("packer-badge") : $("packer-pin")).select();
    return;
  }
  $("packer-dialog").close();
  setWho(result.body);
}

async function signOut() {
  const result = await floor.helpers.call("DELETE", `/api/v1/stations/${encodeURIComponent(floor.station)}/packer`);
  if (result.ok) setWho(result.body);
  floor.helpers.focusScan();
}

// Start following the packer of `station`; `helpers` gives {t, call, focusScan}.
export function watchPacker(station, helpers) {
  floor.helpers = helpers;
  floor.station = station;
  refreshWho();
  setInterval(() => { refreshWho(); }, WHO_REFRESH_MS);
}

export function wireFloor(helpers) {
  floor.helpers = helpers;
  $("sign-in").addEventListener("click", openSignIn);
  $("sign-out").addEventListener("click", signOut);
  $("packer-form").addEventListener("submit", signIn);
  $("packer-cancel").addEventListener("click", () => $("packer-dialog").close());
  $("packer-dialog").addEventListener("close", helpers.refocusScan);
  $("mute").addEventListener("click", () => {
    localStorage.setItem(MUTE_KEY, muted() ? "0" : "1");
    renderMute();
    helpers.focusScan();
  });
  renderPacker();
}
