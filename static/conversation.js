// The conversation controller: wires the socket, microphone, player and view together and
// moves the page through its lifecycle by dispatching events (lifecycle.js); it never sets a
// state itself. No DOM here: the view, the socket and the audio come in through the
// constructor, so tests drive it with stand-ins.
import { messages } from "./i18n.js";
import { Event, State, isTalking, transition } from "./lifecycle.js";
import { meterValue } from "./pcm.js";
import { MicrophoneError } from "./recorder.js";
import { Transcript } from "./transcript.js";

export const RECONNECT_DELAYS_MS = Object.freeze([300, 1000, 2500]); // before each try after a dropped socket
export const ENDED_TIMEOUT_MS = 8000; // how long End waits for the relay's `ended`

// Errors after which the conversation is over but worth grading.
const ENDS_CONVERSATION = new Set(["session_limit", "idle_timeout"]);
// Non-fatal errors that need no message (the session just goes on).
const QUIET = new Set(["shutting_down"]);

export class Conversation {
  /**
   * @param {object} options
   * @param {import("./ui.js").View} options.view what the page shows
   * @param {import("./socket.js").RealtimeSocket} options.socket the /ws/realtime client
   * @param {(params: {scenario: string|null, mode: string, resume: string|null}) => string} options.socketUrl
   * @param {(sessionId: string) => Promise<{kind: string, data?: object}>} options.requestGrade see feedback.js
   * @param {() => import("./player.js").Player} options.createPlayer
   * @param {() => import("./recorder.js").Recorder} options.createRecorder
   * @param {readonly number[]} [options.reconnectDelaysMs] wait before each reconnect try, ms; one try each
   * @param {number} [options.endedTimeoutMs] how long End waits for `ended`, ms
   * @param {{setTimeout: Function, clearTimeout: Function}} [options.timers] the clock (tests pass their own)
   */
  constructor({ view, socket, socketUrl, requestGrade, createPlayer, createRecorder,
    reconnectDelaysMs = RECONNECT_DELAYS_MS, endedTimeoutMs = ENDED_TIMEOUT_MS, timers = globalThis }) {
    this.view = view;
    this.socket = socket;
    this.socketUrl = socketUrl;
    this.requestGrade = requestGrade;
    this.createPlayer = createPlayer;
    this.createRecorder = createRecorder;
    this.reconnectDelaysMs = reconnectDelaysMs;
    this.endedTimeoutMs = endedTimeoutMs;
    this.timers = timers;
    this.state = State.IDLE;
    this.runs = 0; // conversations started; a slow microphone prompt of an earlier one must not connect
    this.transcript = new Transcript();
    this.recorder = null;
    this.player = null;
    this.sessionId = null;
    this.resumeTicket = null;
    this.reconnectAttempt = 0;
    this.reconnectTimer = null;
    this.connectParams = null;
    this.endedWaiter = null;
    this.totals = { capturedMs: 0, playedMs: 0, flushedMs: 0, interruptions: 0 };
    this.turnStartPlayedMs = 0; // the player's playedMs when the current model turn began
    this.lastFlush = { lastFlushMs: null, lastFlushAckMs: null, queuedAtLastFlushMs: null };
    this.emulated = false;
    this._bindSocket();
  }

  // --- the lifecycle ----------------------------------------------------------------

  /** Apply a lifecycle event; false (and nothing changes) when the current state does not allow it. */
  _dispatch(event) {
    const { state, allowed } = transition(this.state, event);
    if (!allowed) return false;
    this.state = state;
    if (state !== State.RECONNECTING) this._cancelReconnect();
    this.view.setState(state);
    return true;
  }

  /** Gemini is emulated (said by `ready` or /healthz): the page says it is a demo. */
  setEmulated(on) {
    this.emulated = this.emulated || on;
    this.view.setEmulated(this.emulated);
  }

  // --- starting ---------------------------------------------------------------------

