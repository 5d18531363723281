// Specification of static/transcript.js: relay events become utterances exactly as the protocol
// defines them, for every order in which the relay (livetalk/relay.py) can send them.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Transcript } from "../../static/transcript.js";

const view = (t) => t.utterances.map(({ role, text, final }) => [role, text, final]);
const marks = (t) => t.utterances.map(({ interrupted, typed }) => ({ interrupted, typed }));

// Feed a list of relay events (as the controller would) and return the transcript.
function play(events) {
  const t = new Transcript();
  for (const [kind, ...args] of events) {
    if (kind === "transcript") t.onTranscript(...args);
    else if (kind === "chunk") t.onChunk(...args);
    else if (kind === "complete") t.onComplete(...args);
    else if (kind === "interrupted") t.onInterrupted();
    else if (kind === "typed") t.addTyped(...args);
    else throw new Error(kind);
  }
  return t;
}

// --- voice mode ----------------------------------------------------------------------------

test("a transcript's text replaces the utterance's text, and final closes it", () => {
  const t = play([
    ["transcript", "user", "こんに", false],
    ["transcript", "user", "こんにちは", false],
  ]);
  assert.deepEqual(view(t), [["user", "こんにちは", false]]);
  t.onTranscript("user", "こんにちは。", true);
  assert.deepEqual(view(t), [["user", "こんにちは。", true]]);
});

test("a transcript that does not extend the previous text still replaces it: no guessing at deltas", () => {
  const t = play([
    ["transcript", "model", "Hello", false],
    ["transcript", "model", "Hi there", false],
  ]);
  assert.deepEqual(view(t), [["model", "Hi there", false]]);
});

test("after a final transcript the next one of that role starts a new utterance, even with the same words", () => {
  const t = play([
    ["transcript", "user", "はい", true],
    ["transcript", "user", "はい", true],
  ]);
  assert.deepEqual(view(t), [["user", "はい", true], ["user", "はい", true]]);
});

test("a spoken exchange: the user's words, the model's words, and complete's full_text as the model's turn", () => {
  const t = play([
    ["transcript", "user", "御社の", false],
    ["transcript", "user", "御社の課題は", false],
    ["transcript", "user", "御社の課題は", true],
    ["transcript", "model", "はい、", false],
    ["transcript", "model", "はい、人手不足です。", false],
    ["transcript", "model", "はい、人手不足です。", true],
    ["complete", "はい、人手不足です。"],
  ]);
  assert.deepEqual(view(t), [["user", "御社の課題は", true], ["model", "はい、人手不足です。", true]]);
});

test("each side has its own utterance while both are open", () => {
  const t = play([
    ["transcript", "user", "question", false],
    ["transcript", "model", "ans", false],
    ["transcript", "user", "question two", false],
  ]);
  assert.deepEqual(view(t), [["user", "question two", false], ["model", "ans", false]]);
});

test("a barge-in: the cut reply is marked, the relay's closing transcript lands on it, the next reply is new", () => {
  const t = play([
    ["transcript", "model", "I was saying", false],
    ["interrupted"],
    ["transcript", "model", "I was saying", true], // the relay closes the cut utterance at once
    ["complete", ""], // Gemini's turnComplete after an interruption carries no text
    ["transcript", "user", "wait", true],
    ["transcript", "model", "Sure", false],
    ["transcript", "model", "Sure.", true],
    ["complete", "Sure."],
  ]);
  assert.deepEqual(view(t), [["model", "I was saying", true], ["user", "wait", true], ["model", "Sure.", true]]);
  assert.deepEqual(marks(t).map((m) => m.interrupted), [true, false, false]);
});

test("interrupted shows the cut utterance as final at once", () => {
  const t = play([["transcript", "model", "I was", false]]);
  const changed = t.onInterrupted();
  assert.deepEqual(changed.map((u) => [u.text, u.final, u.interrupted]), [["I was", true, true]]);
});

test("interrupted after the model's utterance was closed marks it, and the next final starts a new utterance", () => {
  const t = play([
    ["transcript", "model", "Done.", false],
    ["transcript", "model", "Done.", true],
    ["interrupted"], // the turn was still in progress (no complete yet): nothing more follows from the relay
    ["transcript", "model", "New.", true], // a whole utterance in one final event
  ]);
  assert.deepEqual(view(t), [["model", "Done.", true], ["model", "New.", true]]);
  assert.deepEqual(marks(t).map((m) => m.interrupted), [true, false]);
});

test("the cut utterance takes only the very next event; a model final after anything else is a new utterance", () => {
  const t = play([
    ["transcript", "model", "first", false],
    ["interrupted"],
    ["transcript", "user", "hm", false],
    ["transcript", "model", "second", true],
  ]);
  assert.deepEqual(view(t), [["model", "first", true], ["user", "hm", false], ["model", "second", true]]);
});

test("model words that arrive after an interruption form a new utterance, which complete's full_text fills", () => {
  const t = play([
    ["transcript", "model", "Our price", false],
    ["interrupted"],
    ["transcript", "model", "Our price", true],
    ["transcript", "model", " is", false], // late transcription of the cut audio: the relay started afresh
    ["transcript", "model", " is", true],
    ["complete", " is"],
  ]);
  assert.deepEqual(view(t), [["model", "Our price", true], ["model", " is", true]]);
  assert.deepEqual(marks(t).map((m) => m.interrupted), [true, false]);
});

