// The recording of a graded conversation and the moments the grade quotes: each evidence quote
// that has a time is a button that plays the recording from there. evidenceItems() and
// playFrom() are pure enough for the node tests; renderEvidence() draws them.
// Page contract: `recording` is the <audio> (GET /api/conversations/<id>/audio); `evidence`
// holds the quotes, each timed one a button with data-t (seconds).
import { clock, fill, numberOrNull } from "./format.js";

/**
 * The quotes to show, in the grade's order, each once with every criterion it supports:
 * evaluation.evidence_refs (matched by the server to the line each comes from), or, without
 * them, criteria[].evidence untimed. Pure.
 * @returns {{criteria: string[], quote: string, role: string|null, t: number|null}[]}
 */
export function evidenceItems(evaluation) {
  if (!evaluation || typeof evaluation !== "object") return [];
  const refs = Array.isArray(evaluation.evidence_refs) ? evaluation.evidence_refs
    : (Array.isArray(evaluation.criteria) ? evaluation.criteria : []).flatMap((c) =>
      (c && Array.isArray(c.evidence) ? c.evidence : []).map((quote) => ({ criterion: c.name, quote })));
  const items = new Map(); // quote and time -> item
  for (const ref of refs) {
    if (!ref || typeof ref.quote !== "string" || !ref.quote.trim()) continue;
    const t = numberOrNull(ref.start_s);
    const key = `${t}\u0000${ref.quote}`;
    if (!items.has(key)) {
      items.set(key, { criteria: [], quote: ref.quote, role: typeof ref.role === "string" ? ref.role : null, t });
    }
    const criterion = String(ref.criterion ?? "");
    if (criterion && !items.get(key).criteria.includes(criterion)) items.get(key).criteria.push(criterion);
  }
  return [...items.values()];
}

/** Play `audio` from `t` seconds (an <audio>, or anything with currentTime and play()). */
export function playFrom(audio, t) {
  audio.currentTime = Math.max(0, t);
  const playing = audio.play();
  if (playing && typeof playing.catch === "function") playing.catch(() => {}); // e.g. the user paused at once
}

/** The recording's URL on the conversations API. */
export function recordingUrl(sessionId) {
  return `/api/conversations/${encodeURIComponent(sessionId)}/audio`;
}

/**
 * Fill `section` with the recording (when `sessionId` names a recorded conversation) and the quotes.
 * @returns {HTMLAudioElement|null} the recording, if there is one
 */
export function renderEvidence(section, evaluation, sessionId, t) {
  const doc = section.ownerDocument;
  section.replaceChildren();
  const items = evidenceItems(evaluation);
  let audio = null;
  if (sessionId) {
    audio = doc.createElement("audio");
    audio.dataset.testid = "recording";
    audio.controls = true;
    audio.preload = "metadata";
    audio.src = recordingUrl(sessionId);
    audio.setAttribute("aria-label", t("evidence.recording"));
    section.append(audio);
  }
  if (!items.length) return audio;
  const list = doc.createElement("ul");
  list.className = "evidence-list";
  list.dataset.testid = "evidence";
  for (const item of items) list.append(quoteItem(doc, item, audio, t));
  section.append(list);
  return audio;
}

function quoteItem(doc, item, audio, t) {
  const li = doc.createElement("li");
  li.className = `evidence-item${item.role ? ` evidence-${item.role}` : ""}`;
  const criterion = doc.createElement("span");
  criterion.className = "evidence-criterion";
  criterion.textContent = item.criteria.join(" · ");
  const quote = doc.createElement(audio && item.t !== null ? "button" : "q");
  quote.className = "evidence-quote";
  if (quote.tagName === "BUTTON") {
    quote.type = "button";
    quote.dataset.t = String(item.t);
    const at = doc.createElement("span");
    at.className = "evidence-time";
    at.textContent = clock(item.t);
    quote.append(at, doc.createTextNode(`「${item.quote}」`));
    quote.setAttribute("aria-label", fill(t("evidence.play"), { at: clock(item.t), quote: item.quote }));
    quote.addEventListener("click", () => playFrom(audio, item.t));
  } else {
    quote.textContent = item.quote;
  }
  li.append(criterion, quote);
  return li;
}
