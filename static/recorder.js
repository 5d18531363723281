// Microphone capture: getUserMedia -> AudioContext at the device's own rate -> capture worklet,
// which hands back 16 kHz PCM16 frames. Emits "frame" events ({pcm: ArrayBuffer, level, ms}).
import { INPUT_RATE_HZ } from "./pcm.js";

export const FRAME_MS = 20; // within the 20-40 ms the relay recommends

/** A microphone problem, with a `code` the UI turns into advice. */
export class MicrophoneError extends Error {
  constructor(code, cause) {
    super(code);
    this.name = "MicrophoneError";
    this.code = code; // mic_denied | mic_missing | mic_busy | mic_insecure | mic_failed
    this.cause = cause;
  }
}

const CONSTRAINTS = {
  audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  video: false,
};

export class Recorder extends EventTarget {
  constructor() {
    super();
    this.stream = null;
    this.context = null;
    this.node = null;
    this.capturedMs = 0;
    this.level = 0;
    this.stopped = false;
    this.rate = INPUT_RATE_HZ;
  }

  /** Capture at `rate` Hz from now on: the relay's `ready.input_rate` (it differs per engine). */
  setRate(rate) {
    if (!Number.isFinite(rate) || rate <= 0 || rate === this.rate) return;
    this.rate = rate;
    if (this.node) this.node.port.postMessage({ type: "rate", rate });
  }

  /** Ask for the microphone and start capturing. Rejects with MicrophoneError. */
  async start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new MicrophoneError("mic_insecure");
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia(CONSTRAINTS);
    } catch (err) {
      throw new MicrophoneError(classify(err), err);
    }
    try {
      await this._connect(this.stream);
    } catch (err) {
      await this.stop();
      throw new MicrophoneError("mic_failed", err);
    }
    // Stopped while the permission prompt or the audio graph was pending: release it all now.
    if (this.stopped) await this.stop();
  }

  async _connect(stream) {
    const [track] = stream.getAudioTracks();
    const deviceRate = track && track.getSettings ? track.getSettings().sampleRate : undefined;
    // Run the graph at the microphone's own rate (Firefox refuses to mix rates); the worklet resamples.
    this.context = deviceRate ? new AudioContext({ sampleRate: deviceRate }) : new AudioContext();
    await this.context.audioWorklet.addModule(new URL("./recorder-worklet.js", import.meta.url));
    const source = this.context.createMediaStreamSource(stream);
    this.node = new AudioWorkletNode(this.context, "livetalk-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      channelCount: 1,
      channelCountMode: "explicit",
      channelInterpretation: "speakers",
      processorOptions: { targetRate: this.rate, frameMs: FRAME_MS },
    });
    this.node.port.onmessage = (event) => this._onMessage(event.data);
    source.connect(this.node);
    if (this.context.state !== "running") await this.context.resume();
  }

  _onMessage(message) {
    if (message.type !== "frame") return;
    this.capturedMs += message.ms;
    this.level = message.level;
    this.dispatchEvent(new CustomEvent("frame", { detail: message }));
  }

  /** Stop the microphone (its indicator goes off) and release the audio graph. */
  async stop() {
    this.stopped = true;
    if (this.node) {
      this.node.port.postMessage({ type: "stop" });
      this.node.disconnect();
      this.node = null;
    }
    if (this.stream) {
      for (const track of this.stream.getTracks()) track.stop();
      this.stream = null;
    }
    if (this.context) {
      const context = this.context;
      this.context = null;
      await context.close().catch(() => {});
    }
    this.level = 0;
  }
}

function classify(err) {
  switch (err && err.name) {
    case "NotAllowedError":
    case "SecurityError":
    case "PermissionDeniedError":
      return "mic_denied";
    case "NotFoundError":
    case "OverconstrainedError":
    case "DevicesNotFoundError":
      return "mic_missing";
    case "NotReadableError":
    case "AbortError":
      return "mic_busy";
    default:
      return "mic_failed";
  }
}
