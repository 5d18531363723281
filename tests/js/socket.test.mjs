// Specification of static/socket.js: exact byte counts of what crosses the socket, counted without encoding.
import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";

import { RealtimeSocket, utf8Length } from "../../static/socket.js";

const encoder = new TextEncoder(); // the reference: what a WebSocket puts on the wire for a string

// A deterministic pseudo-random generator (mulberry32), so a failure can be replayed.
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("UTF-8 length equals the encoder's byte count for every kind of character", () => {
  const cases = ["", "a", '{"type":"ping","t":1}', "é", "ß\u07ff", "\u0800", "こんにちは、佐藤です。", "\uffff",
    "😀", "a😀b", "𠮷野家", "\ud83d", "\ude00", "x\ud83dy", "\ude00\ud83d", "\ud83d\ud83d\ude00", "\u0000\u007f\u0080"];
  for (const text of cases) assert.equal(utf8Length(text), encoder.encode(text).byteLength, JSON.stringify(text));
});

test("UTF-8 length equals the encoder's byte count for random strings of any UTF-16 code units", () => {
  const next = random(20240501);
  const ranges = [[0x00, 0x80], [0x80, 0x800], [0x800, 0xd800], [0xd800, 0xdc00], [0xdc00, 0xe000], [0xe000, 0x10000]];
  for (let n = 0; n < 2000; n++) {
    const units = Array.from({ length: Math.floor(next() * 40) }, () => {
      const [lo, hi] = ranges[Math.floor(next() * ranges.length)];
      return lo + Math.floor(next() * (hi - lo));
    });
    const text = String.fromCharCode(...units);
    assert.equal(utf8Length(text), encoder.encode(text).byteLength, JSON.stringify(text));
  }
});

// --- the socket's counters, over a stand-in WebSocket -----------------------------------------

class FakeWebSocket extends EventTarget {
  static OPEN = 1;
  static last = null;

  constructor(url) {
    super();
    this.url = url;
    this.readyState = 0;
    this.bufferedAmount = 0;
    this.sent = [];
    FakeWebSocket.last = this;
  }

  open() {
    this.readyState = FakeWebSocket.OPEN;
    this.dispatchEvent(new Event("open"));
  }

  receive(data) {
    this.dispatchEvent(new MessageEvent("message", { data }));
  }

  send(data) {
    this.sent.push(data);
  }

  close() {
    this.readyState = 3;
  }
}

let realWebSocket;
beforeEach(() => {
  realWebSocket = globalThis.WebSocket;
  globalThis.WebSocket = FakeWebSocket;
});
afterEach(() => {
  globalThis.WebSocket = realWebSocket;
});

async function openSocket() {
  const socket = new RealtimeSocket();
  const connected = socket.connect("ws://example.invalid/ws/realtime");
  FakeWebSocket.last.open();
  await connected;
  return { socket, ws: FakeWebSocket.last };
}

test("sent and received bytes are the exact wire sizes of text and binary frames", async () => {
  const { socket, ws } = await openSocket();
  const seen = [];
  socket.addEventListener("transcript", (e) => seen.push(e.detail.text));
  const incoming = [
    JSON.stringify({ type: "transcript", role: "model", text: "はい、人手不足です😀", final: false }),
    JSON.stringify({ type: "pong", t: 1 }),
  ];
  for (const text of incoming) ws.receive(text);
  ws.receive(new ArrayBuffer(960));
  assert.ok(socket.sendJson({ type: "text", text: "見積もりをお願いします" }));
  assert.ok(socket.sendAudio(new ArrayBuffer(640)));

  const textBytes = (frames) => frames.filter((f) => typeof f === "string").reduce((n, f) => n + encoder.encode(f).byteLength, 0);
  assert.equal(socket.receivedBytes, textBytes(incoming) + 960);
  assert.equal(socket.receivedAudioBytes, 960);
  assert.equal(socket.sentBytes, textBytes(ws.sent) + 640);
  assert.equal(socket.sentAudioBytes, 640);
  assert.deepEqual(seen, ["はい、人手不足です😀"]);
});

test("a microphone frame is dropped and counted, not sent, while the socket is backed up", async () => {
  const { socket, ws } = await openSocket();
  ws.bufferedAmount = 1024 * 1024;
  assert.equal(socket.sendAudio(new ArrayBuffer(640)), false);
  assert.equal(socket.droppedFrames, 1);
  assert.equal(socket.sentBytes, 0);
  assert.deepEqual(ws.sent, []);
});
