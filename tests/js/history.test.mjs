// Specification of /history's pure pieces: the progress chart's geometry, how a conversation is worded,
// the API's query strings, and the history template's hooks and words.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { fill, messages, nextLanguage, storeLanguage, storedLanguage, translator } from "../../static/i18n.js";
import { formatDuration, formatScore, outcomeKey, sessionFromHash, usageText } from "../../static/history-format.js";
import { withQuery } from "../../static/learner-api.js";
import { CHART, progressModel } from "../../static/progress.js";

const history = readFileSync(new URL("../../templates/history.html", import.meta.url), "utf8");
const note = readFileSync(new URL("../../templates/_learner_note.html", import.meta.url), "utf8");

const entry = (n, score, talk = null) => ({
  session_id: `2025031${n}T090000Z-000000000000000${n}`, started_at: `2025-03-1${n}T09:00:00+00:00`,
  score, talk_share_user: talk,
});

test("the chart has one score point per graded conversation, oldest on the left", () => {
  const newestFirst = [entry(4, null), entry(3, 80, 0.5), entry(2, 40), entry(1, 60, 0.7)];
  const model = progressModel(newestFirst);
  assert.deepEqual(model.scores.map((p) => p.sessionId), [entry(1).session_id, entry(2).session_id, entry(3).session_id]);
  assert.deepEqual(model.scores.map((p) => p.value), [60, 40, 80]);
  const xs = model.scores.map((p) => p.x);
  assert.equal(xs[0], CHART.left);
  assert.equal(xs[2], CHART.width - CHART.right);
  assert.ok(xs[0] < xs[1] && xs[1] < xs[2]);
  assert.equal(model.scoreLine.split(" ").length, 3);
});

test("higher scores are drawn higher, 0 on the bottom line and 100 on the top one", () => {
  const model = progressModel([entry(1, 0), entry(2, 100), entry(3, 50)]);
  const [zero, hundred, fifty] = model.scores.map((p) => p.y);
  assert.equal(zero, CHART.height - CHART.bottom);
  assert.equal(hundred, CHART.top);
  assert.equal(fifty, (zero + hundred) / 2);
  assert.deepEqual(model.ticks.map((t) => t.value), [0, 25, 50, 75, 100]);
});

test("talk share is drawn where it was measured, as a percentage on the same scale", () => {
  const model = progressModel([entry(1, 60, 0.25), entry(2, 70), entry(3, 80, 1.4)]);
  assert.deepEqual(model.talk.map((p) => [p.sessionId, p.value]), [[entry(1).session_id, 25], [entry(3).session_id, 100]]);
  assert.equal(model.talk[0].x, model.scores[0].x);
});

test("one graded conversation sits in the middle; none gives an empty chart", () => {
  const one = progressModel([entry(1, 55)]);
  assert.equal(one.scores[0].x, CHART.left + (CHART.width - CHART.left - CHART.right) / 2);
  const none = progressModel([entry(1, null), { session_id: 7, score: 10 }, null]);
  assert.deepEqual([none.scores, none.talk, none.scoreLine], [[], [], ""]);
});

test("a conversation is worded in the page's language", () => {
  const ja = translator("ja");
  const en = translator("en");
  assert.deepEqual([0, 5, 65, 3600 + 62, "x"].map(formatDuration), ["0:00", "0:05", "1:05", "1:01:02", "0:00"]);
  assert.equal(formatScore(77.6, ja), "78 点");
  assert.equal(formatScore(null, en), "Not graded");
  assert.equal(outcomeKey({ appointment: true, details: {} }), "history.item.appointment");
  assert.equal(outcomeKey({ name: "appointment", details: {} }), "history.item.appointment");
  assert.equal(outcomeKey({ appointment: false }), "history.item.no_outcome");
  assert.equal(outcomeKey(null), "history.item.no_outcome");
  const me = { usage_today: { conversations: 2, seconds: 125 }, limits: { daily_seconds: 3600, concurrent: 2 },
    resets_in_s: 3601 };
  assert.equal(usageText(me, en), "Today you practised 2 time(s), 2:05 in all (up to 60 min a day, 2 at once). "
    + "The limit resets in 2 h (at 00:00 UTC).");
});

test("only a well-formed session id in the URL fragment opens a conversation", () => {
  assert.equal(sessionFromHash("#20250310T090000Z-00ff"), "20250310T090000Z-00ff");
  assert.equal(sessionFromHash("#20250310T090000Z%2D00ff"), "20250310T090000Z-00ff");
  for (const bad of ["", "#", "#../etc", "#a/b", "#%E0%A4%A", "#-leading"]) assert.equal(sessionFromHash(bad), null, bad);
});

test("query strings carry only the filters given", () => {
  assert.equal(withQuery("/api/x", { limit: 100, cursor: null, scenario: " ", learner: "a@b.c" }),
    "/api/x?limit=100&learner=a%40b.c");
  assert.equal(withQuery("/api/x", {}), "/api/x");
});

test("placeholders are filled; the language choice is remembered and cycles", () => {
  assert.equal(fill("{a} and {b}", { a: 1 }), "1 and {b}");
  const store = new Map();
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  storeLanguage("en", storage);
  assert.equal(storedLanguage(storage), "en");
  const blocked = { getItem: () => { throw new Error("blocked"); }, setItem: () => { throw new Error("blocked"); } };
  assert.equal(storedLanguage(blocked), null);
  storeLanguage("ja", blocked);
  assert.equal(nextLanguage("ja"), "en");
  assert.equal(nextLanguage("en"), "ja");
});

test("the history template has its hooks, its words in Japanese, and no inline code", () => {
  for (const id of ["history", "progress-chart", "recording", "delete", "delete-confirm", "feedback", "error"]) {
    assert.match(history, new RegExp(`data-testid="${id}"`), id);
  }
  const t = translator("ja");
  for (const source of [history, note]) {
    const found = [...source.matchAll(/data-i18n="([^"]+)"[^>]*>([^<]*)</g)];
    for (const [, key, text] of found) {
      assert.ok(key in messages.ja, key);
      assert.equal(text.trim(), t(key), key);
    }
    assert.doesNotMatch(source, /<script(?![^>]*\ssrc=)[^>]*>/, "no inline <script>");
    assert.doesNotMatch(source, /\son[a-z]+=/i, "no inline event handlers");
    assert.doesNotMatch(source, /\sstyle=/i, "no inline styles");
    assert.doesNotMatch(source, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, "no external assets");
  }
});

test("the practice limit has a plain-language message", () => {
  assert.ok("error.quota_exceeded" in messages.ja && "error.quota_exceeded" in messages.en);
});
