// Specification of static/conversation.js, the page's controller: the lifecycle it walks, and
// that a pending reconnect never outlives the conversation. The view, socket, audio and clock
// are stand-ins that record what the controller did; the controller itself is the real one.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Conversation, RECONNECT_DELAYS_MS } from "../../static/conversation.js";

// A clock that only moves when the test says so.
class ManualClock {
  constructor() {
    this.now = 0;
    this.pending = new Map(); // id -> {at, fn}
    this.nextId = 1;
  }

  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.pending.set(id, { at: this.now + ms, fn });
    return id;
  }

  clearTimeout(id) {
    this.pending.delete(id);
  }

  /** Move time on by `ms`, running every timer that falls due, in order. */
  async advance(ms) {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.pending].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.pending.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
      await settle();
    }
    this.now = until;
  }
}

// Let every promise chain the controller started run to its next real wait.
const settle = () => new Promise((resolve) => setImmediate(resolve));

class FakeView {
  constructor(mode) {
    this.mode = mode;
    this.states = [];
    this.errors = [];
    this.feedback = [];
    this.errorKey = null;
    this.gradeRecordedOffered = false;
  }

  offerGradeRecorded(on) {
    this.gradeRecordedOffered = on;
  }

  setState(state) {
    this.states.push(state);
  }

  selectedScenario() {
    return "sales-ja";
  }

  selectedMode() {
    return this.mode;
  }

  showError(key) {
    this.errorKey = key;
    if (key) this.errors.push(key);
  }

  clearError() {
    this.errorKey = null;
  }

  showFeedbackMessage(key) {
    this.feedback.push(key);
  }

  showEvaluation(data) {
    this.feedback.push(`graded ${data.evaluation.score}`);
  }

  clearTranscript() {}
  clearFeedback() {}
  updateUtterances() {}
  showGradingProgress() {}
  setEmulated() {}
  showLevel() {}
}

// The socket as the controller sees it: connects on request, events in, JSON out.
class FakeSocket extends EventTarget {
  constructor() {
    super();
    this.attempts = []; // {url, open(), refuse(code)}
    this.isOpen = false;
    this.sent = [];
    Object.assign(this, { sentBytes: 0, receivedBytes: 0, sentAudioBytes: 0, receivedAudioBytes: 0, droppedFrames: 0 });
  }

  connect(url) {
    return new Promise((resolve, reject) => {
      this.attempts.push({
        url,
        open: () => {
          this.isOpen = true;
          resolve();
        },
        refuse: (code) => reject(Object.assign(new Error("refused"), { code, superseded: false })),
      });
    });
  }

  close() {
    this.isOpen = false;
  }

  sendJson(message) {
    if (this.isOpen) this.sent.push(message);
    return this.isOpen;
  }

  sendAudio() {
    return this.isOpen;
  }

  /** The relay sends an event. */
  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** The connection drops. */
  drop(code = 1011) {
    this.isOpen = false;
    this.emit("close", { code, reason: "", clean: false, superseded: false });
  }
}

// A microphone or player whose start() waits until the test lets it go.
class FakeDevice extends EventTarget {
  constructor() {
    super();
    this.stopped = false;
    this.started = new Promise((resolve) => (this.allow = resolve));
    Object.assign(this, { level: 0, playedMs: 0, flushedMs: 0, queuedMs: 0, underruns: 0, lastFlushMs: null });
  }

  start() {
    return this.started;
  }

  async stop() {
    this.stopped = true;
  }

  flush() {}
  push() {}

  setRate(rate) {
    this.rate = rate;
  }
}

function setUp({ mode = "text" } = {}) {
  const clock = new ManualClock();
  const view = new FakeView(mode);
  const socket = new FakeSocket();
  const grades = [];
  const devices = [];
  const device = () => {
    const d = new FakeDevice();
    devices.push(d);
    return d;
  };
  const conversation = new Conversation({
    view,
    socket,
    socketUrl: (params) => `ws://test/ws/realtime?${new URLSearchParams(Object.entries(params).filter(([, v]) => v))}`,
    requestGrade: async (sessionId) => {
      grades.push(sessionId);
      return { kind: "graded", data: { evaluation: { score: 70 } } };
    },
    createPlayer: device,
    createRecorder: device,
    timers: clock,
  });
  return { clock, view, socket, grades, devices, conversation };
}

// Start a text conversation and bring it live with a resume ticket.
async function live(setup) {
  setup.conversation.start();
  await settle();
  setup.socket.attempts[0].open();
  setup.socket.emit("ready", { session_id: "s-1", resume: "ticket-1" });
  await settle();
  assert.equal(setup.conversation.state, "live");
}

