// The measured facts of a graded conversation as cards: the value large, what good looks like
// beside it, and a verdict where there is a fair yardstick. metricCards() is pure (the node tests
// read it); renderMetrics() draws the cards (page contract: `metrics`, one child per fact with
// data-metric and data-value).
//
// What good looks like, and where the yardsticks come from:
// - Talk share: top sales reps talk about 43 % of a call and listen 57 %; past 65 % win rates
//   fall (Gong Labs, "The highest converting talk-to-listen ratio", 25,537 B2B sales calls, 2016,
//   updated 2025: https://www.gong.io/resources/labs/talk-to-listen-conversion-ratio/); the
//   SalesLoft × Gong discovery-call benchmark (519,000 discovery calls, 2017) put closed-won
//   reps at 46 %. Good: 35–55 %.
// - Questions: 11–14 per discovery call, spread through it (the same 2017 benchmark). A role-play
//   is shorter than a real call, so this is a hint, not a verdict.
// - Longest monologue: win rates fall when a company pitch runs past two minutes (Gong, "The
//   science of winning sales conversations", 257,967 calls); we ask for under a minute before
//   checking in with the customer. Good: ≤ 60 s; ≤ 120 s fair.
// - Interruptions: every barge-in on the customer costs listening; none is the aim.
// - Speaking rate: clear Japanese broadcast speech runs at about 300 characters a minute (NHK's
//   announcers' rule of thumb); English conversation at about 150 words a minute (National
//   Center for Voice and Speech). Good: within ±50 (ja) or ±20 (en) of that.
// - Response latency: in conversation, turns follow each other within a few hundred
//   milliseconds in every language studied (Stivers et al., "Universals and cultural variation
//   in turn-taking in conversation", PNAS 106(26), 2009); a hint, not a verdict.
import { clock, decimal, fill, numberOrNull } from "./format.js";

/** Speaking rate yardsticks: [good low, good high, fair low, fair high] per unit. */
const RATE_RANGES = Object.freeze({
  chars_per_min: [250, 350, 200, 400],
  words_per_min: [130, 170, 110, 190],
});

// Each card: the fact's name in evaluation.metrics, how its value reads, and its verdict.
const CARDS = [
  {
    name: "talk_share_user",
    text: (v) => `${Math.round(v * 100)} %`,
    verdict: (v) => band(v, [0.35, 0.55, 0, 0.65]),
  },
  { name: "questions_user", text: (v) => String(v) },
  {
    name: "longest_monologue_s",
    text: (v, t) => seconds(v.user, t),
    verdict: (v) => band(v.user, [0, 60, 0, 120]),
  },
  {
    name: "interruptions",
    text: (v) => String(v.by_user),
    verdict: (v) => band(v.by_user, [0, 0, 0, 1]),
  },
  { name: "fillers_user", text: (v) => String(v) },
  {
    name: "speech_rate_user",
    text: (v, t, m) => `${Math.round(v)} ${t(`unit.${m.speech_rate_unit}`)}`,
    verdict: (v, m) => band(v, RATE_RANGES[m.speech_rate_unit] || null),
    hint: (m) => `metric.speech_rate_user.good.${m.speech_rate_unit === "words_per_min" ? "words" : "chars"}_per_min`,
  },
  { name: "response_latency_s", text: (v, t) => seconds(v.user_p50, t) },
  { name: "turns", text: (v, t) => fill(t("metric.pair"), { u: v.user, m: v.model }) },
  { name: "talk_s", text: (v, t) => fill(t("metric.pair"), { u: clock(v.user), m: clock(v.model) }) },
  { name: "duration_s", text: (v) => clock(v) },
];

/**
 * The cards for `metrics` (evaluation.metrics), in the order they are shown. Pure.
 * @returns {{name: string, value: string, text: string, label: string, hint: string,
 *            verdict: "good"|"fair"|"watch"|null}[]} value: data-value, the fact as measured (a number,
 *            JSON for an object, "" for null); text "—" when the part shown was not measured
 */
export function metricCards(metrics, t) {
  if (!metrics || typeof metrics !== "object") return [];
  return CARDS.map((card) => {
    const raw = metrics[card.name];
    const measured = raw !== null && raw !== undefined && readable(raw, card.name);
    return {
      name: card.name,
      value: raw === null || raw === undefined ? "" : dataValue(raw),
      text: measured ? card.text(raw, t, metrics) : "—",
      label: t(`metric.${card.name}`),
      hint: t(measured ? (card.hint ? card.hint(metrics) : `metric.${card.name}.good`) : "metric.unmeasured"),
      verdict: measured && card.verdict ? card.verdict(raw, metrics) : null,
    };
  });
}

/**
 * `good` inside [goodLow, goodHigh], `fair` inside [fairLow, fairHigh], else `watch`; null without a range.
 * @param {number|null} value
 * @param {number[]|null} range [goodLow, goodHigh, fairLow, fairHigh]
 */
export function band(value, range) {
  const v = numberOrNull(value);
  if (v === null || !range) return null;
  const [goodLow, goodHigh, fairLow, fairHigh] = range;
  if (v >= goodLow && v <= goodHigh) return "good";
  return v >= fairLow && v <= fairHigh ? "fair" : "watch";
}

/** Fill `container` with one card per fact (the element is the page contract's `metrics`). */
export function renderMetrics(container, metrics, t) {
  const doc = container.ownerDocument;
  container.replaceChildren();
  for (const card of metricCards(metrics, t)) {
    const item = doc.createElement("li");
    item.className = `metric${card.verdict ? ` metric-${card.verdict}` : ""}`;
    item.dataset.metric = card.name;
    item.dataset.value = card.value;
    item.append(text(doc, "span", card.label, "metric-label"), text(doc, "strong", card.text, "metric-value"));
    if (card.verdict) item.append(text(doc, "span", t(`verdict.${card.verdict}`), "metric-verdict"));
    item.append(text(doc, "span", card.hint, "metric-hint"));
    container.append(item);
  }
}

function readable(value, name) {
  if (typeof value === "number") return Number.isFinite(value);
  if (typeof value !== "object") return false;
  const key = { longest_monologue_s: "user", interruptions: "by_user", response_latency_s: "user_p50" }[name];
  return key === undefined || numberOrNull(value[key]) !== null;
}

function dataValue(raw) {
  return typeof raw === "number" ? String(raw) : JSON.stringify(raw);
}

function seconds(value, t) {
  return `${decimal(value, value < 1 ? 2 : 1)} ${t("unit.s")}`; // a pause of 0.03 s is not "0 s"
}

function text(doc, tag, content, className) {
  const node = doc.createElement(tag);
  node.textContent = content;
  node.className = className;
  return node;
}
