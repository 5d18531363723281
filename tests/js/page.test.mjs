// Specification of the page's small pure pieces: language choice and wording, the socket URL,
// and how a /feedback answer is classified.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { messages, pickLanguage, translator } from "../../static/i18n.js";
import { realtimeUrl } from "../../static/socket.js";
import { classify, normaliseScore } from "../../static/feedback.js";

const template = readFileSync(new URL("../../templates/index.html", import.meta.url), "utf8");

test("Japanese comes first; English follows the browser; a stored choice wins", () => {
  for (const [languages, stored, expected] of [
    [["ja-JP"], null, "ja"],
    [["en-US", "ja"], null, "en"],
    [["fr-FR", "en-GB"], null, "en"],
    [["fr-FR"], null, "ja"],
    [[], null, "ja"],
    [["en-US"], "ja", "ja"],
    [["ja-JP"], "xx", "ja"],
  ]) {
    assert.equal(pickLanguage(languages, stored), expected, `${languages} / ${stored}`);
  }
});

test("both languages have the same words", () => {
  assert.deepEqual(Object.keys(messages.en).sort(), Object.keys(messages.ja).sort());
  for (const [key, text] of Object.entries(messages.en)) assert.ok(text.trim(), key);
});

test("every data-i18n key in the template exists, and the template's text is the Japanese one", () => {
  const t = translator("ja");
  const found = [...template.matchAll(/data-i18n="([^"]+)"[^>]*>([^<]*)</g)];
  assert.ok(found.length > 10);
  for (const [, key, text] of found) {
    assert.ok(key in messages.ja, key);
    assert.equal(text.trim(), t(key), key);
  }
  for (const [, key] of template.matchAll(/data-i18n-(?:placeholder|aria-label)="([^"]+)"/g)) {
    assert.ok(key in messages.ja, key);
  }
});

test("the template has every automation hook of the page contract and no inline code", () => {
  for (const id of ["scenario", "start", "end", "status", "transcript", "text-input", "send", "feedback", "error",
    "grade-recorded"]) {
    assert.match(template, new RegExp(`data-testid="${id}"`), id);
  }
  assert.doesNotMatch(template, /<script(?![^>]*\ssrc=)[^>]*>/, "no inline <script>");
  assert.doesNotMatch(template, /\son[a-z]+=/i, "no inline event handlers");
  assert.doesNotMatch(template, /\sstyle=/i, "no inline styles");
  assert.doesNotMatch(template, /<style/i, "no style blocks");
  assert.doesNotMatch(template, /https?:\/\//, "no external assets");
});

test("every error code of the protocol has a plain-language message", () => {
  const codes = ["bad_request", "too_large", "rate_limited", "unauthorized", "forbidden_origin", "capacity",
    "upstream_unavailable", "upstream_error", "session_limit", "idle_timeout", "shutting_down", "internal"];
  for (const code of [...codes, "mic_denied", "connection_lost"]) assert.ok(`error.${code}` in messages.ja, code);
});

test("an unknown key falls back to Japanese, then to the key", () => {
  assert.equal(translator("de")("start"), messages.ja.start);
  assert.equal(translator("en")("no.such.key"), "no.such.key");
});

test("the socket URL follows the page's scheme and carries only the given parameters", () => {
  const page = new URL("https://talk.example/app?x=1");
  assert.equal(
    realtimeUrl(page, { scenario: "sales ja", mode: "voice", resume: null }),
    "wss://talk.example/ws/realtime?scenario=sales+ja&mode=voice",
  );
  assert.equal(realtimeUrl(new URL("http://127.0.0.1:8080/"), {}), "ws://127.0.0.1:8080/ws/realtime");
});

test("feedback answers are classified into what the page shows", () => {
  const cases = [
    [200, { evaluation: {} }, "graded"],
    [404, null, "unavailable"],
    [404, { error: { code: "not_found", message: "The requested URL was not found" } }, "unavailable"],
    [405, { error: { code: "method_not_allowed" } }, "unavailable"],
    [404, { error: { code: "unknown_session", message: "no recorded conversation" } }, "not_found"],
    [502, { error: { code: "grading_failed", message: "upstream" } }, "failed"],
    [500, null, "failed"],
    [200, null, "failed"],
  ];
  for (const [status, body, kind] of cases) assert.equal(classify(status, body).kind, kind, `${status}`);
});

test("scores are clamped to whole numbers between 0 and 100", () => {
  for (const [input, expected] of [[72.4, 72], [-5, 0], [140, 100], ["88", 88], [null, null], ["x", null], [undefined, null]]) {
    assert.equal(normaliseScore(input), expected, String(input));
  }
});
