// The agent's messages in the packer's language. The agent answers with a stable `code`, the
// values its message names (`params`: order_ref, printer, faults, action...) and an English
// `message` for API users and logs; the page words the code from the catalog of its language
// (messages_en.js, messages_zh.js, messages_es.js). A code no catalog knows shows the agent's
// own English message: never a blank panel.
import en from "/station/messages_en.js";
import zh from "/station/messages_zh.js";
import es from "/station/messages_es.js";
import { fmtWeight } from "/station/i18n.js";

export const CATALOGS = { en, zh, es };

// What the agent said, kept as sent so the page can word it again when the language changes:
// an error body (`{code, message, params}`), a held label or a printer from the snapshot.
export function said(from) {
  if (from == null) return { raw: "" };
  if (typeof from !== "object") return { raw: String(from) };
  return { raw: from.message ?? from.raw ?? "", code: from.code, params: from.params };
}

// A param the agent did not send reads as "–", never "undefined".
function withDefaults(params) {
  return new Proxy(params && typeof params === "object" ? params : {}, {
    get: (target, key) => (target[key] ?? "–"),
  });
}

function helpers(catalog) {
  return {
    // A weight in grams, in the warehouse's unit with its symbol ("1.234 kg", "2.72 lb").
    weight: (grams) => (typeof grams === "number" ? fmtWeight(grams) : "–"),
    // A printer's fault codes ("paper_out", "head_open"...) as the packer's words, joined.
    faults: (codes) => (Array.isArray(codes) ? codes : []).map((code) => {
      const phrase = catalog[`fault_${code}`];
      if (typeof phrase === "string") return phrase;
      return catalog.fault_other({ fault: String(code).slice(0, 32) });
    }).join("; "),
  };
}

// The text of what the agent said, in `lang`.
export function agentText(lang, what) {
  if (what == null) return "";
  const catalog = CATALOGS[lang] || CATALOGS.en;
  const entry = what.code ? catalog[what.code] : undefined;
  if (entry === undefined) return what.raw || what.code || "";
  return typeof entry === "function" ? entry(withDefaults(what.params), helpers(catalog)) : entry;
}
