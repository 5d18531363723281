// Asking the server for the grade of a finished conversation, and showing it: the score first,
// then what was measured (outcome, fact cards, who spoke when, the quoted moments to play), then
// the written grade. Everything from the server is inserted as text (textContent), never as HTML.
import { renderEvidence } from "./evidence.js";
import { parseMarkdown, renderMarkdown } from "./markdown.js";
import { renderMetrics } from "./metrics.js";
import { renderOutcome } from "./outcome.js";
import { renderTimeline } from "./timeline.js";

const GRADING_TIMEOUT_MS = 180_000; // a real grading call can take tens of seconds

/**
 * POST /feedback {session_id} and classify the answer.
 * @returns {Promise<{kind: "graded", data: object} | {kind: "unavailable"} | {kind: "not_found"}
 *   | {kind: "failed", status: number, message: string}>}
 */
export async function requestFeedback(sessionId, { fetchImpl = fetch, timeoutMs = GRADING_TIMEOUT_MS } = {}) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const response = await fetchImpl("/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ session_id: sessionId }),
      signal: abort.signal,
    });
    const body = await readJson(response);
    return classify(response.status, body);
  } catch (err) {
    return { kind: "failed", status: 0, message: String((err && err.message) || err) };
  } finally {
    clearTimeout(timer);
  }
}

async function readJson(response) {
  const type = response.headers.get("Content-Type") || "";
  if (!type.includes("json")) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** Map an HTTP answer to what the page should do. Pure. */
export function classify(status, body) {
  if (status === 200 && body && typeof body === "object") return { kind: "graded", data: body };
  const code = body && body.error && body.error.code;
  if (status === 404 && code === "unknown_session") return { kind: "not_found" };
  // No such route (a server without grading), whatever its 404 body says.
  if (status === 404 || status === 405 || status === 501) return { kind: "unavailable" };
  const message = body && body.error && typeof body.error.message === "string" ? body.error.message : "";
  return { kind: "failed", status, message };
}

/** Clamp a score to a whole number 0..100, or null when it is not a number. */
export function normaliseScore(value) {
  const n = Number(value);
  if (value === null || value === undefined || value === "" || !Number.isFinite(n)) return null;
  return Math.round(Math.min(100, Math.max(0, n)));
}

/**
 * Fill `container` with the evaluation and set its data-score.
 * @param {HTMLElement} container the [data-testid=feedback] element
 * @param {{feedback?: string, evaluation?: object}} data the /feedback response
 * @param {(key: string) => string} t translator
 */
export function renderEvaluation(container, data, t) {
  const doc = container.ownerDocument;
  const evaluation = (data && typeof data.evaluation === "object" && data.evaluation) || {};
  const score = normaliseScore(evaluation.score);
  container.replaceChildren();
  const title = el(doc, "h2", t("feedback.title"), "feedback-title");
  title.tabIndex = -1; // focused when the grade arrives (ui.js), so it is announced and in view
  container.append(title);
  if (score !== null) {
    container.dataset.score = String(score);
    container.append(scoreCard(doc, score, t));
  }
  const outcome = renderOutcome(doc, evaluation, t);
  if (outcome) container.append(outcome);
  if (typeof evaluation.summary === "string" && evaluation.summary) {
    container.append(el(doc, "p", evaluation.summary, "summary"));
  }
  container.append(...measuredSections(doc, data, evaluation, t));
  const lists = el(doc, "div", null, "point-lists");
  lists.append(pointList(doc, t("feedback.good"), evaluation.good_points, "good"));
  lists.append(pointList(doc, t("feedback.improve"), evaluation.improvements, "improve"));
  container.append(lists);
  if (Array.isArray(evaluation.criteria) && evaluation.criteria.length) {
    container.append(el(doc, "h3", t("feedback.criteria")));
    container.append(criteriaTable(doc, evaluation.criteria, t));
  }
  if (typeof data.feedback === "string" && data.feedback.trim()) {
    const details = doc.createElement("details");
    details.className = "report";
    details.append(el(doc, "summary", t("feedback.report")));
    const report = el(doc, "div", null, "report-body");
    report.append(renderMarkdown(parseMarkdown(data.feedback), doc));
    details.append(report);
    container.append(details);
  }
}

// The measured facts, who spoke when, and the recording with the quoted moments (when there are any).
function measuredSections(doc, data, evaluation, t) {
  const sections = [];
  const metrics = evaluation.metrics && typeof evaluation.metrics === "object" ? evaluation.metrics : null;
  if (metrics) {
    const section = el(doc, "section", null, "measured");
    section.append(el(doc, "h3", t("metrics.title")));
    const cards = el(doc, "ul", null, "metric-cards");
    cards.dataset.testid = "metrics";
    renderMetrics(cards, metrics, t);
    section.append(cards);
    const figure = el(doc, "figure", null, "timeline");
    if (renderTimeline(figure, metrics, t)) section.append(el(doc, "h3", t("timeline.title")), figure);
    sections.push(section);
  }
  const recorded = data && data.stored && data.stored.audio && typeof data.session_id === "string";
  const moments = el(doc, "section", null, "evidence");
  renderEvidence(moments, evaluation, recorded ? data.session_id : null, t);
  if (moments.childElementCount) sections.push(el(doc, "h3", t("evidence.title")), moments);
  return sections;
}

function scoreCard(doc, score, t) {
  const card = el(doc, "div", null, "score-card");
  card.append(el(doc, "span", t("feedback.score"), "score-label"));
  const value = el(doc, "span", null, "score-value");
  value.append(el(doc, "strong", String(score)), el(doc, "span", " / 100", "score-max"));
  card.append(value);
  const meter = doc.createElement("meter");
  meter.min = 0;
  meter.max = 100;
  meter.low = 50;
  meter.high = 80;
  meter.optimum = 100;
  meter.value = score;
  meter.setAttribute("aria-label", t("feedback.score"));
  card.append(meter);
  return card;
}

function pointList(doc, title, items, kind) {
  const section = el(doc, "section", null, `points points-${kind}`);
  section.append(el(doc, "h3", title));
  const list = doc.createElement("ul");
  for (const item of Array.isArray(items) ? items : []) {
    if (typeof item === "string" && item) list.append(el(doc, "li", item));
  }
  section.append(list);
  return section;
}

function criteriaTable(doc, criteria, t) {
  const wrap = el(doc, "div", null, "table-scroll");
  const table = el(doc, "table", null, "criteria");
  const head = table.createTHead().insertRow();
  for (const key of ["feedback.criterion", "feedback.criterion.score", "feedback.comment"]) {
    const th = el(doc, "th", t(key));
    th.scope = "col";
    head.append(th);
  }
  const body = table.createTBody();
  for (const c of criteria) {
    if (!c || typeof c !== "object") continue;
    const row = body.insertRow();
    row.insertCell().textContent = String(c.name ?? "");
    const score = normaliseScore(c.score);
    const cell = row.insertCell();
    cell.className = "num";
    cell.textContent = score === null ? "—" : String(score);
    row.insertCell().textContent = String(c.comment ?? "");
  }
  wrap.append(table);
  return wrap;
}

function el(doc, tag, text, className) {
  const node = doc.createElement(tag);
  if (text !== null && text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}
