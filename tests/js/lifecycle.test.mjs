// Specification of static/lifecycle.js: the page's whole lifecycle, transition by transition.
import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { Event, State, TRANSITIONS, allows, isTalking, transition } from "../../static/lifecycle.js";

// The specification, written out by hand: [state, event, next state]. Everything else is refused.
const ALLOWED = [
  ["idle", "start", "connecting"],
  ["done", "start", "connecting"],
  ["error", "start", "connecting"],
  ["connecting", "ready", "live"],
  ["reconnecting", "ready", "live"],
  ["live", "upstream_lost", "reconnecting"],
  ["reconnecting", "resumed", "live"],
  ["live", "retry", "reconnecting"],
  ["reconnecting", "retry", "reconnecting"],
  ["connecting", "end", "ending"],
  ["live", "end", "ending"],
  ["reconnecting", "end", "ending"],
  ["live", "grade", "grading"],
  ["reconnecting", "grade", "grading"],
  ["ending", "grade", "grading"],
  ["error", "grade", "grading"],
  ["connecting", "nothing_to_grade", "done"],
  ["live", "nothing_to_grade", "done"],
  ["reconnecting", "nothing_to_grade", "done"],
  ["ending", "nothing_to_grade", "done"],
  ["grading", "graded", "done"],
  ["connecting", "fail", "error"],
  ["live", "fail", "error"],
  ["reconnecting", "fail", "error"],
  ["connecting", "leave", "idle"],
  ["live", "leave", "idle"],
  ["reconnecting", "leave", "idle"],
];

const STATES = ["idle", "connecting", "live", "reconnecting", "ending", "grading", "done", "error"];
const EVENTS = ["start", "ready", "upstream_lost", "resumed", "retry", "end", "grade", "nothing_to_grade", "graded",
  "fail", "leave"];
const allowedKey = new Set(ALLOWED.map(([s, e]) => `${s} ${e}`));
const REFUSED = STATES.flatMap((s) => EVENTS.map((e) => [s, e])).filter(([s, e]) => !allowedKey.has(`${s} ${e}`));

test("the states are exactly the page contract's data-state values, and the events are the ones specified", () => {
  assert.deepEqual(Object.values(State).sort(), [...STATES].sort());
  assert.deepEqual(Object.values(Event).sort(), [...EVENTS].sort());
  assert.deepEqual(Object.keys(TRANSITIONS).sort(), [...STATES].sort());
});

describe("every allowed transition leads where the specification says", () => {
  for (const [from, event, to] of ALLOWED) {
    test(`${from} --${event}--> ${to}`, () => {
      assert.deepEqual(transition(from, event), { state: to, allowed: true });
      assert.equal(allows(from, event), true);
    });
  }
});

describe("every other event is refused and leaves the state unchanged", () => {
  for (const [from, event] of REFUSED) {
    test(`${from} refuses ${event}`, () => {
      assert.deepEqual(transition(from, event), { state: from, allowed: false });
      assert.equal(allows(from, event), false);
    });
  }
});

test("unknown states and events, including inherited property names, are refused without a change", () => {
  for (const [from, event] of [["idle", "toString"], ["idle", "constructor"], ["toString", "start"],
    ["nowhere", "start"], ["live", undefined]]) {
    assert.deepEqual(transition(from, event), { state: from, allowed: false }, `${from} ${event}`);
  }
});

test("the table cannot be changed at run time", () => {
  assert.ok(Object.isFrozen(TRANSITIONS));
  assert.ok(Object.values(TRANSITIONS).every(Object.isFrozen));
});

test("a conversation is talking while connecting, live or reconnecting, and only then", () => {
  assert.deepEqual(STATES.filter(isTalking), ["connecting", "live", "reconnecting"]);
});

test("a whole conversation with a dropped socket walks the table from idle to done", () => {
  const path = ["start", "ready", "retry", "retry", "ready", "upstream_lost", "resumed", "end", "grade", "graded"];
  const visited = path.reduce((states, event) => [...states, transition(states.at(-1), event).state], ["idle"]);
  assert.deepEqual(visited, ["idle", "connecting", "live", "reconnecting", "reconnecting", "live", "reconnecting",
    "live", "ending", "grading", "done"]);
});