test("a dropped socket is retried with the resume ticket once the first delay has passed", async () => {
  const setup = setUp();
  await live(setup);
  setup.socket.drop();
  assert.equal(setup.conversation.state, "reconnecting");
  await setup.clock.advance(RECONNECT_DELAYS_MS[0] - 1);
  assert.equal(setup.socket.attempts.length, 1, "no try before the delay");
  await setup.clock.advance(1);
  assert.equal(setup.socket.attempts.length, 2);
  assert.match(setup.socket.attempts[1].url, /resume=ticket-1/);
  setup.socket.attempts[1].open();
  setup.socket.emit("ready", { session_id: "s-1", resume: "ticket-2" });
  assert.equal(setup.conversation.state, "live");
});

test("End during the reconnect delay cancels the pending try: the conversation is graded and never reconnects", async () => {
  const setup = setUp();
  await live(setup);
  setup.socket.drop();
  await setup.clock.advance(RECONNECT_DELAYS_MS[0] - 1);
  await setup.conversation.end();
  assert.equal(setup.conversation.state, "done");
  assert.deepEqual(setup.grades, ["s-1"]);
  assert.equal(setup.clock.pending.size, 0, "no timer left behind");
  await setup.clock.advance(60_000);
  assert.equal(setup.socket.attempts.length, 1);
  assert.deepEqual(setup.view.states, ["connecting", "live", "reconnecting", "ending", "grading", "done"]);
});

test("leaving the page during the reconnect delay cancels the pending try", async () => {
  const setup = setUp();
  await live(setup);
  setup.socket.drop();
  setup.conversation.leave();
  assert.equal(setup.conversation.state, "idle");
  await setup.clock.advance(60_000);
  assert.equal(setup.socket.attempts.length, 1);
  assert.deepEqual(setup.grades, []);
});

test("a restart announced by the relay (fatal shutting_down) reconnects, and End in the delay still cancels it", async () => {
  const setup = setUp();
  await live(setup);
  setup.socket.emit("error", { code: "shutting_down", message: "draining", fatal: true });
  assert.equal(setup.conversation.state, "reconnecting");
  await setup.conversation.end();
  await setup.clock.advance(60_000);
  assert.equal(setup.socket.attempts.length, 1);
  assert.equal(setup.conversation.state, "done");
});

test("refused retries use up the tries, then the connection is reported lost and nothing more is tried", async () => {
  const setup = setUp();
  await live(setup);
  setup.socket.drop();
  for (const delay of RECONNECT_DELAYS_MS) {
    await setup.clock.advance(delay);
    setup.socket.attempts.at(-1).refuse(1006);
    await settle();
  }
  assert.equal(setup.conversation.state, "error");
  assert.deepEqual(setup.view.errors, ["error.connection_lost"]);
  await setup.clock.advance(60_000);
  assert.equal(setup.socket.attempts.length, 1 + RECONNECT_DELAYS_MS.length);
});

test("after a failure, what was recorded can be graded: offered, graded once, then offered no more", async () => {
  const setup = setUp();
  await live(setup);
  setup.socket.emit("error", { code: "upstream_error", message: "Gemini closed", fatal: true });
  await settle();
  assert.equal(setup.conversation.state, "error");
  assert.equal(setup.view.gradeRecordedOffered, true);
  await setup.conversation.gradeRecorded();
  assert.deepEqual(setup.grades, ["s-1"]);
  assert.deepEqual(setup.view.states.slice(-3), ["error", "grading", "done"]);
  assert.deepEqual(setup.view.feedback, ["graded 70"]);
  assert.equal(setup.view.gradeRecordedOffered, false);
  assert.equal(setup.view.errorKey, null, "the failure is not shown beside the grade");
  await setup.conversation.gradeRecorded(); // done: nothing more to grade
  assert.deepEqual(setup.grades, ["s-1"]);
});

test("a failure before the relay named the conversation offers no grade", async () => {
  const setup = setUp();
  setup.conversation.start();
  await settle();
  setup.socket.attempts[0].refuse(1011);
  await settle();
  assert.equal(setup.conversation.state, "error");
  assert.equal(setup.view.gradeRecordedOffered, false);
  await setup.conversation.gradeRecorded();
  assert.deepEqual(setup.grades, []);
});

test("starting again withdraws the offer to grade the failed conversation", async () => {
  const setup = setUp();
  await live(setup);
  setup.socket.emit("error", { code: "internal", message: "bug", fatal: true });
  await settle();
  assert.equal(setup.view.gradeRecordedOffered, true);
  setup.conversation.start();
  assert.equal(setup.view.gradeRecordedOffered, false);
});

test("a socket that drops before ready is not retried: there is no ticket yet", async () => {
  const setup = setUp();
  setup.conversation.start();
  await settle();
  setup.socket.attempts[0].refuse(1013);
  await settle();
  assert.equal(setup.conversation.state, "error");
  assert.deepEqual(setup.view.errors, ["error.capacity"]);
  await setup.clock.advance(60_000);
  assert.equal(setup.socket.attempts.length, 1);
});

