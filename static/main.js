// The page's entry point: builds the view and the conversation controller, binds the controls,
// loads the scenarios, picks the language and publishes the automation hooks (window.liveTalk).
import { Conversation } from "./conversation.js";
import { requestFeedback } from "./feedback.js";
import { nextLanguage, pickLanguage, storeLanguage, storedLanguage, translator } from "./i18n.js";
import { Player } from "./player.js";
import { Recorder } from "./recorder.js";
import { RealtimeSocket, realtimeUrl } from "./socket.js";
import { View } from "./ui.js";

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

function setupLanguage(view) {
  let lang = pickLanguage(navigator.languages || [navigator.language], storedLanguage());
  view.setLanguage(lang, translator(lang));
  view.languageButton.addEventListener("click", () => {
    lang = nextLanguage(lang);
    storeLanguage(lang);
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
