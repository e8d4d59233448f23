/**
 * The run page (templates/executions/run_detail.html): the server drew the run and its timeline
 * as of two event numbers, `data-after-seq` (the run's row) and `data-nodes-seq` (the timeline's
 * rows); this module follows the run over RunSocket (static/js/live.js) from the first of them.
 * Each event is applied once, by seq: node events the timeline already shows are passed over,
 * `execution.delta` text is appended to its node as it streams, and the socket's state is shown.
 */

const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out"]);
const CANCELLABLE = new Set(["pending", "queued", "running"]);
const RETRYABLE = new Set(["failed", "cancelled", "timed_out"]);
const LLM_NODE_TYPES = new Set(["llm", "agent"]);
const MICRO = 1000000n;

const root = document.getElementById("run");
const strings = JSON.parse(document.getElementById("run-strings").textContent);
const timeline = document.getElementById("timeline-list");
const previewChars = Number(root.dataset.previewChars);

/** "%(name)s", "%(name)d" and "%(name).1f" placeholders of a translated string, filled in. */
function format(template, values) {
  return template.replace(/%\((\w+)\)(\.1f|d|s)/g, (_, name, kind) => {
    const value = values[name];
    return kind === ".1f" ? Number(value).toFixed(1) : kind === "d" ? String(Math.trunc(value)) : String(value);
  });
}

/** As the `duration` template filter: 850 -> "850 ms", 12400 -> "12.4 s", 185000 -> "3 min 5 s". */
export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  const units = strings.duration;
  if (ms < 1000) return format(units.ms, { ms });
  if (ms < 60000) return format(units.s, { s: ms / 1000 });
  const minutes = Math.floor(ms / 60000);
  if (minutes < 60) return format(units.min, { min: minutes, s: Math.floor(ms / 1000) % 60 });
  return format(units.h, { h: Math.floor(minutes / 60), min: minutes % 60 });
}

/** Credits as the API writes them ("0.0012") in micro-credits, as a BigInt. */
export function microOf(text) {
  const value = String(text ?? "0");
  const negative = value.startsWith("-");
  const [whole, fraction = ""] = value.replace("-", "").split(".");
  const micro = BigInt(whole || "0") * MICRO + BigInt((fraction + "000000").slice(0, 6));
  return negative ? -micro : micro;
}

/** As the `credits` template filter: 1500000n -> "1.5". */
export function creditsOf(micro) {
  const sign = micro < 0n ? "-" : "";
  const absolute = micro < 0n ? -micro : micro;
  const fraction = String(absolute % MICRO).padStart(6, "0").replace(/0+$/, "");
  return `${sign}${absolute / MICRO}${fraction ? "." + fraction : ""}`;
}

function badge(status) {
  const element = document.createElement("span");
  element.className = `badge is-${status}`;
  element.textContent = strings.statuses[status] ?? status;
  return element;
}

function time(iso, long = false) {
  const element = document.createElement("time");
  element.dateTime = iso;
  const moment = new Date(iso);
  element.textContent = long ? moment.toLocaleString() : moment.toLocaleTimeString([], { hour12: false });
  return element;
}

/** A JSON value as the server draws it (templates/executions/_json.html). */
function jsonView(value) {
  const text = JSON.stringify(value, null, 2) ?? "null";
  const fragment = document.createDocumentFragment();
  const preview = document.createElement("pre");
  preview.className = "json";
  const long = text.length > previewChars;
  preview.textContent = long ? text.slice(0, previewChars) + "…" : text;
  fragment.append(preview);
  if (long) {
    const all = document.createElement("details");
    all.className = "json-all";
    const summary = document.createElement("summary");
    summary.textContent = format(strings.show_all, { count: text.length });
    const full = document.createElement("pre");
    full.className = "json";
    full.textContent = text;
    all.append(summary, full);
    fragment.append(all);
  }
  return fragment;
}

function showJson(section, value) {
  section.querySelector(".json-value").replaceChildren(jsonView(value));
  section.hidden = false;
  // Events carry large values shortened: the attempt's row has them whole.
  const shortened = typeof value === "string" && value.endsWith(SHORTENED);
  section.dataset.shortened = String(shortened);
  if (shortened) wholeValuesSoon();
}

// The marker apps/executions/events.py ends a shortened value with.
const SHORTENED = "…[truncated]";
let wholeValuesTimer = null;

function wholeValuesSoon() {
  window.clearTimeout(wholeValuesTimer);
  wholeValuesTimer = window.setTimeout(wholeValues, 200);
}