test("interrupted with no model turn in progress changes nothing", () => {
  const t = play([["transcript", "model", "Bye.", true], ["complete", "Bye."]]);
  assert.deepEqual(t.onInterrupted(), []);
  assert.equal(t.utterances[0].interrupted, false);
});

test("a typed turn over the model's speech: the relay closes the reply, the model is cut, then answers anew", () => {
  const t = play([
    ["transcript", "model", "Let me explain", false],
    ["typed", "wait"],
    ["transcript", "model", "Let me explain", true], // the relay closes the model's utterance on a typed turn
    ["interrupted"],
    ["transcript", "model", "Sure", false],
    ["transcript", "model", "Sure?", true],
    ["complete", "Sure?"],
  ]);
  assert.deepEqual(view(t), [["model", "Let me explain", true], ["user", "wait", true], ["model", "Sure?", true]]);
  assert.deepEqual(marks(t), [{ interrupted: true, typed: false }, { interrupted: false, typed: true },
    { interrupted: false, typed: false }]);
});

test("a typed turn while the user's speech is still open leaves that utterance open for its next transcript", () => {
  const t = play([
    ["transcript", "user", "えっと", false],
    ["typed", "見積もりを"],
    ["transcript", "user", "えっと、その", false],
  ]);
  assert.deepEqual(view(t), [["user", "えっと、その", false], ["user", "見積もりを", true]]);
});

test("complete after a model turn split in two keeps each utterance's own words", () => {
  const t = play([
    ["transcript", "model", "A.", true],
    ["transcript", "model", "B.", false],
    ["complete", "A.B."],
  ]);
  assert.deepEqual(view(t), [["model", "A.", true], ["model", "B.", true]]);
});

test("complete closes the user's open utterance too", () => {
  const t = play([["transcript", "user", "question", false], ["transcript", "model", "ans", false]]);
  const changed = t.onComplete("answer");
  assert.equal(changed.length, 2);
  assert.deepEqual(view(t), [["user", "question", true], ["model", "answer", true]]);
});

test("complete with text but no earlier pieces still shows the model's reply", () => {
  const t = play([["complete", "reply"]]);
  assert.deepEqual(view(t), [["model", "reply", true]]);
});

test("an empty complete adds nothing", () => {
  const t = new Transcript();
  assert.deepEqual(t.onComplete(""), []);
  assert.equal(t.utterances.length, 0);
});

// --- text mode -----------------------------------------------------------------------------

test("text mode: chunks are appended in order and complete's full_text is the whole reply", () => {
  const t = play([["typed", "hello"], ["chunk", "Hi, "], ["chunk", "how can"]]);
  assert.deepEqual(view(t)[1], ["model", "Hi, how can", false]);
  t.onComplete("Hi, how can I help?");
  assert.deepEqual(view(t), [["user", "hello", true], ["model", "Hi, how can I help?", true]]);
});

test("text mode: a reply cut by a typed turn keeps its chunks, and the new reply is a new utterance", () => {
  const t = play([
    ["typed", "hello"],
    ["chunk", "Sure, our "],
    ["typed", "wait"],
    ["chunk", "plan"],
    ["interrupted"], // no closing transcript follows in text mode
    ["chunk", "OK, "],
    ["chunk", "waiting."],
    ["complete", "OK, waiting."],
  ]);
  assert.deepEqual(view(t), [["user", "hello", true], ["model", "Sure, our plan", true], ["user", "wait", true],
    ["model", "OK, waiting.", true]]);
  assert.deepEqual(marks(t).map((m) => m.interrupted), [false, true, false, false]);
});

test("text mode: turn after turn, each reply is its own utterance", () => {
  const t = play([
    ["typed", "one"], ["chunk", "1"], ["complete", "1"],
    ["typed", "two"], ["chunk", "2"], ["complete", "2"],
  ]);
  assert.deepEqual(view(t), [["user", "one", true], ["model", "1", true], ["user", "two", true], ["model", "2", true]]);
});

// --- the rest ------------------------------------------------------------------------------

test("a typed turn appears at once as a final user utterance and is never matched against transcripts", () => {
  const t = new Transcript();
  const changed = t.addTyped("見積もりをお願いします");
  assert.equal(changed.length, 1);
  t.onTranscript("user", "見積もりをお願いします", true); // spoken later with the same words: a new utterance
  assert.deepEqual(view(t), [["user", "見積もりをお願いします", true], ["user", "見積もりをお願いします", true]]);
  assert.deepEqual(marks(t).map((m) => m.typed), [true, false]);
});

test("unknown roles and empty text for no utterance are ignored", () => {
  const t = new Transcript();
  assert.deepEqual(t.onTranscript("system", "x", true), []);
  assert.deepEqual(t.onTranscript("user", "", false), []);
  assert.deepEqual(t.onChunk(""), []);
  assert.equal(t.utterances.length, 0);
});

test("finishAll closes whatever is open, and the next events start new utterances (a new socket)", () => {
  const t = play([["transcript", "user", "a", false], ["chunk", "b"]]);
  assert.equal(t.finishAll().length, 2);
  assert.ok(t.utterances.every((u) => u.final));
  t.onTranscript("user", "c", false);
  t.onChunk("d");
  assert.deepEqual(view(t), [["user", "a", true], ["model", "b", true], ["user", "c", false], ["model", "d", false]]);
});

test("every utterance has its own id", () => {
  const t = play([["typed", "a"], ["chunk", "b"], ["complete", "b"], ["transcript", "user", "c", true]]);
  assert.equal(new Set(t.utterances.map((u) => u.id)).size, 3);
});
