// The progress chart on /history: a learner's score over their graded conversations, and their share of
// the talking (evaluation.metrics.talk_share_user, when measured), drawn as inline SVG. No library, no
// inline style (the CSP forbids it): geometry is attributes, colours come from learners.css.
// progressModel() is pure (tested in node); drawProgress() puts a model into an <svg>.

const SVG = "http://www.w3.org/2000/svg";

/** The chart's drawing area, in SVG user units (the template's viewBox is 0 0 WIDTH HEIGHT). */
export const CHART = Object.freeze({ width: 640, height: 240, left: 40, right: 16, top: 12, bottom: 28 });
export const Y_TICKS = Object.freeze([0, 25, 50, 75, 100]);

/**
 * Where each graded conversation goes on the chart, oldest on the left, evenly spaced.
 * @param {{session_id: string, started_at?: string, score?: number|null, talk_share_user?: number|null}[]} entries
 *   conversations in any order (the API gives newest first); ungraded ones are left out
 * @returns {{scores: object[], talk: object[], scoreLine: string, talkLine: string, ticks: {value: number, y: number}[]}}
 */
export function progressModel(entries, box = CHART) {
  const graded = (entries || [])
    .filter((e) => e && typeof e.session_id === "string" && isNumber(e.score))
    .sort((a, b) => order(a).localeCompare(order(b)));
  const innerW = box.width - box.left - box.right;
  const x = (i) => round(box.left + (graded.length === 1 ? innerW / 2 : (innerW * i) / (graded.length - 1)));
  const y = (percent) => round(box.top + (box.height - box.top - box.bottom) * (1 - clamp(percent, 0, 100) / 100));
  const scores = graded.map((e, i) => ({
    sessionId: e.session_id, startedAt: e.started_at || null, value: clamp(Math.round(e.score), 0, 100),
    x: x(i), y: y(e.score),
  }));
  const talk = graded.flatMap((e, i) => (isNumber(e.talk_share_user)
    ? [{ sessionId: e.session_id, startedAt: e.started_at || null, value: Math.round(clamp(e.talk_share_user, 0, 1) * 100),
      x: x(i), y: y(e.talk_share_user * 100) }]
    : []));
  return {
    scores,
    talk,
    scoreLine: scores.map((p) => `${p.x},${p.y}`).join(" "),
    talkLine: talk.map((p) => `${p.x},${p.y}`).join(" "),
    ticks: Y_TICKS.map((value) => ({ value, y: y(value) })),
  };
}

/**
 * Draw `model` into `svg` (emptied first). Each score point is a focusable circle with
 * data-session-id and data-score; `onOpen(sessionId)` runs when one is clicked or chosen with Enter.
 * @param {SVGSVGElement} svg
 * @param {ReturnType<typeof progressModel>} model
 * @param {{pointLabel: (p: object) => string, talkLabel: (p: object) => string, onOpen: (id: string) => void}} options
 */
export function drawProgress(svg, model, { pointLabel, talkLabel, onOpen }, box = CHART) {
  const doc = svg.ownerDocument;
  const node = (tag, attrs, parent = svg) => {
    const el = doc.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
    parent.append(el);
    return el;
  };
  svg.replaceChildren();
  for (const tick of model.ticks) {
    node("line", { class: "chart-grid", x1: box.left, x2: box.width - box.right, y1: tick.y, y2: tick.y });
    node("text", { class: "chart-tick", x: box.left - 6, y: tick.y + 4, "text-anchor": "end" }).textContent = tick.value;
  }
  if (model.talk.length > 1) node("polyline", { class: "chart-line chart-talk", points: model.talkLine, fill: "none" });
  if (model.scores.length > 1) node("polyline", { class: "chart-line chart-score", points: model.scoreLine, fill: "none" });
  for (const p of model.talk) {
    const mark = node("rect", { class: "chart-point chart-talk", x: p.x - 4, y: p.y - 4, width: 8, height: 8,
      "data-metric": "talk_share_user", "data-value": p.value, "data-for-session": p.sessionId });
    node("title", {}, mark).textContent = talkLabel(p);
  }
  for (const p of model.scores) {
    const point = node("circle", { class: "chart-point chart-score", cx: p.x, cy: p.y, r: 6, tabindex: 0,
      role: "button", "data-session-id": p.sessionId, "data-score": p.value, "aria-label": pointLabel(p) });
    node("title", {}, point).textContent = pointLabel(p);
    point.addEventListener("click", () => onOpen(p.sessionId));
    point.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onOpen(p.sessionId);
      }
    });
  }
}

function order(entry) {
  return `${entry.started_at || ""}|${entry.session_id}`;
}

function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

function round(value) {
  return Math.round(value * 10) / 10;
}
