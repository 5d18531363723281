// AudioWorklet side of the microphone capture: mono input at the context's rate in,
// PCM16 frames out at the relay's input rate (16 kHz until told otherwise), posted to the main thread.
import { FrameAssembler, Resampler, floatToInt16, rms } from "./pcm.js";

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { targetRate = 16000, frameMs = 20 } = options.processorOptions || {};
    this.frameMs = frameMs;
    this._target(targetRate);
    this.running = true;
    this.port.onmessage = (event) => {
      const message = event.data || {};
      if (message.type === "stop") this._stop();
      else if (message.type === "rate") this._target(message.rate);
    };
  }

  // Frames at `rate` from now on (the relay's `ready.input_rate`; what is buffered at the old rate is dropped).
  _target(rate) {
    this.resampler = new Resampler(sampleRate, rate);
    this.frames = new FrameAssembler(Math.round((rate * this.frameMs) / 1000));
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