test("End sends end, waits for ended, then grades the conversation once", async () => {
  const setup = setUp();
  await live(setup);
  const ending = setup.conversation.end();
  assert.equal(setup.conversation.state, "ending");
  assert.deepEqual(setup.socket.sent, [{ type: "end" }]);
  setup.socket.emit("error", { code: "session_limit", message: "limit", fatal: true }); // ignored while ending
  assert.equal(setup.conversation.state, "ending");
  setup.socket.emit("ended", { session_id: "s-1", recording: null });
  await ending;
  assert.equal(setup.conversation.state, "done");
  assert.deepEqual(setup.grades, ["s-1"]);
  assert.deepEqual(setup.view.feedback, ["graded 70"]);
});

test("End gives up waiting for ended after the timeout and still grades", async () => {
  const setup = setUp();
  await live(setup);
  const ending = setup.conversation.end();
  await setup.clock.advance(8000);
  await ending;
  assert.equal(setup.conversation.state, "done");
  assert.deepEqual(setup.grades, ["s-1"]);
});

test("the relay ending the conversation at its length limit goes straight to grading", async () => {
  const setup = setUp();
  await live(setup);
  setup.socket.emit("error", { code: "session_limit", message: "limit", fatal: true });
  assert.equal(setup.conversation.state, "grading");
  await settle();
  assert.equal(setup.conversation.state, "done");
  assert.deepEqual(setup.view.errors, ["error.session_limit"]);
  assert.deepEqual(setup.grades, ["s-1"]);
});

test("events the current state does not allow change nothing", async () => {
  const setup = setUp();
  await live(setup);
  setup.socket.emit("resumed", { reason: "go_away" }); // not reconnecting
  setup.socket.emit("ready", { session_id: "s-1" }); // already live
  assert.equal(setup.conversation.state, "live");
  await setup.conversation.start(); // a conversation is running
  assert.equal(setup.socket.attempts.length, 1);
  assert.deepEqual(setup.view.states, ["connecting", "live"]);
});

test("Gemini's connection being replaced shows reconnecting, then live again, on the same socket", async () => {
  const setup = setUp();
  await live(setup);
  setup.socket.emit("reconnecting", { reason: "go_away" });
  assert.equal(setup.conversation.state, "reconnecting");
  setup.socket.emit("resumed", { reason: "go_away" });
  assert.equal(setup.conversation.state, "live");
  assert.equal(setup.socket.attempts.length, 1);
});

test("End while the microphone prompt is open ends without a grade and never connects", async () => {
  const setup = setUp({ mode: "voice" });
  setup.conversation.start();
  await setup.conversation.end();
  assert.equal(setup.conversation.state, "done");
  assert.deepEqual(setup.view.feedback, ["feedback.none"]);
  for (const d of setup.devices) d.allow();
  await settle();
  assert.equal(setup.socket.attempts.length, 0);
  assert.ok(setup.devices.every((d) => d.stopped));
});

test("a microphone answer that comes after its conversation ended never connects the next conversation twice", async () => {
  const setup = setUp({ mode: "voice" });
  setup.conversation.start();
  await setup.conversation.end();
  setup.conversation.start(); // a second conversation, its own microphone prompt open
  const [player1, mic1, player2, mic2] = setup.devices;
  player1.allow();
  mic1.allow();
  await settle();
  assert.equal(setup.socket.attempts.length, 0, "the first conversation's microphone connects nothing");
  player2.allow();
  mic2.allow();
  await settle();
  assert.equal(setup.socket.attempts.length, 1);
  assert.equal(setup.conversation.state, "connecting");
});

test("stats() has every field of the page contract", async () => {
  const setup = setUp();
  await live(setup);
  const stats = setup.conversation.stats();
  for (const key of ["capturedMs", "sentBytes", "receivedBytes", "playedMs", "queuedMs", "interruptions"]) {
    assert.equal(typeof stats[key], "number", key);
  }
  assert.equal(stats.state, "live");
  assert.equal(stats.sessionId, "s-1");
});

test("the microphone captures at the rate ready announces", async () => {
  const setup = setUp({ mode: "voice" });
  setup.conversation.start();
  await settle();
  for (const device of setup.devices) device.allow();
  await settle();
  setup.socket.attempts[0].open();
  setup.socket.emit("ready", { session_id: "s-1", input_rate: 24000, output_rate: 24000 });
  await settle();
  const recorder = setup.devices[1];
  assert.equal(recorder.rate, 24000);
});

test("after a barge-in the page reports how much of the turn it played", async () => {
  const setup = setUp({ mode: "voice" });
  setup.conversation.start();
  await settle();
  for (const device of setup.devices) device.allow();
  await settle();
  setup.socket.attempts[0].open();
  setup.socket.emit("ready", { session_id: "s-1" });
  await settle();
  const player = setup.devices[0];
  player.playedMs = 1200; // the first turn played whole
  setup.socket.emit("complete", { full_text: "First.", turn: 1 });
  player.playedMs = 1650; // 450 ms of the second turn heard, then the user speaks
  setup.socket.emit("interrupted");
  assert.deepEqual(setup.socket.sent.filter((m) => m.type === "playback"), [{ type: "playback", played_ms: 450 }]);
});
