// Who spoke when, as an inline SVG: one lane per side, one bar per stretch of speech, barge-ins
// marked. timelineGeometry() is pure (the node tests check it); renderTimeline() draws it.
// Page contract: the `timeline` element holds one child per stretch, with data-role,
// data-start-s, data-end-s and data-interruption.
import { clock, fill, numberOrNull } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const ROLES = ["user", "model"];

/** The drawing's size in SVG units: the width, each lane's height, the gap and padding around lanes. */
export const TIMELINE_SIZE = Object.freeze({ width: 1000, lane: 18, gap: 8, pad: 4, minBar: 2 });

/**
 * Where each stretch goes. Pure.
 * @param {{role: string, start_s: number, end_s: number, interruption: boolean}[]} stretches
 *   evaluation.metrics.timeline
 * @param {number|null} durationS the conversation's length (seconds); the last stretch's end if longer
 * @returns {{width: number, height: number, durationS: number,
 *   lanes: {role: string, y: number, height: number}[],
 *   bars: {role: string, startS: number, endS: number, interruption: boolean,
 *          x: number, y: number, width: number, height: number}[]}}
 */
export function timelineGeometry(stretches, durationS, size = TIMELINE_SIZE) {
  const valid = (Array.isArray(stretches) ? stretches : []).filter(
    (s) => s && ROLES.includes(s.role) && numberOrNull(s.start_s) !== null && numberOrNull(s.end_s) !== null,
  );
  const lastEnd = Math.max(0, ...valid.map((s) => s.end_s));
  const total = Math.max(numberOrNull(durationS) || 0, lastEnd) || 1;
  const lanes = ROLES.map((role, i) => ({ role, y: size.pad + i * (size.lane + size.gap), height: size.lane }));
  const laneOf = Object.fromEntries(lanes.map((lane) => [lane.role, lane]));
  const scale = size.width / total;
  const bars = valid.map((s) => {
    const x = Math.min(Math.max(s.start_s, 0) * scale, size.width - size.minBar);
    const width = Math.min(Math.max((s.end_s - Math.max(s.start_s, 0)) * scale, size.minBar), size.width - x);
    return {
      role: s.role, startS: s.start_s, endS: s.end_s, interruption: Boolean(s.interruption),
      x: round(x), y: laneOf[s.role].y, width: round(width), height: size.lane,
    };
  });
  return { width: size.width, height: 2 * size.pad + 2 * size.lane + size.gap, durationS: total, lanes, bars };
}

/**
 * Draw the timeline of `metrics` (evaluation.metrics) into `figure`; nothing when it has none.
 * @returns {SVGSVGElement|null} the page contract's `timeline` element
 */
export function renderTimeline(figure, metrics, t) {
  const doc = figure.ownerDocument;
  figure.replaceChildren();
  if (!metrics || !Array.isArray(metrics.timeline)) return null;
  const geometry = timelineGeometry(metrics.timeline, metrics.duration_s);
  const frame = svg(doc, "svg", { viewBox: `0 0 ${geometry.width} ${geometry.height}`, class: "timeline-frame",
    preserveAspectRatio: "none", role: "img" });
  frame.setAttribute("aria-label", t("timeline.label"));
  for (const lane of geometry.lanes) {
    frame.append(svg(doc, "rect", { x: 0, y: lane.y, width: geometry.width, height: lane.height,
      class: `lane lane-${lane.role}` }));
  }
  const stretches = svg(doc, "svg", { x: 0, y: 0, width: geometry.width, height: geometry.height,
    class: "timeline-stretches" });
  stretches.dataset.testid = "timeline";
  for (const bar of geometry.bars) stretches.append(barElement(doc, bar, t));
  frame.append(stretches);
  const caption = doc.createElement("figcaption");
  caption.className = "timeline-caption";
  for (const key of ["timeline.user", "timeline.model", "timeline.interruption"]) {
    const item = doc.createElement("span");
    item.className = `legend legend-${key.split(".")[1]}`;
    item.textContent = t(key);
    caption.append(item);
  }
  const axis = doc.createElement("div");
  axis.className = "timeline-axis";
  axis.append(span(doc, clock(0)), span(doc, clock(geometry.durationS)));
  figure.append(frame, axis, caption);
  return stretches;
}

function barElement(doc, bar, t) {
  const rect = svg(doc, "rect", { x: bar.x, y: bar.y, width: bar.width, height: bar.height, rx: 3,
    class: `stretch stretch-${bar.role}${bar.interruption ? " interruption" : ""}` });
  rect.dataset.role = bar.role;
  rect.dataset.startS = String(bar.startS);
  rect.dataset.endS = String(bar.endS);
  rect.dataset.interruption = String(bar.interruption);
  const title = doc.createElementNS(SVG, "title");
  title.textContent = fill(t(bar.interruption ? "timeline.stretch.interruption" : "timeline.stretch"),
    { who: t(`timeline.${bar.role}`), from: clock(bar.startS), to: clock(bar.endS) });
  rect.append(title);
  return rect;
}

function svg(doc, tag, attributes) {
  const node = doc.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

function span(doc, text) {
  const node = doc.createElement("span");
  node.textContent = text;
  return node;
}

function round(value) {
  return Math.round(value * 100) / 100;
}