/** Replace shortened inputs and outputs on the timeline by the attempts' whole values (the nodes API). */
async function wholeValues() {
  const url = `/api/v1/executions/${encodeURIComponent(root.dataset.executionId)}/nodes/`;
  let attempts = null;
  try {
    const answer = await fetch(url, { credentials: "same-origin" });
    attempts = answer.ok ? await answer.json() : null;
  } catch {
    attempts = null;
  }
  for (const attempt of attempts ?? []) {
    const item = [...timeline.children].find(
      (each) => each.dataset.nodeId === attempt.node_id && each.dataset.attempt === String(attempt.attempt),
    );
    if (!item) continue;
    for (const [name, value] of [["inputs", attempt.inputs], ["outputs", attempt.outputs]]) {
      const section = item.querySelector(`.node-${name}`);
      if (section.dataset.shortened === "true" && value !== null && value !== undefined) {
        section.querySelector(".json-value").replaceChildren(jsonView(value));
        section.dataset.shortened = "false";
      }
    }
  }
}

// --- the timeline ---------------------------------------------------------------------------

/** The node's latest attempt on the timeline (a node never runs twice at once). */
function latestAttempt(nodeId) {
  const items = [...timeline.children].filter((item) => item.dataset.nodeId === nodeId);
  return items.at(-1) ?? null;
}

function setNodeStatus(item, status) {
  item.dataset.status = status;
  item.className = `node is-${status}`;
  item.querySelector(".node-badge").replaceChildren(badge(status));
}

function addAttempt(event, status) {
  const item = document.getElementById("node-template").content.firstElementChild.cloneNode(true);
  const { node_type: nodeType, attempt = 1, inputs } = event.payload;
  Object.assign(item.dataset, { nodeId: event.node_id, attempt: String(attempt), cost: "0" });
  item.querySelector(".node-id").textContent = event.node_id;
  item.querySelector(".node-type").textContent = nodeType ?? "";
  const attemptLabel = item.querySelector(".node-attempt");
  attemptLabel.textContent = format(strings.attempt, { number: attempt });
  attemptLabel.hidden = attempt < 2;
  item.querySelector(".node-started").replaceChildren(time(event.created_at));
  if (inputs !== undefined) showJson(item.querySelector(".node-inputs"), inputs);
  setNodeStatus(item, status);
  timeline.append(item);
  document.getElementById("timeline-empty").hidden = true;
  return item;
}

function finishAttempt(item, event) {
  const { payload } = event;
  const status = event.event_type === "node.completed" ? "succeeded" : payload.status ?? "failed";
  setNodeStatus(item, status);
  item.querySelector(".node-finished").replaceChildren(time(event.created_at));
  item.querySelector(".node-duration").textContent = duration(payload.duration_ms);
  const cost = microOf(payload.cost);
  item.dataset.cost = String(cost);
  item.querySelector(".node-cost").textContent = creditsOf(cost);
  if (payload.error) {
    const error = item.querySelector(".node-error");
    error.querySelector(".node-error-code").textContent = payload.error.code ?? "";
    error.querySelector(".node-error-message").textContent = payload.error.message ?? "";
    error.hidden = false;
  }
  const outputs = payload.outputs;
  if (outputs !== undefined && outputs !== null) {
    showJson(item.querySelector(".node-outputs"), outputs);
    if (LLM_NODE_TYPES.has(payload.node_type) && typeof outputs.text === "string") setLlmText(item, outputs.text);
    const shots = Array.isArray(outputs.screenshots) ? outputs.screenshots : [];
    const gallery = item.querySelector(".node-shots");
    for (const shot of shots.filter((shot) => shot?.url)) {
      const link = document.createElement("a");
      link.href = shot.url;
      const image = document.createElement("img");
      image.src = shot.url;
      image.alt = shot.name ?? "";
      image.loading = "lazy";
      link.append(image);
      gallery.append(link);
      gallery.hidden = false;
    }
  }
}

function setLlmText(item, text, append = false) {
  const paragraph = item.querySelector(".llm-text");
  paragraph.textContent = append ? paragraph.textContent + text : text;
  item.querySelector(".node-llm").hidden = !paragraph.textContent;
}

// --- the run --------------------------------------------------------------------------------

let cost = BigInt(root.dataset.cost || "0");
let started = root.dataset.started || null;

