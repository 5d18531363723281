// Pure audio helpers shared by the capture and playback worklets and the node unit tests.
// No DOM, no Web Audio: everything here works on plain typed arrays.

export const INPUT_RATE_HZ = 16000; // what the relay expects from the microphone
export const OUTPUT_RATE_HZ = 24000; // what the relay sends back

const INT16_MAX = 32767;
const INT16_MIN_ABS = 32768;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Convert float samples in [-1, 1] to signed 16-bit PCM, clamping anything outside.
 * NaN becomes 0. The scale is asymmetric (x32767 up, x32768 down) so that
 * int16ToFloat32 followed by this function gives back the same integers.
 * @param {Float32Array} samples
 * @returns {Int16Array}
 */
export function floatToInt16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    let s = samples[i];
    if (!(s === s)) s = 0; // NaN
    if (s > 1) s = 1;
    else if (s < -1) s = -1;
    out[i] = s < 0 ? Math.round(s * INT16_MIN_ABS) : Math.round(s * INT16_MAX);
  }
  return out;
}

/**
 * Convert signed 16-bit PCM to floats in [-1, 1] (the exact inverse of floatToInt16).
 * @param {Int16Array} samples
 * @returns {Float32Array}
 */
export function int16ToFloat32(samples) {
  const out = new Float32Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i];
    out[i] = v < 0 ? v / INT16_MIN_ABS : v / INT16_MAX;
  }
  return out;
}

/**
 * Read little-endian PCM16 bytes (as received on the socket) into an Int16Array.
 * A trailing odd byte is ignored.
 * @param {ArrayBuffer} buffer
 * @returns {Int16Array}
 */
export function pcm16FromBytes(buffer) {
  const count = buffer.byteLength >> 1;
  if (LITTLE_ENDIAN) return new Int16Array(buffer, 0, count);
  const view = new DataView(buffer);
  const out = new Int16Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getInt16(i * 2, true);
  return out;
}

/**
 * Root-mean-square level of float samples (0 for an empty array).
 * @param {Float32Array} samples
 */
export function rms(samples) {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return Math.sqrt(sum / samples.length);
}

/**
 * Map an RMS level to 0..1 for a meter: -60 dBFS and below is 0, 0 dBFS is 1.
 * @param {number} level RMS of float samples
 */
export function meterValue(level) {
  if (level <= 0) return 0;
  const db = 20 * Math.log10(level);
  return Math.min(1, Math.max(0, (db + 60) / 60));
}

/**
 * Streaming sample-rate converter: windowed-sinc interpolation with a low-pass cutoff
 * below the lower Nyquist frequency, so 48 kHz speech decimated to 16 kHz does not alias.
 * Feed it blocks of any size with process(); the output length tracks
 * input length x outRate / inRate (within one sample), delayed by `latencySamples`
 * input samples until flush() is called at the end of the stream.
 */
export class Resampler {
  /**
   * @param {number} inRate input sample rate in Hz
   * @param {number} outRate output sample rate in Hz
   * @param {{zeroCrossings?: number, phases?: number}} [options]
   *   zeroCrossings: kernel half-width in output-rate periods (quality vs CPU), default 8;
   *   phases: fractional positions tabulated, default 512.
   */
  constructor(inRate, outRate, { zeroCrossings = 8, phases = 512 } = {}) {
    if (!(inRate > 0 && outRate > 0)) throw new RangeError("sample rates must be positive");
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate; // input samples per output sample
    this.passthrough = inRate === outRate;
    const scale = Math.min(1, outRate / inRate);
    this.half = Math.ceil(zeroCrossings / scale); // kernel half-width in input samples
    this.phases = phases;
    this.table = buildKernelTable(this.half, phases, 0.5 * scale * 0.92);
    this.buf = new Float32Array(4096);
    this.len = this.half; // `half` zeros of history before the first real sample
    this.pos = this.half; // buffer position of the next output sample
    this.inTotal = 0;
    this.outTotal = 0;
  }

  /** Input samples held back until more input (or flush) arrives. */
  get latencySamples() {
    return this.passthrough ? 0 : this.half;
  }

  /**
   * Resample one block.
   * @param {Float32Array} input
   * @returns {Float32Array}
   */
  process(input) {
    this.inTotal += input.length;
    if (this.passthrough) {
      this.outTotal += input.length;
      return Float32Array.from(input);
    }
    this._append(input);
    return this._drain(Infinity);
  }

