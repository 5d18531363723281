// Model speech playback: PCM16 chunks at 24 kHz -> playback worklet (jitter buffer) -> speakers.
import { OUTPUT_RATE_HZ } from "./pcm.js";

const PREBUFFER_MS = 60; // jitter buffer before a turn starts playing
const FADE_MS = 4; // ramp on start, underrun and flush

export class Player {
  /** @param {{inputRate?: number}} [options] rate of the PCM16 pushed in, Hz */
  constructor({ inputRate = OUTPUT_RATE_HZ } = {}) {
    this.inputRate = inputRate;
    this.context = null;
    this.node = null;
    this.pending = []; // chunks pushed before the worklet was ready
    this.stopped = false;
    this.playedMs = 0;
    this.queuedMs = 0;
    this.flushedMs = 0; // dropped by flush() (barge-in), never played
    this.underruns = 0;
    this.flushes = 0;
    this.lastFlushMs = null; // flush request to silence at the speakers (the fade included), ms
    this.lastFlushAckMs = null; // flush request to the worklet's acknowledgement on this thread, ms
    this.queuedAtLastFlushMs = null; // what was waiting to be played when the last flush came
    this._flushStarted = new Map();
    this._flushSeq = 0;
  }

  /** Create the audio graph. Call from a user gesture so the browser lets it play. */
  async start() {
    try {
      this.context = new AudioContext({ sampleRate: this.inputRate, latencyHint: "interactive" });
    } catch {
      this.context = new AudioContext({ latencyHint: "interactive" }); // the worklet resamples
    }
    const resumed = this.context.resume().catch(() => {}); // rejects only once closed by stop()
    await this.context.audioWorklet.addModule(new URL("./player-worklet.js", import.meta.url));
    if (this.stopped) return; // stop() ran meanwhile and closed the context
    this.node = new AudioWorkletNode(this.context, "livetalk-playback", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { inputRate: this.inputRate, prebufferMs: PREBUFFER_MS, fadeMs: FADE_MS },
    });
    this.node.port.onmessage = (event) => this._onStats(event.data);
    this.node.connect(this.context.destination);
    await resumed;
    if (this.stopped) {
      await this.stop(); // stopped while starting
      return;
    }
    for (const chunk of this.pending.splice(0)) this._post(chunk);
  }

  /** Queue one chunk of PCM16 (little-endian bytes). The buffer is transferred. */
  push(buffer) {
    if (buffer.byteLength < 2) return;
    const even = buffer.byteLength % 2 === 0 ? buffer : buffer.slice(0, buffer.byteLength - 1);
    if (!this.node) {
      this.pending.push(even);
      return;
    }
    this._post(even);
  }

  _pendingMs() {
    return this.pending.reduce((ms, b) => ms + (b.byteLength / 2 / this.inputRate) * 1000, 0);
  }

  _post(buffer) {
    this.queuedMs += (buffer.byteLength / 2 / this.inputRate) * 1000;
    this.node.port.postMessage({ type: "push", pcm: buffer }, [buffer]);
  }

  /** Drop everything queued now (barge-in). */
  flush() {
    this.queuedAtLastFlushMs = this.queuedMs + this._pendingMs();
    this.pending = [];
    this.flushes += 1;
    if (!this.node) {
      this.queuedMs = 0;
      return;
    }
    const id = ++this._flushSeq;
    this._flushStarted.set(id, performance.now());
    this.node.port.postMessage({ type: "flush", id });
  }

  _onStats(stats) {
    this.playedMs = stats.playedMs;
    this.queuedMs = stats.queuedMs;
    this.flushedMs = stats.flushedMs;
    this.underruns = stats.underruns;
    if (stats.flushId !== undefined && this._flushStarted.has(stats.flushId)) {
      const requested = this._flushStarted.get(stats.flushId);
      this._flushStarted.delete(stats.flushId);
      this.lastFlushMs = Math.max(0, this._audioClockToPerformance(stats.flushedAt) - requested) + FADE_MS;
      this.lastFlushAckMs = performance.now() - requested;
    }
  }

  // When the audio rendered at context time `t` (s) leaves the speakers, on the performance.now() clock.
  // Falls back to "now" where the browser cannot tell (no output timestamp yet).
  _audioClockToPerformance(t) {
    const stamp = this.context && this.context.getOutputTimestamp ? this.context.getOutputTimestamp() : null;
    if (t === undefined || !stamp || !(stamp.performanceTime > 0)) return performance.now();
    return stamp.performanceTime + (t - stamp.contextTime) * 1000;
  }

  async stop() {
    this.stopped = true;
    this.pending = [];
    this.queuedMs = 0;
    if (this.node) {
      this.node.disconnect();
      this.node = null;
    }
    if (this.context) {
      const context = this.context;
      this.context = null;
      await context.close().catch(() => {});
    }
  }
}
