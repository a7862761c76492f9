// The staff WebSocket: one per tab, opened by the first view that needs it and kept for the
// life of the page (leaving #/chats for #/me does not drop chats).
//
// It reconnects by itself (growing, randomised delays), and after every reconnect restores
// each open chat with `sync` from the last sequence number seen, re-observes what a
// supervisor observed, and sends again every message whose acknowledgement never came (same
// client_id: the server stores it once). Views listen with on(type, fn); "*" gets every frame.
// The server decides everything that matters (who gets a chat, whether an accept wins);
// this file only moves frames and remembers what is needed to resume. See docs/protocol.md.

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;
const PING_MS = 25000;
// No frame at all for this long (not even a pong) means a dead connection the browser has
// not noticed yet (a laptop waking up, a network change): drop it and reconnect.
const SILENCE_MS = 2 * PING_MS + 10000;

let socket = null;

export function staffSocket(ctx) {
  if (!socket) socket = new StaffSocket(ctx);
  socket.start();
  return socket;
}

class StaffSocket {
  constructor(ctx) {
    this.ctx = ctx;
    this.ws = null;
    this.state = "idle"; // idle | connecting | open | reconnecting | stopped
    this.hello = null;
    this.listeners = new Map();
    this.lastSeq = new Map(); // chat id -> highest seq seen
    this.pending = new Map(); // client_id -> message frame not yet acknowledged
    this.observing = new Set(); // chats a supervisor follows
    // Chats this tab asked for (accept, takeover): when one opens, it is shown at once.
    this.claimed = new Set();
    // What a view mounted later needs to catch up: the counsellor's lines and status, open
    // chats, pending offers and owed wrap-ups (ids and summaries only, never content).
    this.snapshot = { lines: [], status: "away", chats: new Map(), offers: new Map(), wrapups: new Map(), help: new Map() };
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.started = false;
    this.lastHeard = 0;
  }

