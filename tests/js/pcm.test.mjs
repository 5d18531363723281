// Specification of static/pcm.js: conversion, resampling, framing and the playback jitter buffer.
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import {
  FrameAssembler,
  JitterBuffer,
  Phase,
  Resampler,
  floatToInt16,
  int16ToFloat32,
  meterValue,
  pcm16FromBytes,
  rms,
} from "../../static/pcm.js";

function sine(freqHz, rateHz, seconds, amplitude = 0.5) {
  const out = new Float32Array(Math.round(rateHz * seconds));
  for (let i = 0; i < out.length; i++) out[i] = amplitude * Math.sin((2 * Math.PI * freqHz * i) / rateHz);
  return out;
}

// Resample `input` in blocks of `block` samples (as a worklet would), then flush.
function resampleInBlocks(input, inRate, outRate, block = 128) {
  const r = new Resampler(inRate, outRate);
  const parts = [];
  for (let i = 0; i < input.length; i += block) parts.push(r.process(input.subarray(i, i + block)));
  parts.push(r.flush());
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Float32Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

// Magnitude of one frequency in a signal (single-bin DFT), normalised so a sine of amplitude A gives A.
function toneMagnitude(samples, freqHz, rateHz) {
  let re = 0;
  let im = 0;
  for (let i = 0; i < samples.length; i++) {
    const phase = (2 * Math.PI * freqHz * i) / rateHz;
    re += samples[i] * Math.cos(phase);
    im -= samples[i] * Math.sin(phase);
  }
  return (2 * Math.hypot(re, im)) / samples.length;
}

// Frequency (Hz, 5 Hz resolution) with the largest magnitude between lo and hi.
function dominantFrequency(samples, rateHz, lo, hi) {
  let best = lo;
  let bestMag = -1;
  for (let f = lo; f <= hi; f += 5) {
    const m = toneMagnitude(samples, f, rateHz);
    if (m > bestMag) {
      bestMag = m;
      best = f;
    }
  }
  return best;
}

describe("floatToInt16", () => {
  const cases = [
    [0, 0],
    [1, 32767],
    [-1, -32768],
    [0.5, 16384],
    [-0.5, -16384],
    [1.5, 32767],
    [-7, -32768],
    [Infinity, 32767],
    [-Infinity, -32768],
    [NaN, 0],
  ];
  for (const [input, expected] of cases) {
    test(`maps ${input} to ${expected}, clamping out-of-range values`, () => {
      assert.equal(floatToInt16(Float32Array.of(input))[0], expected);
    });
  }

  test("never wraps around: a loud clipped sine stays within int16 with the right sign", () => {
    const loud = sine(440, 16000, 0.05, 3);
    const pcm = floatToInt16(loud);
    for (let i = 0; i < loud.length; i++) {
      assert.ok(Math.sign(pcm[i]) === Math.sign(Math.round(loud[i] * 1000)) || pcm[i] === 0);
    }
  });
});

describe("int16ToFloat32", () => {
  test("every int16 value survives a round trip through float", () => {
    const all = new Int16Array(65536);
    for (let i = 0; i < all.length; i++) all[i] = i - 32768;
    const back = floatToInt16(int16ToFloat32(all));
    assert.deepEqual(back, all);
  });

  test("the extremes map to -1 and 1", () => {
    assert.deepEqual(Array.from(int16ToFloat32(Int16Array.of(-32768, 32767, 0))), [-1, 1, 0]);
  });
});

describe("pcm16FromBytes", () => {
  test("reads little-endian samples and ignores a trailing odd byte", () => {
    const bytes = Uint8Array.of(0x01, 0x00, 0xff, 0xff, 0x00, 0x80, 0x7f).buffer;
    assert.deepEqual(Array.from(pcm16FromBytes(bytes)), [1, -1, -32768]);
  });
});

describe("Resampler", () => {
  const lengthCases = [
    [48000, 16000],
    [44100, 16000],
    [16000, 16000],
    [24000, 48000],
    [8000, 16000],
  ];
  for (const [inRate, outRate] of lengthCases) {
    test(`${inRate} Hz to ${outRate} Hz keeps the duration (one second in, one second out)`, () => {
      const out = resampleInBlocks(sine(440, inRate, 1), inRate, outRate);
      assert.ok(Math.abs(out.length - outRate) <= 1, `got ${out.length} samples`);
    });
  }

  for (const [inRate, freq] of [
    [48000, 440],
    [48000, 3000],
    [44100, 1000],
    [44100, 6000],
  ]) {
    test(`a ${freq} Hz sine at ${inRate} Hz is still ${freq} Hz at the same level after going to 16 kHz`, () => {
      const out = resampleInBlocks(sine(freq, inRate, 0.5), inRate, 16000);
      const body = out.subarray(400, out.length - 400); // skip the filter's edges
      assert.equal(dominantFrequency(body, 16000, Math.max(50, freq - 300), freq + 300), freq);
      const levelDb = 20 * Math.log10(toneMagnitude(body, freq, 16000) / 0.5);
      assert.ok(Math.abs(levelDb) < 1, `level changed by ${levelDb.toFixed(2)} dB`);
    });
  }

  test("tones above the new Nyquist frequency are filtered out instead of aliasing", () => {
    const out = resampleInBlocks(sine(12000, 48000, 0.5), 48000, 16000);
    const body = out.subarray(400, out.length - 400);
    assert.ok(rms(body) < 0.01, `rms ${rms(body)}`); // an aliased tone would have rms ~0.35
  });

  test("the result does not depend on how the input is split into blocks", () => {
    const input = sine(997, 44100, 0.3);
    const whole = resampleInBlocks(input, 44100, 16000, input.length);
    for (const block of [1, 127, 128, 1000]) {
      const split = resampleInBlocks(input, 44100, 16000, block);
      assert.equal(split.length, whole.length);
      for (let i = 0; i < whole.length; i++) assert.ok(Math.abs(split[i] - whole[i]) < 1e-6);
    }
  });

  test("a constant (DC) input comes out unchanged once the filter has settled", () => {
    const out = resampleInBlocks(new Float32Array(4800).fill(0.25), 48000, 16000);
    for (let i = 50; i < out.length - 50; i++) assert.ok(Math.abs(out[i] - 0.25) < 1e-3);
  });

  test("holds back only its small filter latency before flush", () => {
    const r = new Resampler(48000, 16000);
    const out = r.process(new Float32Array(4800));
    assert.ok(r.latencySamples < 48 * 2, "well under 2 ms");
    assert.ok(out.length >= 1600 - Math.ceil(r.latencySamples / 3) - 1);
  });

  test("rejects non-positive rates", () => {
    assert.throws(() => new Resampler(0, 16000), RangeError);
  });
});

describe("FrameAssembler", () => {
  test("cuts a stream into whole frames of the requested size and keeps the rest", () => {
    const asm = new FrameAssembler(320);
    const frames = [...asm.push(new Float32Array(500)), ...asm.push(new Float32Array(500))];
    assert.equal(frames.length, 3);
    for (const f of frames) assert.equal(f.length, 320);
    assert.equal(asm.takeRemainder().length, 40);
    assert.equal(asm.takeRemainder().length, 0);
  });

  test("keeps sample order across pushes", () => {
    const asm = new FrameAssembler(4);
    const frames = [...asm.push(Float32Array.of(1, 2, 3)), ...asm.push(Float32Array.of(4, 5, 6, 7, 8))];
    assert.deepEqual(frames.map((f) => Array.from(f)), [
      [1, 2, 3, 4],
      [5, 6, 7, 8],
    ]);
  });
});

describe("JitterBuffer", () => {
  const QUANTUM = 128;

  function ramp(start, count) {
    return Float32Array.from({ length: count }, (_, i) => start + i);
  }

  // Read quanta until `count` samples of real audio came out; returns them.
  function readAll(jb, limit = 1000) {
    const got = [];
    for (let i = 0; i < limit && (jb.queuedSamples > 0 || jb.phase !== Phase.IDLE); i++) {
      const out = new Float32Array(QUANTUM);
      const n = jb.read(out);
      got.push(...out.subarray(0, n));
    }
    return got;
  }

  test("waits for the prebuffer before playing", () => {
    const jb = new JitterBuffer({ prebufferSamples: 300, fadeSamples: 0 });
    jb.push(new Float32Array(200).fill(1));
    assert.equal(jb.read(new Float32Array(QUANTUM)), 0);
    jb.push(new Float32Array(200).fill(1));
    assert.equal(jb.read(new Float32Array(QUANTUM)), QUANTUM);
    assert.equal(jb.phase, Phase.PLAYING);
  });

  test("plays a short last chunk once it has waited as long as the prebuffer", () => {
    const jb = new JitterBuffer({ prebufferSamples: 300, fadeSamples: 0 });
    jb.push(new Float32Array(50).fill(1));
    assert.equal(jb.read(new Float32Array(QUANTUM)), 0);
    assert.equal(jb.read(new Float32Array(QUANTUM)), 0);
    assert.equal(jb.read(new Float32Array(QUANTUM)), 50);
  });

  test("plays chunks gaplessly and in order across quantum boundaries", () => {
    const jb = new JitterBuffer({ prebufferSamples: 0, fadeSamples: 0 });
    jb.push(ramp(0, 100));
    jb.push(ramp(100, 37));
    jb.push(ramp(137, 300));
    const got = readAll(jb);
    assert.deepEqual(got, Array.from(ramp(0, 437)));
    assert.equal(jb.playedSamples, 437);
    assert.equal(jb.queuedSamples, 0);
  });

  test("fades in at the start and out at an underrun instead of clicking", () => {
    const jb = new JitterBuffer({ prebufferSamples: 0, fadeSamples: 32 });
    jb.push(new Float32Array(200).fill(1));
    const first = new Float32Array(QUANTUM);
    jb.read(first);
    assert.equal(first[0], 0);
    assert.ok(first[16] > 0.4 && first[16] < 0.6);
    assert.equal(first[40], 1);
    const second = new Float32Array(QUANTUM);
    assert.equal(jb.read(second), 72);
    assert.ok(second[71] < 0.05, "last sample before the gap is faded to ~0");
    assert.equal(second[72], 0);
    assert.equal(jb.underruns, 1);
    assert.equal(jb.phase, Phase.IDLE);
  });

  test("rebuffers after an underrun before playing again", () => {
    const jb = new JitterBuffer({ prebufferSamples: 256, fadeSamples: 0 });
    jb.push(new Float32Array(256).fill(1));
    readAll(jb);
    jb.push(new Float32Array(100).fill(1));
    assert.equal(jb.phase, Phase.BUFFERING);
    assert.equal(jb.read(new Float32Array(QUANTUM)), 0);
  });

  test("flush drops everything queued at once, keeping only a short fade-out", () => {
    const jb = new JitterBuffer({ prebufferSamples: 0, fadeSamples: 48 });
    jb.push(new Float32Array(24000).fill(1));
    jb.read(new Float32Array(QUANTUM));
    const dropped = jb.flush();
    assert.equal(jb.queuedSamples, 48);
    assert.equal(dropped, 24000 - QUANTUM - 48);
    assert.equal(jb.droppedSamples, dropped, "dropped audio is counted, so played + queued + dropped = received");
    const out = new Float32Array(QUANTUM);
    assert.equal(jb.read(out), 48);
    for (let i = 1; i < 48; i++) assert.ok(out[i] <= out[i - 1], "monotonic fade to silence");
    assert.ok(out[47] < 0.05);
    assert.equal(jb.queuedSamples, 0);
    assert.equal(jb.phase, Phase.IDLE);
    assert.equal(jb.read(new Float32Array(QUANTUM)), 0);
  });

  test("flush before playback started leaves nothing at all", () => {
    const jb = new JitterBuffer({ prebufferSamples: 1000 });
    jb.push(new Float32Array(500).fill(1));
    jb.flush();
    assert.equal(jb.queuedSamples, 0);
    assert.equal(jb.phase, Phase.IDLE);
  });

  test("audio pushed after a flush plays normally", () => {
    const jb = new JitterBuffer({ prebufferSamples: 0, fadeSamples: 0 });
    jb.push(ramp(0, 500));
    jb.read(new Float32Array(QUANTUM));
    jb.flush();
    readAll(jb);
    jb.push(ramp(1000, 10));
    assert.deepEqual(readAll(jb), Array.from(ramp(1000, 10)));
  });
});

describe("levels", () => {
  test("rms of a full-scale sine is 1/sqrt(2) and of silence is 0", () => {
    assert.ok(Math.abs(rms(sine(100, 16000, 1, 1)) - Math.SQRT1_2) < 1e-3);
    assert.equal(rms(new Float32Array(10)), 0);
    assert.equal(rms(new Float32Array(0)), 0);
  });

  test("the meter maps -60 dBFS to 0, -30 dBFS to 0.5 and full scale to 1", () => {
    assert.equal(meterValue(0), 0);
    assert.equal(meterValue(0.001), 0);
    assert.ok(Math.abs(meterValue(10 ** (-30 / 20)) - 0.5) < 1e-9);
    assert.equal(meterValue(1), 1);
  });
});