  /** Emit the samples still held back, as if the stream ended here. */
  flush() {
    if (this.passthrough) return new Float32Array(0);
    const wanted = Math.ceil(this.inTotal / this.step) - this.outTotal;
    this._append(new Float32Array(this.half + 1));
    return this._drain(Math.max(0, wanted));
  }

  _append(input) {
    if (this.len + input.length > this.buf.length) {
      const grown = new Float32Array(Math.max(this.buf.length * 2, this.len + input.length));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.buf.set(input, this.len);
    this.len += input.length;
  }

  _drain(limit) {
    const { buf, half, step, phases, table } = this;
    const taps = 2 * half;
    const most = Math.max(0, Math.min(limit, Math.ceil((this.len - half - this.pos) / step)));
    const out = new Float32Array(most);
    let pos = this.pos;
    let count = 0;
    while (count < most) {
      const i0 = Math.floor(pos);
      if (i0 + half >= this.len) break; // rounding at the edge: wait for more input
      const row = Math.round((pos - i0) * phases) * taps;
      const start = i0 - half + 1;
      let acc = 0;
      for (let k = 0; k < taps; k++) acc += buf[start + k] * table[row + k];
      out[count++] = acc;
      pos += step;
    }
    this.outTotal += count;
    // Keep only the history the next output still needs.
    const keepFrom = Math.max(0, Math.floor(pos) - half + 1);
    if (keepFrom > 0) {
      buf.copyWithin(0, keepFrom, this.len);
      this.len -= keepFrom;
      pos -= keepFrom;
    }
    this.pos = pos;
    return count === most ? out : out.subarray(0, count);
  }
}

// Rows of 2*half taps for each of phases+1 fractional offsets, each row normalised to unit DC gain.
function buildKernelTable(half, phases, cutoff) {
  const taps = 2 * half;
  const table = new Float32Array((phases + 1) * taps);
  for (let p = 0; p <= phases; p++) {
    const frac = p / phases;
    let sum = 0;
    for (let k = 0; k < taps; k++) {
      const d = k - half + 1 - frac; // distance from the output position, in input samples
      const w = windowedSinc(d, half, cutoff);
      table[p * taps + k] = w;
      sum += w;
    }
    for (let k = 0; k < taps; k++) table[p * taps + k] /= sum;
  }
  return table;
}

function windowedSinc(d, half, cutoff) {
  const x = d / half;
  if (Math.abs(x) >= 1) return 0;
  const blackman = 0.42 + 0.5 * Math.cos(Math.PI * x) + 0.08 * Math.cos(2 * Math.PI * x);
  const arg = 2 * cutoff * d;
  const sinc = arg === 0 ? 1 : Math.sin(Math.PI * arg) / (Math.PI * arg);
  return 2 * cutoff * sinc * blackman;
}

/**
 * Cut a stream of samples into fixed-size frames (e.g. 20 ms of 16 kHz = 320 samples).
 */
export class FrameAssembler {
  /** @param {number} frameSamples samples per frame */
  constructor(frameSamples) {
    if (!(frameSamples > 0)) throw new RangeError("frameSamples must be positive");
    this.frameSamples = frameSamples;
    this.pending = new Float32Array(frameSamples);
    this.filled = 0;
  }

  /**
   * Add samples; returns the frames completed by them (possibly none).
   * @param {Float32Array} samples
   * @returns {Float32Array[]}
   */
  push(samples) {
    const frames = [];
    let offset = 0;
    while (offset < samples.length) {
      const take = Math.min(this.frameSamples - this.filled, samples.length - offset);
      this.pending.set(samples.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.frameSamples) {
        frames.push(this.pending);
        this.pending = new Float32Array(this.frameSamples);
        this.filled = 0;
      }
    }
    return frames;
  }

