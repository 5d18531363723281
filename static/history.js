// The /history page: today's use, the progress chart, the list of past conversations, one conversation
// opened (URL fragment #<session id>: the back button closes it), deleting it; administrators can search
// every learner's conversations. Hooks (page contract): history, progress-chart, recording, delete.
// <body data-state> is "loading", then "ready" (or "error") once the list is shown.
import {
  applyTranslations, fill, nextLanguage, pickLanguage, storeLanguage, storedLanguage, translator,
} from "./i18n.js";
import {
  deleteConversation, fetchConversation, fetchConversations, fetchMe, getJson, searchConversations,
} from "./learner-api.js";
import { formatDate, formatDuration, formatScore, outcomeKey, sessionFromHash, usageText } from "./history-format.js";
import { renderPastEvaluation, renderPastTranscript } from "./past.js";
import { drawProgress, progressModel } from "./progress.js";

class HistoryPage {
  /** @param {Document} doc */
  constructor(doc) {
    const byTestId = (id) => doc.querySelector(`[data-testid="${id}"]`);
    const byId = (id) => doc.getElementById(id);
    this.doc = doc;
    this.list = byTestId("history");
    this.listEmpty = byId("history-empty");
    this.more = byId("history-more");
    this.error = byTestId("error");
    this.usage = byTestId("usage");
    this.chart = byTestId("progress-chart");
    this.chartEmpty = byId("progress-empty");
    this.detail = byId("detail");
    this.detailTitle = byId("detail-title");
    this.detailFacts = byId("detail-facts");
    this.audio = byTestId("recording");
    this.noAudio = byId("detail-no-audio");
    this.transcript = this.detail.querySelector(".detail-transcript");
    this.evaluation = this.detail.querySelector('[data-testid="feedback"]');
    this.deleteButton = byTestId("delete");
    this.confirm = byId("confirm-delete");
    this.adminPanel = byId("admin-filters");
    this.adminForm = byId("admin-form");
    this.adminScenario = byId("admin-scenario");
    this.languageButton = byId("language");
    this.lang = "ja";
    this.t = translator("ja");
    this.scenarios = new Map(); // id -> title
    this.me = null;
    this.entries = []; // the list shown, newest first
    this.mine = []; // the learner's own conversations (the chart)
    this.next = null;
    this.admin = null; // the filters of the administrators' search being shown, or null
    this.opened = null; // the conversation shown in the detail (API answer)
    this.errorKey = null;
  }

  async start() {
    this._setupLanguage();
    this._bind();
    this.doc.body.dataset.state = "loading";
    await Promise.all([this._loadMe(), this._loadScenarios(), this._loadMine()]);
    this.doc.body.dataset.state = this.errorKey ? "error" : "ready";
    await this.openFromHash();
  }

  // --- language ---------------------------------------------------------------------

  _setupLanguage() {
    this._setLanguage(pickLanguage(navigator.languages || [navigator.language], storedLanguage()));
    this.languageButton.addEventListener("click", () => {
      const lang = nextLanguage(this.lang);
      storeLanguage(lang);
      this._setLanguage(lang);
    });
  }

  _setLanguage(lang) {
    this.lang = lang;
    this.t = translator(lang);
    this.doc.documentElement.lang = lang;
    applyTranslations(this.doc, this.t);
    this._showError(this.errorKey);
    this._renderUsage();
    this._renderList();
    this._renderChart();
    if (this.opened) this._renderDetail(this.opened);
  }

  // --- loading ----------------------------------------------------------------------

