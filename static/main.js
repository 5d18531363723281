// The conversation controller: wires the socket, microphone, player and view together
// and owns the page's lifecycle (idle -> connecting -> live -> ending -> grading -> done).
import { LANGUAGES, messages, pickLanguage, translator } from "./i18n.js";
import { Player } from "./player.js";
import { MicrophoneError, Recorder } from "./recorder.js";
import { RealtimeSocket, realtimeUrl } from "./socket.js";
import { Transcript } from "./transcript.js";
import { State, View } from "./ui.js";
import { meterValue } from "./pcm.js";
import { requestFeedback } from "./feedback.js";

const RECONNECT_DELAYS_MS = [300, 1000, 2500]; // after a dropped socket, with a resume ticket
const ENDED_TIMEOUT_MS = 8000; // how long End waits for the server's `ended`
const LANGUAGE_KEY = "livetalk.lang";

// Errors after which the conversation is over but worth grading.
const ENDS_CONVERSATION = new Set(["session_limit", "idle_timeout"]);
// Non-fatal errors that need no message (the session just goes on).
const QUIET = new Set(["shutting_down"]);
// States in which a conversation is (being) set up or running.
const TALKING = new Set([State.CONNECTING, State.LIVE, State.RECONNECTING]);

class App {
  constructor(view) {
    this.view = view;
    this.socket = new RealtimeSocket();
    this.transcript = new Transcript();
    this.recorder = null;
    this.player = null;
    this.sessionId = null;
    this.resumeTicket = null;
    this.reconnectAttempt = 0;
    this.connectParams = null;
    this.endedWaiter = null;
    this.totals = { capturedMs: 0, playedMs: 0, flushedMs: 0, interruptions: 0 };
    this.lastFlush = { lastFlushMs: null, lastFlushAckMs: null, queuedAtLastFlushMs: null };
    this.emulated = false;
    this.meterFrame = 0;
    this._bindSocket();
  }

  get state() {
    return this.view.state;
  }

  setState(state) {
    this.view.setState(state, this.connectParams ? this.connectParams.mode : this.view.selectedMode());
  }

  // --- page setup -------------------------------------------------------------------

  async init() {
    this._bindControls();
    this.setState(State.IDLE);
    await Promise.all([this._loadScenarios(), this._checkHealth()]);
    this.setState(this.state); // the controls now know the scenarios (a conversation may have started)
  }