  /** Start a conversation with the scenario and mode chosen in the view. */
  async start() {
    if (!this._dispatch(Event.START)) return;
    const run = ++this.runs;
    this.connectParams = { scenario: this.view.selectedScenario(), mode: this.view.selectedMode() };
    this._resetConversation();
    try {
      if (this.connectParams.mode === "voice") await this._startAudio();
    } catch (err) {
      if (run === this.runs) this._fail(micErrorCode(err), String(err && err.cause ? err.cause : err));
      return;
    }
    if (run === this.runs && this.state === State.CONNECTING) await this._connect();
  }

  _resetConversation() {
    this.view.offerGradeRecorded(false);
    this.view.clearError();
    this.view.clearTranscript();
    this.view.clearFeedback();
    this.transcript = new Transcript();
    this.sessionId = null;
    this.resumeTicket = null;
    this.reconnectAttempt = 0;
  }

  async _startAudio() {
    // Create the player inside the click so the browser lets it make sound.
    this.player = this.createPlayer();
    this.turnStartPlayedMs = 0;
    const playerReady = this.player.start();
    this.recorder = this.createRecorder();
    this.recorder.addEventListener("frame", (event) => this._onMicFrame(event.detail));
    await Promise.all([this.recorder.start(), playerReady]);
  }

  async _connect() {
    const params = { ...this.connectParams, resume: this.resumeTicket };
    try {
      await this.socket.connect(this.socketUrl(params));
    } catch (err) {
      if (!err.superseded) this._onSocketLost(err);
    }
  }

  _onMicFrame(frame) {
    this.totals.capturedMs += frame.ms;
    if (this.state === State.LIVE) this.socket.sendAudio(frame.pcm);
    this.view.showLevel(meterValue(frame.level));
  }

  // --- talking ----------------------------------------------------------------------

  /** Send a typed turn and show it at once. */
  sendText(text) {
    if (!text) return;
    if (this.state !== State.LIVE && this.state !== State.RECONNECTING) {
      this.view.showError("error.not_live");
      return;
    }
    if (!this.socket.sendJson({ type: "text", text })) {
      this.view.showError("error.connection_lost");
      return;
    }
    if (this.view.errorKey === "error.not_live") this.view.clearError();
    this._show(this.transcript.addTyped(text));
  }

  _bindSocket() {
    const handlers = {
      ready: (m) => this._onReady(m),
      transcript: (m) => this._show(this.transcript.onTranscript(m.role, String(m.text ?? ""), Boolean(m.final))),
      chunk: (m) => this._show(this.transcript.onChunk(String(m.text ?? ""))),
      complete: (m) => this._onComplete(m),
      interrupted: () => this._onInterrupted(),
      resumable: (m) => (this.resumeTicket = m.resume || this.resumeTicket),
      reconnecting: () => this._dispatch(Event.UPSTREAM_LOST),
      resumed: () => this._dispatch(Event.RESUMED),
      warning: (m) => this._onWarning(m),
      error: (m) => this._onError(m),
      ended: (m) => this._onEnded(m),
      audio: (buffer) => this.player && this.state !== State.ENDING && this.player.push(buffer),
      close: (info) => this._onClose(info),
    };
    for (const [type, handle] of Object.entries(handlers)) {
      this.socket.addEventListener(type, (event) => handle(event.detail));
    }
  }

  _show(changed) {
    this.view.updateUtterances(changed);
  }

  _onReady(message) {
    this.sessionId = message.session_id || this.sessionId;
    // The engine decides the microphone's rate (e.g. 24 kHz for OpenAI): capture at what `ready` says.
    if (this.recorder && message.input_rate) this.recorder.setRate(Number(message.input_rate));
    if (message.resume) this.resumeTicket = message.resume;
    this.setEmulated(Boolean(message.emulated));
    this.reconnectAttempt = 0;
    this._dispatch(Event.READY);
  }

