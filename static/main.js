// The page's entry point: builds the view and the conversation controller, binds the controls,
// loads the scenarios, picks the language and publishes the automation hooks (window.liveTalk).
import { Conversation } from "./conversation.js";
import { requestFeedback } from "./feedback.js";
import { LANGUAGES, pickLanguage, translator } from "./i18n.js";
import { Player } from "./player.js";
import { Recorder } from "./recorder.js";
import { RealtimeSocket, realtimeUrl } from "./socket.js";
import { View } from "./ui.js";

const LANGUAGE_KEY = "livetalk.lang";

function bindControls(view, conversation) {
  view.startButton.addEventListener("click", () => conversation.start());
  view.endButton.addEventListener("click", () => conversation.end());
  view.gradeRecordedButton.addEventListener("click", () => conversation.gradeRecorded());
  view.scenario.addEventListener("change", () => view.showScenarioDescription());
  for (const input of view.modeInputs) input.addEventListener("change", () => view.refresh());
  view.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    conversation.sendText(view.takeTypedText());
  });
  // Leaving (or the page going into the back/forward cache) ends the conversation here and now:
  // a reconnect timer must not fire on a page the user has left.
  window.addEventListener("pagehide", () => conversation.leave());
}

async function loadScenarios(view) {
  try {
    const response = await fetch("/scenarios", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`GET /scenarios: ${response.status}`);
    const scenarios = await response.json();
    view.setScenarios(Array.isArray(scenarios) ? scenarios : []);
  } catch (err) {
    view.setScenarios([]);
    view.showError("error.scenarios", String(err));
  }
}

async function checkHealth(conversation) {
  try {
    const response = await fetch("/healthz", { headers: { Accept: "application/json" } });
    const health = await response.json();
    if (health && health.gemini === "emulated") conversation.setEmulated(true);
  } catch {
    // The banner also follows `ready.emulated`; a failed health check changes nothing else.
  }
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
const conversation = new Conversation({
  view,
  socket: new RealtimeSocket(),
  socketUrl: (params) => realtimeUrl(window.location, params),
  requestGrade: (sessionId) => requestFeedback(sessionId),
  createPlayer: () => new Player(),
  createRecorder: () => new Recorder(),
});
setupLanguage(view);
bindControls(view, conversation);
window.liveTalk = Object.freeze({
  stats: () => conversation.stats(),
  start: () => conversation.start(),
  end: () => conversation.end(),
  sendText: (text) => conversation.sendText(text),
});
loadScenarios(view);
checkHealth(conversation);
