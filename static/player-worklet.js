// AudioWorklet side of playback: PCM16 chunks in (at `inputRate`), a jitter buffer,
// and the render loop. Reports what it played and what is queued, in milliseconds.
import { JitterBuffer, Resampler, int16ToFloat32 } from "./pcm.js";

const REPORT_EVERY_QUANTA = 8; // ~40 ms at 24 kHz

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { inputRate = 24000, prebufferMs = 60, fadeMs = 4 } = options.processorOptions || {};
    // The context normally runs at inputRate; resample only if the browser refused that rate.
    this.resampler = inputRate === sampleRate ? null : new Resampler(inputRate, sampleRate);
    this.queue = new JitterBuffer({
      prebufferSamples: Math.round((sampleRate * prebufferMs) / 1000),
      fadeSamples: Math.round((sampleRate * fadeMs) / 1000),
    });
    this.quanta = 0;
    this.port.onmessage = (event) => this._onMessage(event.data);
  }

  _onMessage(message) {
    if (message.type === "push") {
      const samples = int16ToFloat32(new Int16Array(message.pcm));
      this.queue.push(this.resampler ? this.resampler.process(samples) : samples);
    } else if (message.type === "flush") {
      this.queue.flush();
    }
    if (message.type === "flush") this._report({ flushId: message.id, flushedAt: currentTime });
    else this._report();
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    this.queue.read(out);
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    if (++this.quanta % REPORT_EVERY_QUANTA === 0) this._report();
    return true;
  }

  _report(flush = {}) {
    const msPerSample = 1000 / sampleRate;
    this.port.postMessage({
      ...flush,
      type: "stats",
      playedMs: this.queue.playedSamples * msPerSample,
      queuedMs: this.queue.queuedSamples * msPerSample,
      flushedMs: this.queue.droppedSamples * msPerSample,
      underruns: this.queue.underruns,
    });
  }
}

registerProcessor("livetalk-playback", PlaybackProcessor);