  start() {
    if (this.started) return;
    this.started = true;
    this.connect();
    this.ctx.on("signout", () => this.stop());
    window.addEventListener("online", () => {
      if (this.state === "reconnecting") this.retryNow();
    });
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type)?.delete(fn);
  }

  emit(type, frame) {
    for (const key of [type, "*"]) {
      for (const fn of [...(this.listeners.get(key) ?? [])]) {
        try {
          fn(frame);
        } catch (error) {
          console.error(error);
        }
      }
    }
  }

  setState(state) {
    this.state = state;
    this.emit("connection", { type: "connection", state });
  }

  connect() {
    if (this.state === "stopped") return;
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/staff`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", (event) => this.closed(ws, event.code));
  }

  receive(data) {
    this.lastHeard = Date.now();
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!frame || typeof frame.type !== "string") return;
    if (frame.type === "hello") {
      this.opened(frame);
      return;
    }
    if (typeof frame.seq === "number" && typeof frame.chat_id === "string" && frame.type !== "message.ack" && frame.type !== "whisper.ack") {
      const last = this.lastSeq.get(frame.chat_id) ?? 0;
      if (frame.seq > last) this.lastSeq.set(frame.chat_id, frame.seq);
    }
    if (frame.type === "message.ack" && frame.client_id) {
      this.pending.delete(frame.client_id);
      const last = this.lastSeq.get(frame.chat_id) ?? 0;
      if (frame.seq > last) this.lastSeq.set(frame.chat_id, frame.seq);
    }
    if (frame.type === "chat.released" || frame.type === "chat.unobserved") {
      this.observing.delete(frame.chat_id);
      this.forgetPending(frame.chat_id);
    }
    if (frame.type === "chat.opened") this.observing.delete(frame.chat_id);
    this.remember(frame);
    this.emit(frame.type, frame);
  }

  remember(frame) {
    const snap = this.snapshot;
    switch (frame.type) {
      case "hello":
        snap.lines = frame.lines ?? [];
        snap.status = frame.status;
        snap.chats = new Map((frame.chats ?? []).map((c) => [c.chat_id, c]));
        snap.offers = new Map((frame.offers ?? []).map((o) => [o.chat_id, o]));
        // Wrap-ups still owed, as `wrapup.required` frames (also after a reload).
        snap.wrapups = new Map((frame.wrapups ?? []).map((w) => [w.chat_id, { ...w, type: "wrapup.required" }]));
        break;
      case "duty":
      case "profile":
        snap.lines = frame.lines ?? snap.lines;
        break;
      case "status":
        snap.status = frame.status;
        break;
      case "offer":
        snap.offers.set(frame.chat_id, frame);
        break;
      case "offer.withdrawn":
        snap.offers.delete(frame.chat_id);
        break;
      case "chat.opened":
        snap.offers.delete(frame.chat_id);
        snap.chats.set(frame.chat_id, frame);
        break;
      case "chat.released":
        snap.chats.delete(frame.chat_id);
        break;
      case "visitor.away":
      case "visitor.back": {
        const chat = snap.chats.get(frame.chat_id);
        if (chat) {
          snap.chats.set(frame.chat_id, {
            ...chat,
            visitor_connected: frame.type === "visitor.back",
            visitor_grace_until: frame.type === "visitor.away" ? frame.grace_until : null,
          });
        }
        break;
      }
      case "wrapup.required":
        snap.wrapups.set(frame.chat_id, frame);
        break;
      case "help.requested":
        snap.help.set(frame.chat_id, frame);
        break;
      case "wrapup.saved":
        snap.chats.delete(frame.chat_id);
        snap.wrapups.delete(frame.chat_id);
        break;
      default:
    }
  }

  opened(hello) {
    const again = this.hello !== null;
    this.hello = hello;
    this.remember(hello);
    this.attempt = 0;
    this.setState("open");
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > SILENCE_MS && this.ws) {
        const dead = this.ws;
        dead.close(4000);
        this.closed(dead, 1006);
        return;
      }
      this.send({ type: "ping" });
    }, PING_MS);
    this.emit("hello", hello);
    // Restore: every open chat from the last entry seen (all of it for a chat new to this tab).
    for (const chat of hello.chats ?? []) {
      this.send({ type: "sync", chat_id: chat.chat_id, last_seq: this.lastSeq.get(chat.chat_id) ?? 0 });
    }
    for (const chatId of this.observing) this.send({ type: "observe", chat_id: chatId });
    const open = new Set((hello.chats ?? []).map((c) => c.chat_id));
    for (const [clientId, frame] of [...this.pending]) {
      if (open.has(frame.chat_id)) this.send(frame);
      else this.pending.delete(clientId);
    }
    if (again) this.emit("restored", hello);
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearInterval(this.pingTimer);
    if (this.state === "stopped") return;
    if (code === 4003) {
      // Not allowed (a coordinator's account, or a foreign origin): retrying cannot help.
      this.setState("stopped");
      return;
    }
    if (code === 4001) {
      // Signed out or the session expired: sign in again over the screen; chats stay
      // assigned through the grace period, and the reconnect restores them.
      this.setState("reconnecting");
      this.ctx.reauth().then(() => this.retryNow());
      return;
    }
    this.scheduleRetry();
  }

  scheduleRetry() {
    this.setState("reconnecting");
    this.attempt += 1;
    const ceiling = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (this.attempt - 1));
    // Random within [ceiling/2, ceiling]: many consoles of a restarted process spread out.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  retryNow() {
    clearTimeout(this.retryTimer);
    if (this.ws) return;
    this.attempt = Math.max(this.attempt, 1);
    this.connect();
  }

  stop() {
    this.setState("stopped");
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    this.ws?.close(1000);
    this.ws = null;
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.state === "open";
  }

  send(frame) {
    if (!this.isOpen) return false;
    if (frame.type === "accept" || frame.type === "takeover") this.claimed.add(frame.chat_id);
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // A chat message: kept until acknowledged and sent again after a reconnect.
  sendMessage(chatId, text) {
    const clientId = randomId();
    const frame = { type: "message", chat_id: chatId, text, client_id: clientId };
    this.pending.set(clientId, frame);
    this.send(frame);
    return clientId;
  }

  observe(chatId) {
    this.observing.add(chatId);
    return this.send({ type: "observe", chat_id: chatId });
  }

  unobserve(chatId) {
    this.observing.delete(chatId);
    return this.send({ type: "unobserve", chat_id: chatId });
  }

  forgetPending(chatId) {
    for (const [clientId, frame] of [...this.pending]) {
      if (frame.chat_id === chatId) this.pending.delete(clientId);
    }
  }
}

function randomId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
