// The page's view: finds its elements once and updates them. No conversation logic here;
// main.js decides, this module shows.
import { applyTranslations } from "./i18n.js";
import { renderEvaluation } from "./feedback.js";
import { State } from "./lifecycle.js";

const BUSY = new Set([State.CONNECTING, State.LIVE, State.RECONNECTING, State.ENDING, State.GRADING]);

export class View {
  /** @param {Document} doc */
  constructor(doc) {
    this.doc = doc;
    const byTestId = (id) => doc.querySelector(`[data-testid="${id}"]`);
    this.scenario = byTestId("scenario");
    this.scenarioDescription = doc.getElementById("scenario-description");
    this.modeInputs = [...doc.querySelectorAll('input[name="mode"]')];
    this.startButton = byTestId("start");
    this.endButton = byTestId("end");
    this.gradeRecordedButton = byTestId("grade-recorded");
    this.status = byTestId("status");
    this.statusText = doc.getElementById("status-text");
    this.error = byTestId("error");
    this.transcript = byTestId("transcript");
    this.transcriptEmpty = doc.getElementById("transcript-empty");
    this.composer = doc.getElementById("composer");
    this.textInput = byTestId("text-input");
    this.sendButton = byTestId("send");
    this.feedback = byTestId("feedback");
    this.seeProgress = doc.getElementById("see-progress");
    this.banner = byTestId("emulated-banner");
    this.meter = doc.getElementById("meter");
    this.meterBar = doc.getElementById("meter-bar");
    this.languageButton = doc.getElementById("language");
    this.items = new Map(); // utterance id -> <li>
    this.t = (key) => key;
    this.state = State.IDLE; // the state shown (the controller owns the lifecycle)
    this.errorKey = null;
    this.scenarios = [];
    this.level = 0;
    this.levelFrame = 0;
  }

  /** Switch the page language. */
  setLanguage(lang, t) {
    this.t = t;
    this.doc.documentElement.lang = lang;
    applyTranslations(this.doc, t);
    if (!BUSY.has(this.state)) this._preferScenarioIn(lang); // the persona speaks the page's language
    this.refresh();
    if (this.errorKey) this.showError(this.errorKey);
    for (const li of this.items.values()) this._labelUtterance(li);
  }

  /** @param {{id: string, title: string, description: string, language: string}[]} scenarios */
  setScenarios(scenarios) {
    this.scenarios = scenarios;
    const options = scenarios.map((s) => {
      const option = this.doc.createElement("option");
      option.value = s.id;
      option.textContent = s.title || s.id;
      option.lang = s.language || "";
      return option;
    });
    this.scenario.replaceChildren(...options);
    this._preferScenarioIn(this.doc.documentElement.lang);
    this.refresh(); // the controls depend on whether there are scenarios
  }

  // Choose a scenario in `lang` when there is one and the chosen one is in another language.
  _preferScenarioIn(lang) {
    const inLang = (s) => String(s.language || "").toLowerCase().split("-")[0] === lang;
    const chosen = this.scenarios.find((s) => s.id === this.scenario.value);
    const preferred = this.scenarios.find(inLang);
    if (preferred && !(chosen && inLang(chosen))) this.scenario.value = preferred.id;
    this.showScenarioDescription();
  }

  showScenarioDescription() {
    const chosen = this.scenarios.find((s) => s.id === this.scenario.value);
    this.scenarioDescription.textContent = chosen ? chosen.description || "" : "";
  }

  selectedScenario() {
    return this.scenario.value || null;
  }

  selectedMode() {
    const checked = this.modeInputs.find((input) => input.checked);
    return checked ? checked.value : "voice";
  }

  /**
   * Show `state` on the status line and enable exactly the controls that make sense for it and
   * the chosen mode (which cannot change during a conversation: the mode inputs are disabled then).
   */
  setState(state) {
    this.state = state;
    const mode = this.selectedMode();
    this.status.dataset.state = state;
    const key = state === State.LIVE && mode === "text" ? "state.live.text" : `state.${state}`;
    this.statusText.textContent = this.t(key);
    const busy = BUSY.has(state);
    const talking = state === State.LIVE || state === State.RECONNECTING;
    this.startButton.disabled = busy || this.scenarios.length === 0;
    this.endButton.disabled = !(talking || state === State.CONNECTING);
    this.scenario.disabled = busy || this.scenarios.length === 0;
    for (const input of this.modeInputs) input.disabled = busy;
    this.textInput.disabled = !talking;
    this.sendButton.disabled = !talking;
    this.meter.hidden = !(talking && mode === "voice");
    if (!talking) this.setLevel(0);
    this.doc.body.dataset.state = state;
  }

  /** Show a plain-language error (an i18n key), or clear it with null. */
  showError(key, detail = "") {
    this.errorKey = key;
    this.error.dataset.code = key ? key.replace(/^error\./, "").replace(/^feedback\./, "feedback_") : "";
    this.error.textContent = key ? this.t(key) : "";
    if (key && detail) this.error.title = detail;
    else this.error.removeAttribute("title");
  }