function setRunStatus(status, event) {
  root.dataset.status = status;
  document.getElementById("run-status").replaceChildren(badge(status));
  if (status === "running" && !started) {
    started = event.created_at;
    document.getElementById("run-started").replaceChildren(time(started, true));
  }
  if (TERMINAL.has(status)) {
    document.getElementById("run-finished").replaceChildren(time(event.created_at, true));
    document.getElementById("run-cost-label").textContent = strings.cost;
    if (started) {
      document.getElementById("run-duration").textContent = duration(new Date(event.created_at) - new Date(started));
    }
  }
  const error = event.payload.error;
  if (error) {
    document.getElementById("run-error-code").textContent = error.code ?? "";
    document.getElementById("run-error-message").textContent = error.message ?? "";
    document.getElementById("run-error").hidden = false;
  }
  document.querySelector('[data-action="cancel"]').hidden = !CANCELLABLE.has(status);
  document.querySelector('[data-action="retry"]').hidden = !RETRYABLE.has(status);
}

function setLiveState(state) {
  const element = document.getElementById("live-state");
  element.dataset.state = state;
  element.textContent = strings.live[state];
}

const nodesSeq = Number(root.dataset.nodesSeq);
let lastSeq = Number(root.dataset.afterSeq);

function applyEvent(event) {
  if (event.seq <= lastSeq) return; // never twice, whichever connection delivered it
  lastSeq = event.seq;
  root.dataset.lastSeq = String(event.seq);
  if (event.event_type === "execution.status") return setRunStatus(event.payload.status, event);
  if (event.event_type === "node.completed") {
    cost += microOf(event.payload.cost);
    document.getElementById("run-cost").textContent = creditsOf(cost);
  }
  if (event.seq <= nodesSeq) return; // the timeline was drawn after this event
  if (event.event_type === "node.started") {
    addAttempt(event, "running");
  } else if (event.event_type === "node.skipped") {
    const item = addAttempt(event, "skipped");
    item.querySelector(".node-duration").textContent = duration(0);
  } else if (event.event_type === "node.completed" || event.event_type === "node.failed") {
    const item = latestAttempt(event.node_id);
    finishAttempt(item?.dataset.status === "running" ? item : addAttempt(event, "running"), event);
  }
}

function applyDelta({ node_id: nodeId, text }) {
  const item = latestAttempt(nodeId);
  if (item?.dataset.status === "running") setLlmText(item, text, true);
}

/**
 * A stopped run's final status comes first: a node still running then records its own end a
 * moment later, when its worker notices. After the socket's last event, read the events that
 * followed it from the API until no node shows as running (a few tries, further apart each time).
 */
async function settle() {
  const url = `/api/v1/executions/${encodeURIComponent(root.dataset.executionId)}/events/`;
  for (const wait of [250, 500, 1000, 2000, 4000, 8000]) {
    if (!timeline.querySelector('[data-status="running"]')) return;
    await new Promise((resolve) => setTimeout(resolve, wait));
    let page = null;
    try {
      const answer = await fetch(`${url}?after_seq=${lastSeq}&limit=500`, { credentials: "same-origin" });
      page = answer.ok ? await answer.json() : null;
    } catch {
      page = null;
    }
    if (!page) return;
    page.events.forEach(applyEvent);
  }
}

async function follow() {
  root.dataset.lastSeq = root.dataset.afterSeq;
  if (TERMINAL.has(root.dataset.status)) {
    setLiveState("finished");
    return settle();
  }
  const { RunSocket } = await import(root.dataset.liveModule);
  const socket = new RunSocket(root.dataset.executionId, {
    afterSeq: lastSeq,
    onEvent: applyEvent,
    onDelta: applyDelta,
    onStatus: (status) => {
      if (status === "open") setLiveState("live");
      else if (status === "closed" && socket.finished) {
        setLiveState("finished");
        settle();
      } else if (status === "closed") setLiveState("closed");
      else setLiveState(status);
    },
  });
  window.runSocket = socket; // for the browser tests and for curious users' consoles
  socket.start();
}

/**
 * Cancel without leaving the page: the API's cancel, then the socket brings the new status. When
 * the API refuses (the run ended meanwhile), the form is sent as it is, and its page says why.
 */
function cancelInPlace() {
  const form = document.querySelector('[data-action="cancel"]');
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    const token = form.querySelector("[name=csrfmiddlewaretoken]").value;
    const url = `/api/v1/executions/${encodeURIComponent(root.dataset.executionId)}/cancel/`;
    let response = null;
    try {
      response = await fetch(url, { method: "POST", headers: { "X-CSRFToken": token }, credentials: "same-origin" });
    } catch {
      response = null;
    }
    button.disabled = false;
    if (!response?.ok) form.submit();
  });
}

cancelInPlace();
follow();
