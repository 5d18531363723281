// AudioWorklet side of the microphone capture: mono input at the context's rate in,
// 16 kHz PCM16 frames out (posted to the main thread, buffers transferred).
import { FrameAssembler, Resampler, floatToInt16, rms } from "./pcm.js";

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate = 16000, frameMs = 20 } = options.processorOptions || {};
    this.frameMs = frameMs;
    this.resampler = new Resampler(sampleRate, targetRate);
    this.frames = new FrameAssembler(Math.round((targetRate * frameMs) / 1000));
    this.running = true;
    this.port.onmessage = (event) => {
      if (event.data && event.data.type === "stop") this._stop();
    };
  }

  process(inputs) {
    if (!this.running) return false;
    const channels = inputs[0];
    if (channels && channels.length > 0) this._emit(this.resampler.process(channels[0]));
    return true;
  }

  _emit(samples) {
    for (const frame of this.frames.push(samples)) {
      const pcm = floatToInt16(frame);
      this.port.postMessage({ type: "frame", pcm: pcm.buffer, level: rms(frame), ms: this.frameMs }, [pcm.buffer]);
    }
  }

  // Push out what the resampler still holds so the last words are not cut.
  _stop() {
    this._emit(this.resampler.flush());
    this.running = false;
    this.port.postMessage({ type: "stopped" });
  }
}

registerProcessor("livetalk-capture", CaptureProcessor);
