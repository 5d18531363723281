// Specification of the result view's pure pieces: the fact cards (values, verdicts, hints), the
// timeline's geometry, the evidence quotes and how one plays the recording, the outcome badge's words.
import { test } from "node:test";
import assert from "node:assert/strict";

import { evidenceItems, playFrom, recordingUrl } from "../../static/evidence.js";
import { clock, fill } from "../../static/format.js";
import { messages, translator } from "../../static/i18n.js";
import { band, metricCards } from "../../static/metrics.js";
import { outcomeOf, outcomeText } from "../../static/outcome.js";
import { TIMELINE_SIZE, timelineGeometry } from "../../static/timeline.js";

const en = translator("en");
const ja = translator("ja");

// The contract's example (docs/http-api.md), plus a timeline.
const METRICS = {
  duration_s: 312.4,
  talk_s: { user: 121.0, model: 98.5 },
  talk_share_user: 0.55,
  longest_monologue_s: { user: 24.1, model: 9.8 },
  turns: { user: 14, model: 15 },
  questions_user: 9,
  fillers_user: 6,
  interruptions: { by_user: 2, by_model: 0 },
  response_latency_s: { user_p50: 0.9, model_p50: 0.7 },
  speech_rate_user: 310.0,
  speech_rate_unit: "chars_per_min",
  timeline: [
    { role: "model", start_s: 0.5, end_s: 3.2, interruption: false },
    { role: "user", start_s: 4.0, end_s: 9.9, interruption: false },
    { role: "user", start_s: 12.0, end_s: 15.0, interruption: true },
  ],
};

test("there is one card per fact of evaluation.metrics, data-value carrying the fact itself", () => {
  const cards = metricCards(METRICS, en);
  const facts = Object.keys(METRICS).filter((name) => !["speech_rate_unit", "timeline"].includes(name));
  assert.deepEqual(cards.map((c) => c.name).sort(), facts.sort());
  for (const card of cards) {
    const raw = METRICS[card.name];
    assert.deepEqual(typeof raw === "number" ? Number(card.value) : JSON.parse(card.value), raw, card.name);
  }
});

test("each card reads as a person would say it", () => {
  const text = Object.fromEntries(metricCards(METRICS, en).map((c) => [c.name, c.text]));
  assert.deepEqual(text, {
    talk_share_user: "55 %", questions_user: "9", longest_monologue_s: "24.1 s", interruptions: "2",
    fillers_user: "6", speech_rate_user: "310 chars/min", response_latency_s: "0.9 s", turns: "14 / 15",
    talk_s: "2:01 / 1:38", duration_s: "5:12",
  });
  const japanese = Object.fromEntries(metricCards(METRICS, ja).map((c) => [c.name, c]));
  assert.equal(japanese.speech_rate_user.text, "310 字/分");
  assert.equal(japanese.longest_monologue_s.text, "24.1 秒");
  assert.match(japanese.talk_share_user.hint, /45 %/);
  const quick = metricCards({ ...METRICS, response_latency_s: { user_p50: 0.03, model_p50: 0.7 } }, en);
  assert.equal(quick.find((c) => c.name === "response_latency_s").text, "0.03 s", "a short pause is not 0 s");
});

test("verdicts follow the yardsticks: talk share, monologue, barge-ins, speaking rate", () => {
  const verdict = (overrides) => Object.fromEntries(
    metricCards({ ...METRICS, ...overrides }, en).filter((c) => c.verdict).map((c) => [c.name, c.verdict]));
  assert.deepEqual(verdict({}), { talk_share_user: "good", longest_monologue_s: "good", interruptions: "watch",
    speech_rate_user: "good" });
  assert.deepEqual(verdict({ talk_share_user: 0.62, longest_monologue_s: { user: 90, model: 3 },
    interruptions: { by_user: 1, by_model: 4 }, speech_rate_user: 380 }),
  { talk_share_user: "fair", longest_monologue_s: "fair", interruptions: "fair", speech_rate_user: "fair" });
  assert.deepEqual(verdict({ talk_share_user: 0.8, longest_monologue_s: { user: 150, model: 3 },
    interruptions: { by_user: 0, by_model: 4 }, speech_rate_user: 150, speech_rate_unit: "words_per_min" }),
  { talk_share_user: "watch", longest_monologue_s: "watch", interruptions: "good", speech_rate_user: "good" });
  assert.equal(band(0.2, [0.35, 0.55, 0, 0.65]), "fair", "too little talk is not as bad as too much");
  assert.equal(band(null, [0, 1, 0, 2]), null);
});

test("facts an upload could not measure read — with no verdict, and data-value empty", () => {
  const upload = { ...METRICS, talk_s: null, talk_share_user: null, longest_monologue_s: null, interruptions: null,
    response_latency_s: null, speech_rate_user: null, timeline: null };
  const cards = Object.fromEntries(metricCards(upload, en).map((c) => [c.name, c]));
  for (const name of ["talk_s", "talk_share_user", "longest_monologue_s", "interruptions", "speech_rate_user"]) {
    assert.deepEqual([cards[name].text, cards[name].value, cards[name].verdict], ["—", "", null], name);
    assert.equal(cards[name].hint, en("metric.unmeasured"));
  }
  assert.equal(cards.questions_user.text, "9");
  const latency = metricCards({ ...METRICS, response_latency_s: { user_p50: null, model_p50: 0.7 } }, en)
    .find((c) => c.name === "response_latency_s");
  assert.deepEqual([latency.text, JSON.parse(latency.value)], ["—", { user_p50: null, model_p50: 0.7 }],
    "the part shown was not measured; data-value still carries the fact");
  assert.deepEqual(metricCards(null, en), []);
});