  async _loadScenarios() {
    try {
      const response = await fetch("/scenarios", { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`GET /scenarios: ${response.status}`);
      const scenarios = await response.json();
      this.view.setScenarios(Array.isArray(scenarios) ? scenarios : []);
    } catch (err) {
      this.view.setScenarios([]);
      this.view.showError("error.scenarios", String(err));
    }
  }

  async _checkHealth() {
    try {
      const response = await fetch("/healthz", { headers: { Accept: "application/json" } });
      const health = await response.json();
      if (health && health.gemini === "emulated") this._setEmulated(true);
    } catch {
      // The banner also follows `ready.emulated`; a failed health check changes nothing else.
    }
  }

  _setEmulated(on) {
    this.emulated = this.emulated || on;
    this.view.setEmulated(this.emulated);
  }

  _bindControls() {
    const v = this.view;
    v.startButton.addEventListener("click", () => this.start());
    v.endButton.addEventListener("click", () => this.end());
    v.scenario.addEventListener("change", () => v.showScenarioDescription());
    for (const input of v.modeInputs) input.addEventListener("change", () => this.setState(this.state));
    v.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      this.sendText(v.takeTypedText());
    });
  }

  // --- starting ---------------------------------------------------------------------

  async start() {
    if (![State.IDLE, State.DONE, State.ERROR].includes(this.state)) return;
    const mode = this.view.selectedMode();
    this.connectParams = { scenario: this.view.selectedScenario(), mode };
    this._resetConversation();
    this.setState(State.CONNECTING);
    try {
      if (mode === "voice") await this._startAudio();
    } catch (err) {
      if (this.state !== State.CONNECTING) return; // ended meanwhile: nothing went wrong
      const code = err instanceof MicrophoneError ? err.code : "mic_failed";
      await this._fail(code, String(err && err.cause ? err.cause : err));
      return;
    }
    if (this.state !== State.CONNECTING) return; // ended while waiting for the microphone
    await this._connect();
  }

  _resetConversation() {
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
    this.player = new Player();
    const playerReady = this.player.start();
    this.recorder = new Recorder();
    this.recorder.addEventListener("frame", (event) => this._onMicFrame(event.detail));
    await Promise.all([this.recorder.start(), playerReady]);
  }

  async _connect() {
    const params = { ...this.connectParams, resume: this.resumeTicket };
    try {
      await this.socket.connect(realtimeUrl(window.location, params));
    } catch (err) {
      if (!err.superseded) this._onSocketLost(err);
    }
  }

  _onMicFrame(frame) {
    this.totals.capturedMs += frame.ms;
    if (this.state === State.LIVE) this.socket.sendAudio(frame.pcm);
    this._showLevel(frame.level);
  }

  _showLevel(level) {
    this.level = level;
    if (this.meterFrame) return;
    this.meterFrame = requestAnimationFrame(() => {
      this.meterFrame = 0;
      this.view.setLevel(meterValue(this.level));
    });
  }

  // --- talking ----------------------------------------------------------------------

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
    this.view.updateUtterances(this.transcript.addTyped(text));
  }

  _bindSocket() {
    const handlers = {
      ready: (m) => this._onReady(m),
      transcript: (m) => this._show(this.transcript.onTranscript(m.role, m.text, Boolean(m.final))),
      chunk: (m) => this._show(this.transcript.onChunk(String(m.text ?? ""))),
      complete: (m) => this._show(this.transcript.onComplete(String(m.full_text ?? ""))),
      interrupted: () => this._onInterrupted(),
      resumable: (m) => (this.resumeTicket = m.resume || this.resumeTicket),
      reconnecting: () => this.state === State.LIVE && this.setState(State.RECONNECTING),
      resumed: () => this.state === State.RECONNECTING && this.setState(State.LIVE),
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
    if (message.resume) this.resumeTicket = message.resume;
    this._setEmulated(Boolean(message.emulated));
    this.reconnectAttempt = 0;
    if (this.state === State.CONNECTING || this.state === State.RECONNECTING) {
      this.setState(State.LIVE);
    }
  }

  _onInterrupted() {
    if (this.player) this.player.flush();
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
    if (!TALKING.has(this.state)) return; // already ending or failed: the close follows
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
    if (!TALKING.has(this.state)) return;
    const neverReady = this.state === State.CONNECTING;
    if (!neverReady && this._reconnectIfPossible()) return;
    // A full server says so in an error event first; 1013 alone means the same.
    this._fail(neverReady && info && info.code === 1013 ? "capacity" : "connection_lost");
  }

  // Reconnect with the resume ticket (the conversation continues where it was), a few times.
  _reconnectIfPossible() {
    if (!this.resumeTicket || this.reconnectAttempt >= RECONNECT_DELAYS_MS.length) return false;
    this.socket.close();
    const delay = RECONNECT_DELAYS_MS[this.reconnectAttempt];
    this.reconnectAttempt += 1;
    this.setState(State.RECONNECTING);
    setTimeout(() => {
      if (this.state === State.RECONNECTING) this._connect();
    }, delay);
    return true;
  }

  async _fail(code, detail = "") {
    this.view.showError(errorKey(code), detail);
    this.socket.close();
    await this._stopAudio();
    this._show(this.transcript.finishAll());
    this.setState(State.ERROR);
  }

  // --- ending -----------------------------------------------------------------------

  async end() {
    if (!TALKING.has(this.state)) return;
    const wasConnecting = this.state === State.CONNECTING;
    this.setState(State.ENDING);
    const stopping = this._stopAudio();
    if (!wasConnecting && this.socket.isOpen) {
      const ended = new Promise((resolve) => (this.endedWaiter = resolve));
      this.socket.sendJson({ type: "end" });
      await Promise.race([ended, sleep(ENDED_TIMEOUT_MS)]);
    }
    await stopping;
    await this._finish();
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

  async _finish() {
    this.socket.close();
    await this._stopAudio();
    this._show(this.transcript.finishAll());
    if (!this.sessionId) {
      this.view.showFeedbackMessage("feedback.none");
      this.setState(State.DONE);
      return;
    }
    this.setState(State.GRADING);
    this.view.showGradingProgress();
    const result = await requestFeedback(this.sessionId);
    if (result.kind === "graded") this.view.showEvaluation(result.data);
    else if (result.kind === "unavailable") this.view.showFeedbackMessage("feedback.unavailable");
    else if (result.kind === "not_found") this.view.showFeedbackMessage("feedback.not_found");
    else this.view.showFeedbackMessage("feedback.failed");
    this.setState(State.DONE);
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
      this.lastFlush = player.lastFlushMs === null ? this.lastFlush : this._flushFacts(player);
      await player.stop();
    }
  }

  // --- automation hooks (page contract) ---------------------------------------------

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
      ...(p && p.lastFlushMs !== null ? this._flushFacts(p) : this.lastFlush),
      inputLevel: this.recorder ? this.recorder.level : 0,
    };
  }

  // How the last barge-in went: ms from `interrupted` to an empty queue, and what it dropped.
  _flushFacts(player) {
    return {
      lastFlushMs: player.lastFlushMs,
      lastFlushAckMs: player.lastFlushAckMs,
      queuedAtLastFlushMs: player.queuedAtLastFlushMs,
    };
  }
}

function errorKey(code) {
  const key = `error.${code}`;
  return key in messages.ja ? key : "error.unknown";
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function storedLanguage() {
  try {
    return localStorage.getItem(LANGUAGE_KEY);
  } catch {
    return null; // storage blocked: follow the browser
  }
}

function setupLanguage(view) {
  let lang = pickLanguage(navigator.languages || [navigator.language], storedLanguage());
  view.setLanguage(lang, translator(lang));
  view.languageButton.addEventListener("click", () => {
    lang = LANGUAGES[(LANGUAGES.indexOf(lang) + 1) % LANGUAGES.length];
    try {
      localStorage.setItem(LANGUAGE_KEY, lang);
    } catch {
      // not remembered; still switched for this page
    }
    view.setLanguage(lang, translator(lang));
  });
}

const view = new View(document);
const app = new App(view);
setupLanguage(view);
window.liveTalk = Object.freeze({
  stats: () => app.stats(),
  start: () => app.start(),
  end: () => app.end(),
  sendText: (text) => app.sendText(text),
});
app.init();
