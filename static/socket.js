// The /ws/realtime client: one WebSocket, JSON events in and out, binary audio both ways.
// Every server event is re-dispatched as a DOM event named after its `type`
// (CustomEvent, the parsed message in `detail`); model audio arrives as "audio" events
// (detail: ArrayBuffer) and the end of the socket as "close" ({code, reason, clean}).

const MAX_BUFFERED_BYTES = 256 * 1024; // drop microphone frames rather than fall seconds behind

/**
 * How many bytes `text` takes in UTF-8 on the wire, counted without encoding it (no allocation).
 * A lone surrogate counts as U+FFFD (3 bytes), which is what WebSocket.send() puts on the wire.
 */
export function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (isHighSurrogate(unit) && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 4; // one code point above U+FFFF
      i += 1;
    } else bytes += 3;
  }
  return bytes;
}

function isHighSurrogate(unit) {
  return unit >= 0xd800 && unit <= 0xdbff;
}

function isLowSurrogate(unit) {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/**
 * Build the socket URL for this page's origin.
 * @param {Location|URL} location the page location (ws: for http:, wss: for https:)
 * @param {{scenario?: string, mode?: string, resume?: string|null, token?: string|null}} params
 */
export function realtimeUrl(location, params) {
  const url = new URL("/ws/realtime", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  return url.toString();
}

export class RealtimeSocket extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.sentBytes = 0;
    this.receivedBytes = 0;
    this.sentAudioBytes = 0;
    this.receivedAudioBytes = 0;
    this.droppedFrames = 0;
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Open the socket; resolves once connected. Rejects (with the close `code`) if it never
   * opens, in which case no "close" event follows; after opening, the end is a "close" event.
   */
  connect(url) {
    this.close();
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    return new Promise((resolve, reject) => {
      let opened = false;
      ws.addEventListener("open", () => {
        opened = true;
        resolve();
      });
      ws.addEventListener("message", (event) => {
        if (this.ws === ws) this._onMessage(event.data);
      });
      ws.addEventListener("close", (event) => {
        // Not current: closed by us or replaced by a newer connection, so nobody is waiting for news.
        const superseded = this.ws !== ws;
        if (!superseded) this.ws = null;
        const info = { code: event.code, reason: event.reason, clean: event.wasClean, superseded };
        if (!opened) reject(Object.assign(new Error(`socket closed before opening (${event.code})`), info));
        else if (!superseded) this._emit("close", info);
      });
    });
  }

  _onMessage(data) {
    if (data instanceof ArrayBuffer) {
      this.receivedBytes += data.byteLength;
      this.receivedAudioBytes += data.byteLength;
      this._emit("audio", data);
      return;
    }
    this.receivedBytes += utf8Length(data);
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return; // not ours to interpret; the protocol only sends JSON text frames
    }
    if (message && typeof message.type === "string") this._emit(message.type, message);
  }

  /** Send one microphone frame (PCM16 bytes). Returns false if it was not sent. */
  sendAudio(buffer) {
    if (!this.isOpen) return false;
    if (this.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.droppedFrames += 1;
      return false;
    }
    this.ws.send(buffer);
    this.sentBytes += buffer.byteLength;
    this.sentAudioBytes += buffer.byteLength;
    return true;
  }

  /** Send one JSON event, e.g. {type: "text", text}. Returns false if the socket is not open. */
  sendJson(message) {
    if (!this.isOpen) return false;
    const text = JSON.stringify(message);
    this.ws.send(text);
    this.sentBytes += utf8Length(text);
    return true;
  }

  /** Close without telling anyone (no "close" event): used when we are done with it. */
  close(code = 1000) {
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(code);
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