  _bind() {
    this.more.addEventListener("click", () => this._loadMore());
    this.deleteButton.addEventListener("click", () => this.confirm.showModal());
    this.confirm.addEventListener("close", () => {
      if (this.confirm.returnValue === "delete" && this.opened) this._delete(this.opened.session_id);
    });
    this.doc.getElementById("detail-close").addEventListener("click", () => this._closeDetail());
    window.addEventListener("hashchange", () => this.openFromHash());
    this.adminForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this._search(Object.fromEntries(new FormData(this.adminForm)));
    });
    this.doc.getElementById("admin-mine").addEventListener("click", () => this._showMine());
  }

  async _loadMe() {
    const { status, body } = await fetchMe();
    if (status !== 200 || !body) return;
    this.me = body;
    this.adminPanel.hidden = !body.admin;
    this._renderUsage();
  }

  async _loadScenarios() {
    const { status, body } = await getJson("/scenarios");
    if (status !== 200 || !Array.isArray(body)) return;
    this.scenarios = new Map(body.map((s) => [s.id, s.title || s.id]));
    const options = body.map((s) => {
      const option = this.doc.createElement("option");
      option.value = s.id;
      option.textContent = s.title || s.id;
      return option;
    });
    this.adminScenario.append(...options);
    this._renderList();
  }

  async _loadMine() {
    const { status, body } = await fetchConversations();
    if (status !== 200 || !body) {
      this._showError("history.load_failed");
      return;
    }
    this.mine = body.conversations || [];
    this._show(this.mine, body.next, null);
  }

  async _loadMore() {
    const { status, body } = this.admin ? await searchConversations(this.admin, this.next)
      : await fetchConversations(this.next);
    if (status !== 200 || !body) {
      this._showError("history.load_failed");
      return;
    }
    const added = body.conversations || [];
    if (!this.admin) this.mine = [...this.mine, ...added];
    this._show([...this.entries, ...added], body.next, this.admin);
  }

  async _search(filters) {
    const { status, body } = await searchConversations(filters);
    if (status !== 200 || !body) {
      this._showError("history.load_failed");
      return;
    }
    this._show(body.conversations || [], body.next, filters);
  }

  _showMine() {
    this.adminForm.reset();
    this._show(this.mine, null, null);
    this._loadMine();
  }

  _show(entries, next, admin) {
    this._showError(null);
    this.entries = entries;
    this.next = next;
    this.admin = admin;
    this._renderList();
    this._renderChart();
  }

  // --- the list and the chart -------------------------------------------------------

  _renderUsage() {
    this.usage.textContent = this.me ? usageText(this.me, this.t) : "";
  }

  _renderList() {
    const items = this.entries.map((entry) => this._item(entry));
    this.list.replaceChildren(...items);
    this.listEmpty.hidden = items.length > 0;
    this.more.hidden = !this.next;
  }

  _item(entry) {
    const doc = this.doc;
    const li = doc.createElement("li");
    li.className = "history-item";
    li.dataset.sessionId = entry.session_id;
    if (typeof entry.score === "number") li.dataset.score = String(Math.round(entry.score));
    const link = doc.createElement("a");
    link.className = "history-link";
    link.href = `#${encodeURIComponent(entry.session_id)}`;
    const parts = [
      ["history-date", formatDate(entry.started_at, this.lang)],
      ["history-scenario", this.scenarios.get(entry.scenario) || entry.scenario || ""],
      ["history-duration", formatDuration(entry.duration_s)],
      ["history-score", formatScore(entry.score, this.t)],
      ["history-outcome", this.t(outcomeKey(entry.outcome))],
    ];
    if (entry.learner) parts.push(["history-learner", entry.learner.email || entry.learner.id]);
    for (const [className, text] of parts) {
      const span = doc.createElement("span");
      span.className = className;
      span.textContent = text;
      link.append(span);
    }
    li.append(link);
    return li;
  }

  _renderChart() {
    const model = progressModel(this.mine);
    this.chartEmpty.hidden = model.scores.length > 0;
    drawProgress(this.chart, model, {
      pointLabel: (p) => fill(this.t("history.progress.point"), { date: formatDate(p.startedAt, this.lang), score: p.value }),
      talkLabel: (p) => fill(this.t("history.progress.talk_point"), { date: formatDate(p.startedAt, this.lang), share: p.value }),
      onOpen: (sessionId) => {
        window.location.hash = encodeURIComponent(sessionId);
      },
    });
  }

  // --- one conversation -------------------------------------------------------------

  async openFromHash() {
    const sessionId = sessionFromHash(window.location.hash);
    if (!sessionId) {
      this._hideDetail();
      return;
    }
    const { status, body } = await fetchConversation(sessionId);
    if (sessionFromHash(window.location.hash) !== sessionId) return; // another one was opened meanwhile
    if (status !== 200 || !body) {
      this._hideDetail();
      this._showError(status === 404 ? "detail.not_found" : "history.load_failed");
      return;
    }
    this._showError(null);
    this.opened = body;
    this._renderDetail(body);
    this.detail.hidden = false;
    this.detail.focus();
  }

  _renderDetail(data) {
    const t = this.t;
    this.detail.dataset.sessionId = data.session_id;
    const title = this.scenarios.get(data.scenario) || data.scenario || "";
    this.detailTitle.textContent = [formatDate(data.started_at, this.lang), title].filter(Boolean).join(" — ");
    const score = data.evaluation ? data.evaluation.score : null;
    const outcome = (data.evaluation && data.evaluation.outcome) || null;
    this.detailFacts.textContent = [formatDuration(data.duration_s), formatScore(score, t), t(outcomeKey(outcome))]
      .join(" · ");
    this._renderAudio(data.audio_url);
    renderPastTranscript(this.transcript, data.transcript, t);
    renderPastEvaluation(this.evaluation, data, t, { audio: data.audio_url ? this.audio : null, sessionId: data.session_id });
    this.deleteButton.hidden = false;
  }

  _renderAudio(url) {
    const target = url ? new URL(url, window.location.href).href : "";
    if (url && this.audio.src !== target) this.audio.src = url;
    if (!url) this.audio.removeAttribute("src");
    this.audio.hidden = !url;
    this.noAudio.hidden = Boolean(url);
  }

  _closeDetail() {
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
    this._hideDetail();
  }

  _hideDetail() {
    this.opened = null;
    this.detail.hidden = true;
    this.audio.pause();
    delete this.detail.dataset.sessionId;
  }

  async _delete(sessionId) {
    const { status } = await deleteConversation(sessionId);
    if (status !== 204 && status !== 404) {
      this._showError("detail.delete.failed");
      return;
    }
    this.mine = this.mine.filter((e) => e.session_id !== sessionId);
    this.entries = this.entries.filter((e) => e.session_id !== sessionId);
    this._closeDetail();
    this._renderList();
    this._renderChart();
    this._loadMe();
  }

  _showError(key) {
    this.errorKey = key;
    this.error.textContent = key ? this.t(key) : "";
    this.error.dataset.code = key || "";
  }
}

const page = new HistoryPage(document);
window.liveTalkHistory = Object.freeze({ ready: page.start() });
