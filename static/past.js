// One past conversation on /history: its transcript, recording and evaluation. Everything from the
// server is inserted as text (textContent), never as HTML.
//
// The evaluation is drawn by renderPastEvaluation(): first the conversation page's own rendering
// (feedback.js), then every view added with addEvaluationView(), so another module (the coaching
// result view: metrics, timeline, evidence) can extend the detail without touching this one.
import { renderEvaluation } from "./feedback.js";

/**
 * @typedef {(container: HTMLElement, data: object, t: (key: string) => string,
 *            context: {audio: HTMLAudioElement|null, sessionId: string}) => void} EvaluationView
 */

/** @type {EvaluationView[]} */
const evaluationViews = [];

/** Add a view drawn after the standard evaluation, for every graded past conversation. */
export function addEvaluationView(view) {
  if (typeof view !== "function") throw new TypeError("an evaluation view is a function");
  evaluationViews.push(view);
}

/**
 * Fill `container` with the evaluation of a past conversation, or say it is not graded yet.
 * @param {HTMLElement} container the detail's [data-testid=feedback] element
 * @param {{session_id: string, evaluation: object|null, feedback?: string|null}} data GET /api/conversations/<id>
 */
export function renderPastEvaluation(container, data, t, context) {
  container.replaceChildren();
  delete container.dataset.score;
  if (!data.evaluation || typeof data.evaluation !== "object") {
    const note = container.ownerDocument.createElement("p");
    note.className = "hint";
    note.textContent = t("detail.not_graded");
    container.append(note);
    return;
  }
  renderEvaluation(container, data, t);
  for (const view of evaluationViews) view(container, data, t, context);
}

/**
 * Fill `list` with the utterances of a past conversation, as the conversation page shows them.
 * @param {HTMLOListElement} list
 * @param {{role: string, text: string, start_s: number|null, interrupted: boolean}[]} transcript
 */
export function renderPastTranscript(list, transcript, t) {
  const doc = list.ownerDocument;
  list.replaceChildren();
  for (const u of Array.isArray(transcript) ? transcript : []) {
    if (!u || (u.role !== "user" && u.role !== "model")) continue;
    const li = doc.createElement("li");
    li.className = `utterance utterance-${u.role}`;
    li.dataset.role = u.role;
    li.dataset.final = "true";
    if (typeof u.start_s === "number") li.dataset.startS = String(u.start_s);
    const who = doc.createElement("span");
    who.className = "utterance-who";
    who.textContent = t(`role.${u.role}`);
    const text = doc.createElement("p");
    text.className = "utterance-text";
    text.textContent = String(u.text ?? "");
    li.append(who, text);
    if (u.interrupted) {
      li.dataset.interrupted = "true";
      const note = doc.createElement("span");
      note.className = "utterance-note";
      note.textContent = t("utterance.interrupted");
      li.append(note);
    }
    list.append(li);
  }
}
