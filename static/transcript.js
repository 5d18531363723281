// The conversation as a list of utterances, built from the relay's events exactly as the
// protocol defines them (docs/protocol.md; livetalk/relay.py sends them). Pure: the view
// (ui.js) renders whatever a method returns as changed.
//
// - `transcript` {role, text, final}: `text` is the whole current utterance of that role so far,
//   so it replaces the utterance's text; `final` closes it, and the next one of that role starts
//   a new utterance.
// - `chunk` {text} (text mode): the next piece of the model's text, appended.
// - `complete` {full_text}: the model's turn is over; `full_text` is the whole turn.
// - `interrupted`: the model's turn stops where it is. The relay then closes the model's open
//   utterance with one final `transcript` of it, as the very next event.
// - a typed turn is shown at once; the relay never echoes it back.

/**
 * @typedef {{id: number, role: "user"|"model", text: string, final: boolean,
 *            interrupted: boolean, typed: boolean}} Utterance
 */

const ROLES = ["user", "model"];

export class Transcript {
  constructor() {
    /** @type {Utterance[]} */
    this.utterances = [];
    this.open = { user: null, model: null }; // the utterance of each role still receiving text
    this.turn = []; // the model's utterances in the turn in progress (since the last complete/interrupted)
    this.cut = null; // the utterance `interrupted` just closed, until the next event
    this.nextId = 1;
  }

  /**
   * A `transcript` event: replace the text of that role's current utterance; `final` closes it.
   * @returns {Utterance[]} changed utterances
   */
  onTranscript(role, text, final) {
    const cut = this._takeCut();
    if (!ROLES.includes(role)) return [];
    if (role === "model" && final && cut) {
      cut.text = text; // the relay's closing transcript of the utterance `interrupted` cut
      return [cut];
    }
    const u = this.open[role] || (text ? this._create(role) : null);
    if (!u) return [];
    u.text = text;
    if (final) this._close(u);
    return [u];
  }

  /** A `chunk` event (text mode): the next piece of the model's text. */
  onChunk(text) {
    this._takeCut();
    if (!text) return [];
    const u = this.open.model || this._create("model");
    u.text += text;
    return [u];
  }

  /** A `complete` event: the model's turn is over; `fullText` is the whole turn's text. */
  onComplete(fullText) {
    this._takeCut();
    // One utterance is the whole turn. A turn of several (the relay closed the model's utterance
    // mid-turn, on a typed turn) keeps what its transcripts said: full_text spans them all.
    if (fullText && this.turn.length === 0) this._create("model");
    if (fullText && this.turn.length === 1) this.turn[0].text = fullText;
    const changed = this._closeAll([this.open.user, this.open.model, ...this.turn]);
    this.turn = [];
    return changed;
  }

  /** An `interrupted` event: the model's turn stops where it is, and its last utterance is marked. */
  onInterrupted() {
    this._takeCut();
    const u = this.turn.at(-1);
    this.turn = [];
    if (!u) return [];
    u.interrupted = true;
    if (this.open.model === u) {
      this._close(u);
      this.cut = u;
    }
    return [u];
  }

  /** A typed user turn, shown at once as final. A spoken user utterance still open stays open. */
  addTyped(text) {
    this._takeCut();
    const u = this._newUtterance("user");
    u.text = text;
    u.typed = true;
    u.final = true;
    return [u];
  }

  /** Close whatever is still open (the conversation ended, or goes on over a new socket). */
  finishAll() {
    this._takeCut();
    this.turn = [];
    return this._closeAll([this.open.user, this.open.model]);
  }

  _takeCut() {
    const cut = this.cut;
    this.cut = null;
    return cut;
  }

  _newUtterance(role) {
    const u = { id: this.nextId++, role, text: "", final: false, interrupted: false, typed: false };
    this.utterances.push(u);
    return u;
  }

  // A new utterance that receives the role's events from now on.
  _create(role) {
    const u = this._newUtterance(role);
    this.open[role] = u;
    if (role === "model") this.turn.push(u);
    return u;
  }

  _close(u) {
    u.final = true;
    if (this.open[u.role] === u) this.open[u.role] = null;
  }

  // Close each distinct utterance given (nulls skipped); return those whose text or state may have changed.
  _closeAll(candidates) {
    const changed = [...new Set(candidates.filter(Boolean))];
    for (const u of changed) this._close(u);
    return changed;
  }
}