  clearError() {
    this.showError(null);
  }

  /** Show the shown state again (after the mode, the language or the scenarios changed). */
  refresh() {
    this.setState(this.state);
  }

  /** Input level, 0..1, shown at the next animation frame (frames come faster than the screen). */
  showLevel(value) {
    this.level = value;
    if (this.levelFrame) return;
    this.levelFrame = requestAnimationFrame(() => {
      this.levelFrame = 0;
      if (!this.meter.hidden) this.setLevel(this.level);
    });
  }

  /** Input level, 0..1, shown now. */
  setLevel(value) {
    this.meterBar.style.transform = `scaleX(${value.toFixed(3)})`;
    this.meter.setAttribute("aria-valuenow", String(Math.round(value * 100)));
  }

  setEmulated(on) {
    this.banner.hidden = !on;
  }

  clearTranscript() {
    this.transcript.replaceChildren();
    this.items.clear();
    this.transcriptEmpty.hidden = false;
  }

  /** Render utterances that changed (see transcript.js). */
  updateUtterances(utterances) {
    const list = this.transcript;
    const following = list.scrollHeight - list.scrollTop - list.clientHeight < 48; // reader is at the end
    for (const u of utterances) {
      let li = this.items.get(u.id);
      if (!li) {
        li = this._newUtterance(u);
        this.items.set(u.id, li);
        this.transcript.append(li);
        this.transcriptEmpty.hidden = true;
      }
      li.dataset.final = String(u.final);
      li.querySelector(".utterance-text").textContent = u.text;
      li.classList.toggle("interrupted", u.interrupted);
      if (u.interrupted) li.dataset.interrupted = "true";
      this._labelUtterance(li);
    }
    // Keep the newest words in view, but never yank the page or a reader who scrolled back.
    if (utterances.length && following) list.scrollTop = list.scrollHeight;
  }

  _newUtterance(u) {
    const li = this.doc.createElement("li");
    li.className = `utterance utterance-${u.role}`;
    li.dataset.role = u.role;
    if (u.typed) li.dataset.typed = "true";
    const who = this.doc.createElement("span");
    who.className = "utterance-who";
    const text = this.doc.createElement("p");
    text.className = "utterance-text";
    const note = this.doc.createElement("span");
    note.className = "utterance-note";
    li.append(who, text, note);
    return li;
  }

  _labelUtterance(li) {
    li.querySelector(".utterance-who").textContent = this.t(`role.${li.dataset.role}`);
    li.querySelector(".utterance-note").textContent =
      li.dataset.interrupted === "true" ? this.t("utterance.interrupted") : "";
  }

  takeTypedText() {
    const text = this.textInput.value.trim();
    if (text) this.textInput.value = "";
    return text;
  }

  clearFeedback() {
    if (this.seeProgress) this.seeProgress.hidden = true;
    this.feedback.replaceChildren();
    delete this.feedback.dataset.score;
    this.feedback.hidden = true;
  }

  /** Offer (or stop offering) to grade what was recorded of a conversation that failed. */
  offerGradeRecorded(on) {
    this.gradeRecordedButton.hidden = !on;
  }

  showGradingProgress() {
    this.clearFeedback();
    const box = this.doc.createElement("div");
    box.className = "grading-progress";
    const bar = this.doc.createElement("progress");
    bar.setAttribute("aria-label", this.t("feedback.progress"));
    const label = this.doc.createElement("p");
    label.textContent = this.t("feedback.progress");
    box.append(bar, label);
    this.feedback.append(box);
    this.feedback.setAttribute("aria-busy", "true");
    this.feedback.hidden = false;
    this._bringIntoView(this.feedback);
  }

  showEvaluation(data) {
    this.feedback.removeAttribute("aria-busy");
    renderEvaluation(this.feedback, data, this.t);
    this.feedback.hidden = false;
    this._offerProgress(data && data.session_id);
    // On a phone the grade lands below the fold: take the reader there and announce it.
    this._bringIntoView(this.feedback.querySelector(".feedback-title") || this.feedback, { focus: true });
  }

  // After a grade: a way to the learner's history, opened on this conversation.
  _offerProgress(sessionId) {
    if (!this.seeProgress) return;
    const link = this.seeProgress.querySelector("a");
    link.href = sessionId ? `/history#${encodeURIComponent(sessionId)}` : "/history";
    this.seeProgress.hidden = false;
  }

  _bringIntoView(element, { focus = false } = {}) {
    const still = this.doc.defaultView?.matchMedia?.("(prefers-reduced-motion: reduce)").matches;
    element.scrollIntoView({ block: "start", behavior: still ? "auto" : "smooth" });
    if (focus) element.focus({ preventScroll: true });
  }

  /** A plain message in the feedback area (grading unavailable, failed...). */
  showFeedbackMessage(key) {
    this.clearFeedback();
    this.feedback.removeAttribute("aria-busy");
    const p = this.doc.createElement("p");
    p.className = "feedback-message";
    p.dataset.i18n = key;
    p.textContent = this.t(key);
    this.feedback.append(p);
    this.feedback.hidden = false;
  }
}