  _onComplete(message) {
    if (this.player) this.turnStartPlayedMs = this.player.playedMs + this.player.queuedMs;
    this._show(this.transcript.onComplete(String(message.full_text ?? "")));
  }

  _onInterrupted() {
    if (this.player) {
      this.player.flush();
      // What the user heard of this turn, so an engine that remembers the whole answer forgets the rest.
      const played = Math.max(0, Math.round(this.player.playedMs - this.turnStartPlayedMs));
      this.socket.sendJson({ type: "playback", played_ms: played });
      this.turnStartPlayedMs = this.player.playedMs;
    }
    this.totals.interruptions += 1;
    this._show(this.transcript.onInterrupted());
  }

  _onWarning(message) {
    if (message.code === "session_limit") this.view.showError("error.session_limit.warning", message.message);
  }

  _onError(message) {
    const code = String(message.code || "unknown");
    if (!message.fatal) {
      if (!QUIET.has(code)) this.view.showError(errorKey(code), message.message);
      return;
    }
    if (!isTalking(this.state)) return; // already ending or over: the close follows
    if (code === "shutting_down" && this._reconnectIfPossible()) return;
    if (ENDS_CONVERSATION.has(code)) {
      this.view.showError(errorKey(code), message.message);
      this._finish();
      return;
    }
    this._fail(code, message.message);
  }

  // --- connection trouble -----------------------------------------------------------

  _onClose(info) {
    if (this.state === State.ENDING) this._resolveEnded(null);
    else this._onSocketLost(info);
  }

  _onSocketLost(info) {
    if (this._reconnectIfPossible()) return;
    // A full server says so in an error event first; 1013 alone means the same.
    this._fail(this.state === State.CONNECTING && info && info.code === 1013 ? "capacity" : "connection_lost");
  }

  // Reconnect with the resume ticket (the conversation continues where it was), a few times.
  _reconnectIfPossible() {
    if (!this.resumeTicket || this.reconnectAttempt >= this.reconnectDelaysMs.length) return false;
    if (!this._dispatch(Event.RETRY)) return false;
    this.socket.close();
    this._show(this.transcript.finishAll()); // the relay behind the new socket starts every utterance afresh
    const delay = this.reconnectDelaysMs[this.reconnectAttempt];
    this.reconnectAttempt += 1;
    this._cancelReconnect();
    this.reconnectTimer = this.timers.setTimeout(() => {
      this.reconnectTimer = null;
      this._connect();
    }, delay);
    return true;
  }

