// Specification of static/transcript.js: how relay events become one utterance per turn.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Transcript } from "../../static/transcript.js";

const view = (t) => t.utterances.map(({ role, text, final }) => [role, text, final]);

test("cumulative interim text is replaced, and the final text closes the utterance", () => {
  const t = new Transcript();
  t.onTranscript("user", "こんに", false);
  t.onTranscript("user", "こんにちは", false);
  assert.deepEqual(view(t), [["user", "こんにちは", false]]);
  t.onTranscript("user", "こんにちは。", true);
  assert.deepEqual(view(t), [["user", "こんにちは。", true]]);
});

test("interim deltas are appended when they do not repeat the text so far", () => {
  const t = new Transcript();
  t.onTranscript("model", "Hello", false);
  t.onTranscript("model", " there", false);
  assert.deepEqual(view(t), [["model", "Hello there", false]]);
});

test("each side gets its own utterance, and a new turn starts a new one", () => {
  const t = new Transcript();
  t.onTranscript("user", "hi", true);
  t.onTranscript("model", "hello", false);
  t.onComplete("hello!");
  t.onTranscript("user", "again", false);
  assert.deepEqual(view(t), [
    ["user", "hi", true],
    ["model", "hello!", true],
    ["user", "again", false],
  ]);
});

test("complete closes an open user utterance and takes full_text as the model's words", () => {
  const t = new Transcript();
  t.onTranscript("user", "question", false);
  t.onTranscript("model", "ans", false);
  const changed = t.onComplete("answer");
  assert.equal(changed.length, 2);
  assert.deepEqual(view(t), [
    ["user", "question", true],
    ["model", "answer", true],
  ]);
});

test("text-mode chunks build one model utterance that complete finalises", () => {
  const t = new Transcript();
  t.addTyped("hello");
  t.onChunk("Hi, ");
  t.onChunk("how can I help?");
  assert.deepEqual(view(t)[1], ["model", "Hi, how can I help?", false]);
  t.onComplete("Hi, how can I help?");
  assert.deepEqual(view(t), [
    ["user", "hello", true],
    ["model", "Hi, how can I help?", true],
  ]);
});

test("complete with text but no earlier pieces still shows the model's reply", () => {
  const t = new Transcript();
  t.onComplete("reply");
  assert.deepEqual(view(t), [["model", "reply", true]]);
});

test("an empty complete adds nothing", () => {
  const t = new Transcript();
  assert.deepEqual(t.onComplete(""), []);
  assert.equal(t.utterances.length, 0);
});

test("interrupted closes the model's utterance where it stopped and marks it", () => {
  const t = new Transcript();
  t.onTranscript("model", "I was saying", false);
  t.onInterrupted();
  const [u] = t.utterances;
  assert.equal(u.final, true);
  assert.equal(u.interrupted, true);
  assert.equal(u.text, "I was saying");
});

test("the relay's final transcript and complete after an interruption do not duplicate it", () => {
  const t = new Transcript();
  t.onTranscript("model", "I was saying", false);
  t.onInterrupted();
  t.onTranscript("model", "I was saying", true);
  t.onComplete("");
  assert.deepEqual(view(t), [["model", "I was saying", true]]);
  assert.equal(t.utterances[0].interrupted, true);
});

test("model speech after an interruption starts a new utterance", () => {
  const t = new Transcript();
  t.onTranscript("model", "first", false);
  t.onInterrupted();
  t.onTranscript("user", "wait", true);
  t.onTranscript("model", "second", false);
  assert.deepEqual(view(t), [
    ["model", "first", true],
    ["user", "wait", true],
    ["model", "second", false],
  ]);
});

test("a typed turn appears at once as a final user utterance", () => {
  const t = new Transcript();
  const changed = t.addTyped("見積もりをお願いします");
  assert.equal(changed.length, 1);
  assert.deepEqual(view(t), [["user", "見積もりをお願いします", true]]);
  assert.equal(t.utterances[0].typed, true);
});

test("a server echo of a typed turn is not shown twice", () => {
  const t = new Transcript();
  t.addTyped("hello");
  assert.deepEqual(t.onTranscript("user", "hel", false), []);
  assert.deepEqual(t.onTranscript("user", "hello", true), []);
  t.onTranscript("user", "hello", true); // a later spoken "hello" is a new utterance
  assert.equal(t.utterances.length, 2);
});

test("unknown roles and empty interim pieces are ignored", () => {
  const t = new Transcript();
  assert.deepEqual(t.onTranscript("system", "x", true), []);
  assert.deepEqual(t.onTranscript("user", "", false), []);
  assert.equal(t.utterances.length, 0);
});

test("finishAll closes whatever is still open", () => {
  const t = new Transcript();
  t.onTranscript("user", "a", false);
  t.onTranscript("model", "b", false);
  assert.equal(t.finishAll().length, 2);
  assert.ok(t.utterances.every((u) => u.final));
});