test("every card has words in both languages", () => {
  for (const card of metricCards(METRICS, en)) {
    assert.ok(`metric.${card.name}` in messages.en && `metric.${card.name}` in messages.ja, card.name);
  }
  for (const key of ["verdict.good", "verdict.fair", "verdict.watch", "unit.chars_per_min", "unit.words_per_min"]) {
    assert.ok(key in messages.en && key in messages.ja, key);
  }
});

test("the timeline puts each stretch in its lane, to scale, barge-ins marked", () => {
  const g = timelineGeometry(METRICS.timeline, 20);
  const { width, lane, gap, pad } = TIMELINE_SIZE;
  assert.equal(g.width, width);
  assert.equal(g.height, 2 * pad + 2 * lane + gap);
  assert.deepEqual(g.lanes.map((l) => [l.role, l.y]), [["user", pad], ["model", pad + lane + gap]]);
  assert.deepEqual(g.bars.map((b) => [b.role, b.x, b.width, b.y, b.interruption]), [
    ["model", 25, 135, pad + lane + gap, false],
    ["user", 200, 295, pad, false],
    ["user", 600, 150, pad, true],
  ]);
  assert.deepEqual(g.bars.map((b) => [b.startS, b.endS]), METRICS.timeline.map((s) => [s.start_s, s.end_s]));
});

test("the timeline spans the longer of the duration and the last stretch; tiny stretches stay visible", () => {
  const g = timelineGeometry([{ role: "user", start_s: 0, end_s: 0.001, interruption: false },
    { role: "model", start_s: 30, end_s: 40, interruption: false }], 10);
  assert.equal(g.durationS, 40);
  assert.equal(g.bars[0].width, TIMELINE_SIZE.minBar);
  assert.equal(g.bars[1].x + g.bars[1].width, TIMELINE_SIZE.width);
  assert.deepEqual(timelineGeometry(null, null).bars, []);
  assert.deepEqual(timelineGeometry([{ role: "system", start_s: 0, end_s: 1 }, { role: "user", start_s: "x" }], 5)
    .bars, [], "stretches of unknown roles or without times are left out");
});

test("evidence quotes carry the time of the line they were matched to; untimed ones stay plain", () => {
  const evaluation = {
    criteria: [{ name: "質問力", evidence: ["ignored when refs exist"] }],
    evidence_refs: [
      { criterion: "質問力", quote: "お困りのことは？", role: "user", start_s: 42.3, end_s: 45.0 },
      { criterion: "傾聴", quote: "分かりました", role: null, start_s: null, end_s: null },
      { criterion: "x", quote: "  ", role: "user", start_s: 1, end_s: 2 },
    ],
  };
  assert.deepEqual(evidenceItems(evaluation), [
    { criteria: ["質問力"], quote: "お困りのことは？", role: "user", t: 42.3 },
    { criteria: ["傾聴"], quote: "分かりました", role: null, t: null },
  ]);
  assert.deepEqual(evidenceItems({ criteria: [{ name: "c", evidence: ["q1", ""] }] }),
    [{ criteria: ["c"], quote: "q1", role: null, t: null }], "an older grade without refs");
  assert.deepEqual(evidenceItems(null), []);
});

test("a quote given for several criteria is one item naming them all", () => {
  const ref = (criterion, quote, start) => ({ criterion, quote, role: "user", start_s: start, end_s: start + 1 });
  const items = evidenceItems({ evidence_refs: [ref("質問力", "何でしょうか？", 13.1), ref("傾聴", "はい", 2),
    ref("クロージング", "何でしょうか？", 13.1), ref("傾聴", "何でしょうか？", 40)] });
  assert.deepEqual(items.map((i) => [i.quote, i.t, i.criteria]), [
    ["何でしょうか？", 13.1, ["質問力", "クロージング"]],
    ["はい", 2, ["傾聴"]],
    ["何でしょうか？", 40, ["傾聴"]], // the same words said again later are another moment
  ]);
});

test("an evidence button plays the recording from its moment", async () => {
  const audio = { currentTime: 0, played: 0, play() { this.played += 1; return Promise.reject(new Error("paused")); } };
  playFrom(audio, 42.3);
  assert.deepEqual([audio.currentTime, audio.played], [42.3, 1]);
  playFrom(audio, -1);
  assert.equal(audio.currentTime, 0);
  assert.equal(recordingUrl("20250101T000000Z-ab/../x"), "/api/conversations/20250101T000000Z-ab%2F..%2Fx/audio");
});

test("the outcome badge names what was agreed and when", () => {
  const evaluation = { outcome: { appointment: true, details: { date: "2026-12-03", time: "14:00", topic: "demo" } } };
  const outcome = outcomeOf(evaluation);
  assert.deepEqual(outcome, { name: "appointment", details: { date: "2026-12-03", time: "14:00", topic: "demo" } });
  assert.equal(outcomeText(outcome, en), "Meeting booked: 2026-12-03 14:00 (demo)");
  assert.equal(outcomeText(outcome, ja), "アポイント獲得: 2026-12-03 14:00（demo）");
  assert.equal(outcomeText({ name: "contract", details: {} }, en), "contract");
  assert.equal(outcomeOf({ outcome: null }), null);
  assert.equal(outcomeOf({ outcome: { appointment: false, details: {} } }), null);
});

test("times read on a clock and templates fill in", () => {
  assert.deepEqual([clock(0), clock(59.9), clock(312.4), clock(-3)], ["0:00", "0:59", "5:12", "0:00"]);
  assert.equal(fill("{u} / {m} {x}", { u: 1, m: 2 }), "1 / 2 {x}");
});