  // Leaving `reconnecting` any way (ready, End, failure, leaving the page) cancels the pending try.
  _cancelReconnect() {
    if (this.reconnectTimer === null) return;
    this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  async _fail(code, detail = "") {
    if (!this._dispatch(Event.FAIL)) return;
    this.view.showError(errorKey(code), detail);
    await this._closeConversation();
    // The relay recorded the conversation up to the failure (at least to its last checkpoint).
    if (this.sessionId && this.state === State.ERROR) this.view.offerGradeRecorded(true);
  }

  /** After a conversation ended by a failure: grade what was recorded of it. */
  async gradeRecorded() {
    const sessionId = this.sessionId;
    if (!sessionId || !this._dispatch(Event.GRADE)) return;
    this.view.offerGradeRecorded(false);
    this.view.clearError();
    await this._grade(sessionId);
  }

  async _closeConversation() {
    this.socket.close();
    this._show(this.transcript.finishAll());
    await this._stopAudio();
  }

  // --- ending -----------------------------------------------------------------------

  /** End the conversation: tell the relay, stop the microphone, then grade it. */
  async end() {
    const wasConnecting = this.state === State.CONNECTING;
    if (!this._dispatch(Event.END)) return;
    const stopping = this._stopAudio();
    if (!wasConnecting && this.socket.isOpen) {
      const ended = this._waitForEnded();
      this.socket.sendJson({ type: "end" });
      await ended;
    }
    await stopping;
    await this._finish();
  }

  /** The page is being left (pagehide): stop everything now, and never reconnect. */
  leave() {
    if (this._dispatch(Event.LEAVE)) this._closeConversation();
  }

  // Resolves with the relay's `ended` (or null on a close, or after endedTimeoutMs).
  _waitForEnded() {
    return new Promise((resolve) => {
      const timer = this.timers.setTimeout(() => this._resolveEnded(null), this.endedTimeoutMs);
      this.endedWaiter = (message) => {
        this.timers.clearTimeout(timer);
        resolve(message);
      };
    });
  }

  _onEnded(message) {
    if (message.session_id) this.sessionId = message.session_id;
    this._resolveEnded(message);
  }

  _resolveEnded(message) {
    const waiter = this.endedWaiter;
    this.endedWaiter = null;
    if (waiter) waiter(message);
  }

  // The conversation is over (End, or the relay ended it): grade what was recorded.
  async _finish() {
    const sessionId = this.sessionId;
    if (!this._dispatch(sessionId ? Event.GRADE : Event.NOTHING_TO_GRADE)) return;
    await this._closeConversation();
    if (!sessionId) {
      this.view.showFeedbackMessage("feedback.none");
      return;
    }
    await this._grade(sessionId);
  }

  async _grade(sessionId) {
    this.view.showGradingProgress();
    const result = await this.requestGrade(sessionId);
    if (result.kind === "graded") this.view.showEvaluation(result.data);
    else this.view.showFeedbackMessage(FEEDBACK_MESSAGES[result.kind] || "feedback.failed");
    this._dispatch(Event.GRADED);
  }

  async _stopAudio() {
    const recorder = this.recorder;
    const player = this.player;
    this.recorder = null;
    this.player = null;
    if (recorder) await recorder.stop();
    if (player) {
      this.totals.playedMs += player.playedMs;
      this.totals.flushedMs += player.flushedMs;
      this.lastFlush = player.lastFlushMs === null ? this.lastFlush : flushFacts(player);
      await player.stop();
    }
  }

  // --- automation hooks (page contract) ---------------------------------------------

  /** What window.liveTalk.stats() returns (page contract). */
  stats() {
    const p = this.player;
    return {
      state: this.state,
      sessionId: this.sessionId,
      emulated: this.emulated,
      capturedMs: this.totals.capturedMs,
      sentBytes: this.socket.sentBytes,
      receivedBytes: this.socket.receivedBytes,
      sentAudioBytes: this.socket.sentAudioBytes,
      receivedAudioBytes: this.socket.receivedAudioBytes,
      droppedFrames: this.socket.droppedFrames,
      playedMs: this.totals.playedMs + (p ? p.playedMs : 0),
      queuedMs: p ? p.queuedMs : 0,
      flushedMs: this.totals.flushedMs + (p ? p.flushedMs : 0),
      interruptions: this.totals.interruptions,
      underruns: p ? p.underruns : 0,
      ...(p && p.lastFlushMs !== null ? flushFacts(p) : this.lastFlush),
      inputLevel: this.recorder ? this.recorder.level : 0,
    };
  }
}

const FEEDBACK_MESSAGES = Object.freeze({
  unavailable: "feedback.unavailable",
  not_found: "feedback.not_found",
});

// How the last barge-in went: ms from `interrupted` to an empty queue, and what it dropped.
function flushFacts(player) {
  return {
    lastFlushMs: player.lastFlushMs,
    lastFlushAckMs: player.lastFlushAckMs,
    queuedAtLastFlushMs: player.queuedAtLastFlushMs,
  };
}

function micErrorCode(err) {
  return err instanceof MicrophoneError ? err.code : "mic_failed";
}

function errorKey(code) {
  const key = `error.${code}`;
  return key in messages.ja ? key : "error.unknown";
}