  /** The incomplete last frame (if any), emptying the assembler. */
  takeRemainder() {
    const rest = this.pending.slice(0, this.filled);
    this.filled = 0;
    return rest;
  }
}

/** Playback phases of the jitter buffer. */
export const Phase = Object.freeze({
  IDLE: "idle", // nothing queued
  BUFFERING: "buffering", // collecting audio before starting (or after an underrun)
  PLAYING: "playing",
  FLUSHING: "flushing", // fading out what was playing, then silence
});

/**
 * Playback queue with a small jitter buffer, for the player worklet.
 * Playback starts once `prebufferSamples` are queued, or once the first queued audio has
 * waited that long (so a short last chunk still plays). Starts fade in and underruns fade
 * out over `fadeSamples`, so gaps never click. flush() keeps only a short fade of what is
 * playing and drops the rest at once.
 */
export class JitterBuffer {
  /**
   * @param {{prebufferSamples?: number, fadeSamples?: number}} [options]
   *   prebufferSamples: audio to collect before starting (default 1440 = 60 ms at 24 kHz);
   *   fadeSamples: ramp length for fades (default 96 = 4 ms at 24 kHz).
   */
  constructor({ prebufferSamples = 1440, fadeSamples = 96 } = {}) {
    this.prebufferSamples = prebufferSamples;
    this.fadeSamples = fadeSamples;
    this.chunks = [];
    this.head = 0; // read offset into chunks[0]
    this.queuedSamples = 0;
    this.playedSamples = 0;
    this.droppedSamples = 0; // discarded by flush()
    this.underruns = 0;
    this.phase = Phase.IDLE;
    this.waited = 0; // samples of output time spent buffering with audio queued
    this.fadeInLeft = 0;
  }

  /** Queue a chunk of float samples (copied by reference: do not reuse it). */
  push(samples) {
    if (samples.length === 0) return;
    this.chunks.push(samples);
    this.queuedSamples += samples.length;
    if (this.phase === Phase.IDLE) {
      this.phase = Phase.BUFFERING;
      this.waited = 0;
    }
  }

  /**
   * Drop everything queued, keeping a fade-out of at most `fadeSamples` of what is
   * playing right now (nothing at all if playback had not started).
   * @returns {number} samples dropped
   */
  flush() {
    const before = this.queuedSamples;
    if (this.phase === Phase.PLAYING) {
      const tail = this._take(Math.min(this.fadeSamples, this.queuedSamples));
      applyRamp(tail, 1, 0);
      this._clear();
      if (tail.length > 0) {
        this.chunks.push(tail);
        this.queuedSamples = tail.length;
        this.phase = Phase.FLUSHING;
      }
    } else {
      this._clear();
    }
    const dropped = before - this.queuedSamples;
    this.droppedSamples += dropped;
    return dropped;
  }

  /**
   * Fill `out` with the next samples to play (silence where there is nothing).
   * @param {Float32Array} out one render quantum
   * @returns {number} samples of real audio written
   */
  read(out) {
    out.fill(0);
    if (this.phase === Phase.BUFFERING) {
      this.waited += out.length;
      if (this.queuedSamples < this.prebufferSamples && this.waited < this.prebufferSamples) return 0;
      this.phase = Phase.PLAYING;
      this.fadeInLeft = this.fadeSamples;
    }
    if (this.phase !== Phase.PLAYING && this.phase !== Phase.FLUSHING) return 0;
    const n = Math.min(out.length, this.queuedSamples);
    const ending = this.queuedSamples <= out.length;
    this._takeInto(out, n);
    if (this.fadeInLeft > 0) this._fadeIn(out, n);
    if (ending) {
      if (this.phase === Phase.PLAYING) {
        applyRamp(out.subarray(Math.max(0, n - this.fadeSamples), n), 1, 0);
        this.underruns += 1;
      }
      this.phase = Phase.IDLE;
    }
    this.playedSamples += n;
    return n;
  }

  _fadeIn(out, n) {
    const m = Math.min(n, this.fadeInLeft);
    const done = this.fadeSamples - this.fadeInLeft;
    for (let i = 0; i < m; i++) out[i] *= (done + i) / this.fadeSamples;
    this.fadeInLeft -= m;
  }

  _take(count) {
    const out = new Float32Array(count);
    this._takeInto(out, count);
    return out;
  }

  _takeInto(out, count) {
    let written = 0;
    while (written < count) {
      const chunk = this.chunks[0];
      const take = Math.min(count - written, chunk.length - this.head);
      out.set(chunk.subarray(this.head, this.head + take), written);
      written += take;
      this.head += take;
      if (this.head === chunk.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.queuedSamples -= count;
  }

  _clear() {
    this.chunks = [];
    this.head = 0;
    this.queuedSamples = 0;
    this.phase = Phase.IDLE;
    this.fadeInLeft = 0;
  }
}

// Multiply samples by a linear ramp from `from` to `to` (in place).
function applyRamp(samples, from, to) {
  const n = samples.length;
  for (let i = 0; i < n; i++) samples[i] *= from + ((to - from) * (i + 1)) / n;
}
