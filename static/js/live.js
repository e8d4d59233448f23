/**
 * Browser clients for Switchboard's live run streams (apps/executions/consumers.py).
 *
 *   import { RunSocket, MultiplexSocket } from "/static/js/live.js";
 *
 * Both authenticate with the page's session cookie, so the page must be on the same origin.
 * Both reconnect by themselves after an unexpected close, with exponential back-off and jitter,
 * and resume from the last event they delivered; events are delivered once each, in seq order.
 */

const TERMINAL_STATUSES = new Set(["succeeded", "failed", "cancelled", "timed_out"]);
// No session, a bad session, not yours (or missing), a bad request: reconnecting cannot help.
const REFUSALS = new Set([4001, 4003, 4004, 4400]);
const noop = () => {};

/** True for the event that ends a run: its final `execution.status`. */
export function isTerminal(event) {
  return event.event_type === "execution.status" && TERMINAL_STATUSES.has(event.payload?.status);
}

/** The ws(s):// URL of `path` on the origin of `baseUrl` (a URL, a string or `location`). */
export function socketUrl(path, baseUrl = location) {
  const url = new URL(path, String(baseUrl));
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

/**
 * What both sockets share: open, reconnect after an unexpected close, stop for good.
 * Subclasses provide `_url()`, `_received(message)`, `_isFinal(code)` and may hook `_opened()`.
 */
class ReconnectingSocket {
  constructor({ onStatus = noop, onClose = noop, baseUrl = location, firstDelayMs = 500, maxDelayMs = 15000 } = {}) {
    Object.assign(this, { onStatus, onClose, baseUrl, firstDelayMs, maxDelayMs });
    /** The WebSocket of the current attempt (null between attempts). */
    this.socket = null;
    this.status = "idle";
    this._attempt = 0;
    this._retryTimer = null;
    this._stopped = true;
  }

  /** Connect; a no-op while already started. Returns the socket for chaining. */
  start() {
    if (!this._stopped) return this;
    this._stopped = false;
    this._setStatus("connecting");
    this._connect();
    return this;
  }

  /** Close for good: no reconnection, no further callbacks but onStatus("closed"). */
  stop() {
    if (this._stopped) return;
    this._stopped = true;
    clearTimeout(this._retryTimer);
    this._abandon();
    this._setStatus("closed");
  }

  _connect() {
    const socket = new WebSocket(this._url());
    this.socket = socket;
    socket.onopen = () => {
      this._setStatus("open");
      this._opened();
    };
    socket.onmessage = (message) => {
      this._attempt = 0; // only a socket that delivered something resets the back-off
      this._received(JSON.parse(message.data));
    };
    socket.onclose = ({ code, reason }) => {
      this._abandon();
      if (this._stopped) return;
      if (this._isFinal(code)) {
        this._stopped = true;
        this._setStatus("closed");
        this.onClose({ code, reason });
      } else {
        this._retry();
      }
    };
  }

  /** Forget the current WebSocket; closing one that is still open sends it `code`. */
  _abandon(code = 1000) {
    const socket = this.socket;
    this.socket = null;
    this._closed();
    if (socket === null) return;
    socket.onopen = socket.onmessage = socket.onclose = null;
    if (socket.readyState <= WebSocket.OPEN) socket.close(code);
  }

  /** Drop the current socket as dead and try again after the back-off. */
  _reconnect(code = 4000) {
    this._abandon(code);
    this._retry();
  }

  _retry() {
    // The delay doubles per failed attempt up to the maximum; a random half of it spreads out
    // the tabs a server restart disconnected all at once.
    const ceiling = Math.min(this.maxDelayMs, this.firstDelayMs * 2 ** this._attempt++);
    this._setStatus("reconnecting");
    this._retryTimer = setTimeout(() => this._connect(), ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  _setStatus(status) {
    this.status = status;
    this.onStatus(status);
  }

  _opened() {}

  _closed() {}
}

/**
 * One run's events from `/ws/executions/<id>/`: the stored ones, then live ones, until the
 * terminal status. Callbacks: onEvent(event) once per seq in order, onDelta({node_id, text})
 * for streaming LLM text (live only, not replayed), onStatus("connecting" | "open" |
 * "reconnecting" | "closed"), onClose({code, reason}) once when the server ends the stream
 * (1000 after the terminal event, or a refusal: 4001, 4003, 4004, 4400).
 */
export class RunSocket extends ReconnectingSocket {
  constructor(executionId, { onEvent = noop, onDelta = noop, afterSeq = 0, ...options } = {}) {
    super(options);
    this.executionId = String(executionId);
    this.onEvent = onEvent;
    this.onDelta = onDelta;
    /** The seq of the last event delivered; a reconnection resumes after it. */
    this.lastSeq = afterSeq;
    /** True once the terminal event was delivered. */
    this.finished = false;
  }

  /** Connect, unless the run's end was already delivered. */
  start() {
    return this.finished ? this : super.start();
  }

  _url() {
    return socketUrl(`/ws/executions/${encodeURIComponent(this.executionId)}/?after_seq=${this.lastSeq}`, this.baseUrl);
  }

  _received(message) {
    if (this.finished) return;
    if (message.type === "delta") {
      this.onDelta({ node_id: message.node_id, text: message.text });
    } else if (message.type === "event" && message.seq > this.lastSeq) {
      this.lastSeq = message.seq;
      this.finished = isTerminal(message);
      this.onEvent(message);
    }
  }

  _isFinal(code) {
    return this.finished || REFUSALS.has(code);
  }
}

const RUN_CHANNEL = /\|graph_exec#([^|]+)$/;
const WORKFLOW_CHANNEL = /\|graph#([^|]+)\|executions$/;

/**
 * Many subscriptions on one `/ws/` socket (the AutoGPT envelope `{method, data, success,
 * channel, error}`). Callbacks: onEvent(event, envelope) once per run and seq, with the
 * event's graph_exec_id and graph_id and the envelope's channel; onError(error, envelope);
 * onMessage(envelope) for every message (subscription replies, heartbeats, events, errors);
 * onStatus and onClose as for RunSocket. Sends a heartbeat every `heartbeatMs` and reconnects
 * when one goes unanswered; every reconnection re-subscribes, runs from their last seen seq.
 * A workflow subscription has no cursor: what its runs sent while disconnected is not replayed.
 */
export class MultiplexSocket extends ReconnectingSocket {
  constructor({ onEvent = noop, onError = noop, onMessage = noop, heartbeatMs = 25000, ...options } = {}) {
    super(options);
    Object.assign(this, { onEvent, onError, onMessage, heartbeatMs });
    this._runs = new Set(); // runs subscribed one by one
    this._workflows = new Set();
    this._lastSeqs = new Map(); // run id -> last seq delivered, for every run seen
    this._heartbeat = null;
    this._answered = true;
  }

  /** Follow one run: the stored events after `afterSeq`, then live ones. */
  subscribeRun(executionId, { afterSeq = 0 } = {}) {
    const id = String(executionId);
    this._runs.add(id);
    this._lastSeqs.set(id, Math.max(afterSeq, this.lastSeq(id)));
    this._sendRunSubscription(id);
  }

  /** Follow the live events of every run of a workflow, runs started later included. */
  subscribeWorkflow(workflowId) {
    this._workflows.add(String(workflowId));
    this._send("subscribe_graph_executions", { graph_id: String(workflowId) });
  }

  /** Stop following a channel, as named in the server's subscription reply. */
  unsubscribe(channel) {
    const run = RUN_CHANNEL.exec(channel);
    const workflow = WORKFLOW_CHANNEL.exec(channel);
    if (run) this._runs.delete(run[1]);
    if (workflow) this._workflows.delete(workflow[1]);
    this._send("unsubscribe", { channel });
  }

  /** The seq of the last event delivered for a run (0 when none). */
  lastSeq(executionId) {
    return this._lastSeqs.get(String(executionId)) ?? 0;
  }

  _url() {
    return socketUrl("/ws/", this.baseUrl);
  }

  _sendRunSubscription(id) {
    this._send("subscribe_graph_execution", { graph_exec_id: id, after_seq: this.lastSeq(id) });
  }

  _send(method, data) {
    // Not open: nothing is lost, since every subscription is sent again when the socket opens.
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ method, data }));
  }

  _opened() {
    for (const id of this._runs) this._sendRunSubscription(id);
    for (const id of this._workflows) this._send("subscribe_graph_executions", { graph_id: id });
    this._answered = true;
    this._heartbeat = setInterval(() => {
      if (!this._answered) return this._reconnect(); // silent for a whole interval: the connection is dead
      this._answered = false;
      this._send("heartbeat", null);
    }, this.heartbeatMs);
  }

  _closed() {
    clearInterval(this._heartbeat);
  }

  _received(envelope) {
    this._answered = true;
    this.onMessage(envelope);
    if (envelope.method === "error") {
      this.onError(envelope.error, envelope);
    } else if (envelope.method === "graph_execution_event" || envelope.method === "node_execution_event") {
      const event = envelope.data;
      const id = String(event.graph_exec_id);
      if (event.seq <= this.lastSeq(id)) return;
      this._lastSeqs.set(id, event.seq);
      this.onEvent(event, envelope);
    }
  }

  _isFinal(code) {
    return REFUSALS.has(code);
  }
}
