// The conversation as a list of utterances, built from the relay's events. Pure: the view
// (ui.js) renders whatever this returns as changed. One utterance per turn of each side;
// interim text is replaced by final text.

/**
 * @typedef {{id: number, role: "user"|"model", text: string, final: boolean,
 *            interrupted: boolean, typed: boolean}} Utterance
 */

export class Transcript {
  constructor() {
    /** @type {Utterance[]} */
    this.utterances = [];
    this.open = { user: null, model: null }; // utterances still receiving text
    this.modelTurn = null; // the model utterance of the turn in progress
    this.lastInterrupted = null;
    this.typedEcho = []; // typed turns the server may echo back as user transcripts
    this.nextId = 1;
  }

  /**
   * A `transcript` event. Interim pieces may be deltas or the text so far; a final
   * piece replaces the interim text when it covers it.
   * @returns {Utterance[]} changed utterances
   */
  onTranscript(role, text, final) {
    if (role !== "user" && role !== "model") return [];
    if (role === "user" && this._isTypedEcho(text, final)) return [];
    let u = this.open[role];
    if (!u && role === "model" && final && this.lastInterrupted) {
      // The relay closes an interrupted utterance with a final transcript of it.
      u = this.lastInterrupted;
      u.text = merge(u.text, text || "", true);
      return [u];
    }
    if (!u) {
      if (!text && !final) return [];
      u = this._create(role);
      if (role === "model") this.modelTurn = u;
    }
    u.text = merge(u.text, text || "", final);
    if (final) this._finish(u);
    return [u];
  }

  /** A `chunk` event (text mode): model text, in order. */
  onChunk(text) {
    let u = this.open.model;
    if (!u) {
      u = this._create("model");
      this.modelTurn = u;
    }
    u.text += text;
    return [u];
  }

  /** A `complete` event: the model's turn ended; `fullText` is authoritative. */
  onComplete(fullText) {
    const changed = [];
    const user = this.open.user;
    if (user) {
      this._finish(user);
      changed.push(user);
    }
    let u = this.modelTurn || this.lastInterrupted;
    if (!u && fullText) u = this._create("model");
    if (u) {
      if (fullText) u.text = fullText;
      this._finish(u);
      changed.push(u);
    }
    this.modelTurn = null;
    this.lastInterrupted = null;
    return changed;
  }

  /** An `interrupted` event: the model's current utterance stops where it is. */
  onInterrupted() {
    const u = this.modelTurn;
    if (!u) return [];
    u.interrupted = true;
    this._finish(u);
    this.modelTurn = null;
    this.lastInterrupted = u;
    return [u];
  }

  /** A typed user turn, shown at once as final. */
  addTyped(text) {
    const changed = [];
    if (this.open.user) {
      changed.push(this.open.user);
      this._finish(this.open.user);
    }
    const u = this._create("user");
    u.text = text;
    u.typed = true;
    this._finish(u);
    this.typedEcho.push(text.trim());
    changed.push(u);
    return changed;
  }

  /** Close whatever is still open (the conversation ended). */
  finishAll() {
    const changed = [];
    for (const role of ["user", "model"]) {
      const u = this.open[role];
      if (u) {
        this._finish(u);
        changed.push(u);
      }
    }
    this.modelTurn = null;
    return changed;
  }

  _isTypedEcho(text, final) {
    const trimmed = (text || "").trim();
    const i = this.typedEcho.findIndex((typed) => typed === trimmed || (!final && typed.startsWith(trimmed)));
    if (i < 0 || !trimmed) return false;
    if (final || this.typedEcho[i] === trimmed) this.typedEcho.splice(i, 1);
    return true;
  }

  _create(role) {
    const u = { id: this.nextId++, role, text: "", final: false, interrupted: false, typed: false };
    this.utterances.push(u);
    this.open[role] = u;
    return u;
  }

  _finish(u) {
    u.final = true;
    if (this.open[u.role] === u) this.open[u.role] = null;
  }
}

// Combine the text so far with a new piece: the piece replaces it when it already
// contains it (cumulative interim text, or a final text for the whole utterance),
// and is appended otherwise (a delta).
function merge(current, piece, final) {
  if (!current) return piece;
  if (!piece) return current;
  if (piece.startsWith(current)) return piece;
  if (final && piece.length >= current.length && normalise(piece).includes(normalise(current))) return piece;
  return current + piece;
}

function normalise(text) {
  return text.replace(/\s+/g, "");
}
