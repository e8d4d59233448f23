/*
 * The visual workflow builder (templates/workflows/workflow_builder.html).
 *
 * The server embeds the draft graph, each node's pins, the API's URLs and the translated strings
 * as JSON (#builder-data), so the first paint needs no fetch for the graph. The palette comes from
 * GET node-types/; "Save draft" PATCHes the graph, "Publish" POSTs publish/, and the versions come
 * from versions/. The graph format is apps/workflows/graph.py's:
 *   {nodes: [{id, type, config, position: {x, y}}], edges: [{source, source_output, target, target_input}]}
 * Validation errors come back as `fields` like `graph.nodes.<id>.config.<key>` and are shown on
 * the node (and the settings field) they name.
 *
 * Mouse: pointer events (drag from the palette, drag a node by its header, drag from an output
 * port to an input port). Keyboard: every control is a button; a port is chosen by pressing it.
 */

const data = JSON.parse(document.getElementById("builder-data").textContent);
const S = data.strings;
const COMMON = new Set(data.common_keys);
const NODE_WIDTH = 200;
const DRAG_THRESHOLD = 4;
const LONG_TEXT = /prompt|template|expression|body|description/;

const el = {
  canvas: document.getElementById("builder-canvas"),
  surface: document.getElementById("builder-surface"),
  edges: document.getElementById("builder-edges"),
  empty: document.getElementById("builder-empty"),
  palette: document.getElementById("palette-body"),
  settings: document.getElementById("settings-body"),
  problems: document.getElementById("problems-body"),
  versions: document.getElementById("versions-body"),
  status: document.getElementById("builder-status"),
  save: document.getElementById("builder-save"),
  publish: document.getElementById("builder-publish"),
  announce: document.getElementById("builder-announce"),
  discard: document.getElementById("builder-discard"),
};

const state = {
  graph: normalise(data.graph),
  pins: data.pins || {},
  types: {},
  selected: null,
  pending: null, // an output chosen by pressing it: {node, pin}
  dirty: false,
  busy: false,
  problems: { graph: [], nodes: {} },
  jsonErrors: {}, // "node:key" -> message, for JSON fields that do not parse
};

// --- helpers -------------------------------------------------------------------------------

function format(text, values = {}) {
  return text.replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
}

function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

function normalise(graph) {
  const nodes = Array.isArray(graph?.nodes) ? graph.nodes : [];
  const edges = Array.isArray(graph?.edges) ? graph.edges : [];
  nodes.forEach((node, index) => {
    node.config = node.config && typeof node.config === "object" ? node.config : {};
    const position = node.position || {};
    node.position = {
      x: Number.isFinite(position.x) ? position.x : 40 + (index % 4) * 240,
      y: Number.isFinite(position.y) ? position.y : 40 + Math.floor(index / 4) * 180,
    };
  });
  return { nodes, edges };
}

function csrfToken() {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  } catch {
    return "";
  }
}

async function request(method, url, body) {
  const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  if (method !== "GET") options.headers["X-CSRFToken"] = csrfToken();
  try {
    const response = await fetch(url, options);
    const text = await response.text();
    let payload = null;
    try {
      payload = text ? JSON.parse(text) : null;
    } catch {
      payload = null;
    }
    return { ok: response.ok, status: response.status, data: payload };
  } catch (error) {
    return { ok: false, status: 0, data: { error: { message: String(error) } } };
  }
}

function announce(text) {
  el.announce.textContent = "";
  window.setTimeout(() => { el.announce.textContent = text; }, 30);
}

function nodeById(id) {
  return state.graph.nodes.find((node) => node.id === id);
}

function nodeName(node) {
  return (typeof node.config.label === "string" && node.config.label.trim()) || node.id;
}

// --- dirty state ---------------------------------------------------------------------------

function setStatus(text, kind) {
  el.status.textContent = text;
  el.status.dataset.kind = kind || "";
}

function markDirty() {
  state.dirty = true;
  el.status.dataset.dirty = "true";
  setStatus(S.unsaved, "dirty");
  updateButtons();
  keepBackup();
}

function markSaved() {
  state.dirty = false;
  el.status.dataset.dirty = "false";
  setStatus(S.saved, "saved");
  updateButtons();
  dropBackup();
  el.discard.hidden = true;
}

// --- unsaved work kept in this browser -------------------------------------------------------
// A draft the API refuses cannot be saved yet, and a tab can close: until it saves, the work is
// kept in localStorage with the saved draft it started from, and comes back on the next visit
// unless that draft has changed since (saved from another tab or through the API).

const BACKUP_KEY = `switchboard:builder:${data.urls.workflow}`;
let savedDraft = canonical(data.graph);

/** JSON with object keys sorted: the same graph whatever order the database gave its keys. */
function canonical(value) {
  const sorted = (item) => {
    if (Array.isArray(item)) return item.map(sorted);
    if (item && typeof item === "object") {
      return Object.fromEntries(Object.keys(item).sort().map((key) => [key, sorted(item[key])]));
    }
    return item;
  };
  return JSON.stringify(sorted(value));
}

function keepBackup() {
  try {
    localStorage.setItem(BACKUP_KEY, JSON.stringify({ base: savedDraft, graph: graphToSend() }));
  } catch {
    // Storage full or disabled: the beforeunload warning still guards the work.
  }
}

function dropBackup() {
  try {
    localStorage.removeItem(BACKUP_KEY);
  } catch {
    // Nothing kept.
  }
}

function restoreBackup() {
  let backup = null;
  try {
    backup = JSON.parse(localStorage.getItem(BACKUP_KEY) || "null");
  } catch {
    backup = null;
  }
  if (!backup?.graph || backup.base !== savedDraft) {
    dropBackup();
    return false;
  }
  state.graph = normalise(backup.graph);
  return true;
}

function updateButtons() {
  el.save.disabled = state.busy || !state.dirty;
  el.publish.disabled = state.busy;
}

window.addEventListener("beforeunload", (event) => {
  if (state.dirty) {
    event.preventDefault();
    event.returnValue = S.leave;
  }
});

// --- pins ----------------------------------------------------------------------------------

function staticPins(type) {
  const described = state.types[type];
  const list = (schema) => Object.keys(schema?.properties || {}).map((name) => ({
    name, required: (schema.required || []).includes(name),
  }));
  return described ? { inputs: list(described.inputs_schema), outputs: list(described.outputs_schema) } : { inputs: [], outputs: [] };
}

function pinsOf(node) {
  const pins = state.pins[node.id] || staticPins(node.type);
  // An edge to a pin the config no longer has stays visible, so the problem can be seen and removed.
  const inputs = [...pins.inputs];
  const outputs = [...pins.outputs];
  for (const edge of state.graph.edges) {
    if (edge.target === node.id && !inputs.some((pin) => pin.name === edge.target_input)) {
      inputs.push({ name: edge.target_input, required: false, stale: true });
    }
    if (edge.source === node.id && !outputs.some((pin) => pin.name === edge.source_output)) {
      outputs.push({ name: edge.source_output, required: false, stale: true });
    }
  }
  return { inputs, outputs };
}

let pinsTimer = null;
function refreshPinsSoon() {
  window.clearTimeout(pinsTimer);
  pinsTimer = window.setTimeout(refreshPins, 250);
}

async function refreshPins() {
  const nodes = state.graph.nodes.map(({ id, type, config }) => ({ id, type, config }));
  const answer = await request("POST", data.urls.pins, { nodes });
  if (!answer.ok || !answer.data?.pins) return;
  const before = JSON.stringify(state.pins);
  state.pins = answer.data.pins;
  if (JSON.stringify(state.pins) !== before) renderCanvas();
}

// --- the canvas ----------------------------------------------------------------------------

function renderCanvas() {
  el.surface.querySelectorAll(".node, .edge-delete").forEach((item) => item.remove());
  let width = 1200;
  let height = 640;
  for (const node of state.graph.nodes) {
    el.surface.append(renderNode(node));
    width = Math.max(width, node.position.x + NODE_WIDTH + 320);
    height = Math.max(height, node.position.y + 360);
  }
  el.surface.style.width = `${width}px`;
  el.surface.style.height = `${height}px`;
  el.empty.hidden = state.graph.nodes.length > 0;
  renderEdges();
}

function renderNode(node) {
  const name = nodeName(node);
  const problems = state.problems.nodes[node.id] || [];
  const pins = pinsOf(node);
  const titleId = `node-${node.id}-title`;
  const portButton = (pin, side) => {
    const label = format(side === "input" ? S.input_port : S.output_port, { pin: pin.name, name });
    const chosen = side === "output" && state.pending?.node === node.id && state.pending?.pin === pin.name;
    return h("button", {
      type: "button",
      class: `port is-${side}${pin.required ? " is-required" : ""}${pin.stale ? " is-stale" : ""}`,
      "data-node": node.id,
      "data-pin": pin.name,
      "data-side": side,
      "aria-label": label,
      "aria-pressed": side === "output" ? String(Boolean(chosen)) : null,
    });
  };
  const card = h(
    "div",
    {
      class: `node${state.selected === node.id ? " is-selected" : ""}${problems.length ? " has-error" : ""}`,
      "data-node-id": node.id,
      "data-type": node.type,
      role: "group",
      "aria-labelledby": titleId,
      style: `left:${node.position.x}px;top:${node.position.y}px;width:${NODE_WIDTH}px`,
    },
    h(
      "div",
      { class: "node-header" },
      h("button", {
        type: "button",
        class: "node-title",
        id: titleId,
        "aria-pressed": String(state.selected === node.id),
        text: name,
        onclick: (event) => {
          if (suppressClick) return;
          event.stopPropagation();
          select(node.id);
        },
      }),
      h("span", { class: "node-type", text: node.type }),
      h("button", {
        type: "button",
        class: "node-delete",
        "aria-label": format(S.delete_node, { name }),
        text: "×",
        onclick: () => removeNode(node.id),
      }),
    ),
    h(
      "div",
      { class: "node-pins" },
      h("ul", { class: "pins is-inputs" }, pins.inputs.map((pin) => h("li", {}, portButton(pin, "input"), h("span", { text: pin.name })))),
      h("ul", { class: "pins is-outputs" }, pins.outputs.map((pin) => h("li", {}, h("span", { text: pin.name }), portButton(pin, "output")))),
    ),
    problems.length
      ? h("ul", { class: "node-errors" }, problems.map((problem) => h("li", { text: problem.field ? `${problem.field}: ${problem.message}` : problem.message })))
      : null,
  );
  return card;
}

function portCentre(nodeId, pin, side) {
  const port = el.surface.querySelector(`.port.is-${side}[data-node="${CSS.escape(nodeId)}"][data-pin="${CSS.escape(pin)}"]`);
  if (!port) return null;
  const box = port.getBoundingClientRect();
  const origin = el.surface.getBoundingClientRect();
  return { x: box.left - origin.left + box.width / 2, y: box.top - origin.top + box.height / 2 };
}

function curve(a, b) {
  const bend = Math.max(40, Math.abs(b.x - a.x) / 2);
  return `M${a.x},${a.y} C${a.x + bend},${a.y} ${b.x - bend},${b.y} ${b.x},${b.y}`;
}

function renderEdges() {
  const ns = "http://www.w3.org/2000/svg";
  el.edges.replaceChildren();
  el.edges.setAttribute("width", el.surface.style.width);
  el.edges.setAttribute("height", el.surface.style.height);
  el.surface.querySelectorAll(".edge-delete").forEach((item) => item.remove());
  state.graph.edges.forEach((edge, index) => {
    const a = portCentre(edge.source, edge.source_output, "output");
    const b = portCentre(edge.target, edge.target_input, "input");
    if (!a || !b) return;
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", curve(a, b));
    path.setAttribute("class", "edge");
    path.dataset.edge = String(index);
    el.edges.append(path);
    const source = nodeById(edge.source);
    const target = nodeById(edge.target);
    const label = format(S.delete_edge, {
      source: `${source ? nodeName(source) : edge.source}.${edge.source_output}`,
      target: `${target ? nodeName(target) : edge.target}.${edge.target_input}`,
    });
    el.surface.append(h("button", {
      type: "button",
      class: "edge-delete",
      "data-edge": String(index),
      "aria-label": label,
      title: label,
      text: "×",
      style: `left:${(a.x + b.x) / 2 - 12}px;top:${(a.y + b.y) / 2 - 12}px`,
      onclick: () => removeEdge(edge),
    }));
  });
  if (wire) el.edges.append(wire.path);
}

// --- changing the graph --------------------------------------------------------------------

function uniqueId(type) {
  const base = type.replace(/[^A-Za-z0-9_-]/g, "_");
  let number = 1;
  while (nodeById(`${base}_${number}`)) number += 1;
  return `${base}_${number}`;
}

function defaultConfig(type, id) {
  const schema = state.types[type]?.config_schema || {};
  const config = {};
  if ((schema.required || []).includes("name")) config.name = id; // inputs and outputs: a valid, unique name
  for (const [key, property] of Object.entries(schema.properties || {})) {
    if (!COMMON.has(key) && property && "default" in property) config[key] = property.default;
  }
  return config;
}

function addNode(type, position) {
  const id = uniqueId(type);
  const node = { id, type, config: defaultConfig(type, id), position: { x: Math.max(0, Math.round(position.x)), y: Math.max(0, Math.round(position.y)) } };
  state.graph.nodes.push(node);
  state.pins[id] = staticPins(type);
  markDirty();
  renderCanvas();
  select(id);
  refreshPinsSoon();
  announce(format(S.added, { name: id }));
  return node;
}

function freePosition() {
  const step = (state.graph.nodes.length % 6) * 28;
  return { x: el.canvas.scrollLeft + 32 + step, y: el.canvas.scrollTop + 32 + step };
}

function removeNode(id) {
  const node = nodeById(id);
  if (!node) return;
  state.graph.nodes = state.graph.nodes.filter((item) => item.id !== id);
  state.graph.edges = state.graph.edges.filter((edge) => edge.source !== id && edge.target !== id);
  delete state.pins[id];
  delete state.problems.nodes[id];
  if (state.selected === id) state.selected = null;
  if (state.pending?.node === id) state.pending = null;
  markDirty();
  renderCanvas();
  renderSettings();
  renderProblems();
  announce(format(S.removed, { name: nodeName(node) }));
  el.canvas.focus();
}

function removeEdge(edge) {
  state.graph.edges = state.graph.edges.filter((item) => item !== edge);
  markDirty();
  renderCanvas();
  el.canvas.focus();
}

function connect(source, sourcePin, target, targetPin) {
  if (source === target) return;
  const exists = state.graph.edges.some((edge) => edge.source === source && edge.source_output === sourcePin
    && edge.target === target && edge.target_input === targetPin);
  if (!exists) {
    state.graph.edges.push({ source, source_output: sourcePin, target, target_input: targetPin });
    markDirty();
  }
  state.pending = null;
  renderCanvas();
  announce(format(S.connected, { source: `${source}.${sourcePin}`, target: `${target}.${targetPin}` }));
}

function select(id) {
  state.selected = id;
  el.surface.querySelectorAll(".node").forEach((card) => {
    const selected = card.dataset.nodeId === id;
    card.classList.toggle("is-selected", selected);
    card.querySelector(".node-title").setAttribute("aria-pressed", String(selected));
  });
  renderSettings();
}

// --- pointer interactions: palette drops, moving nodes, drawing wires ------------------------

let drag = null; // {kind: "palette" | "node", ...}
let wire = null; // {source, pin, from, path, moved}
let suppressClick = false;

function surfacePoint(event) {
  const origin = el.surface.getBoundingClientRect();
  return { x: event.clientX - origin.left, y: event.clientY - origin.top };
}

function overCanvas(event) {
  const box = el.canvas.getBoundingClientRect();
  return event.clientX >= box.left && event.clientX <= box.right && event.clientY >= box.top && event.clientY <= box.bottom;
}

el.palette.addEventListener("pointerdown", (event) => {
  const item = event.target.closest("[data-node-type]");
  if (!item || event.button !== 0) return;
  event.preventDefault();
  drag = { kind: "palette", type: item.dataset.nodeType, startX: event.clientX, startY: event.clientY, moved: false, ghost: null };
});

el.surface.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  const port = event.target.closest(".port.is-output");
  if (port) {
    event.preventDefault();
    const from = portCentre(port.dataset.node, port.dataset.pin, "output");
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("class", "edge is-drawing");
    wire = { source: port.dataset.node, pin: port.dataset.pin, from, path, moved: false, startX: event.clientX, startY: event.clientY };
    return;
  }
  const header = event.target.closest(".node-header");
  if (header && !event.target.closest(".node-delete")) {
    const card = header.closest(".node");
    const node = nodeById(card.dataset.nodeId);
    drag = {
      kind: "node", node, card, startX: event.clientX, startY: event.clientY, moved: false,
      originX: node.position.x, originY: node.position.y,
    };
  }
});

document.addEventListener("pointermove", (event) => {
  if (wire) {
    if (!wire.moved && Math.hypot(event.clientX - wire.startX, event.clientY - wire.startY) > DRAG_THRESHOLD) {
      wire.moved = true;
      el.edges.append(wire.path);
    }
    if (wire.moved && wire.from) wire.path.setAttribute("d", curve(wire.from, surfacePoint(event)));
    return;
  }
  if (!drag) return;
  const dx = event.clientX - drag.startX;
  const dy = event.clientY - drag.startY;
  if (!drag.moved && Math.hypot(dx, dy) <= DRAG_THRESHOLD) return;
  drag.moved = true;
  if (drag.kind === "palette") {
    if (!drag.ghost) {
      drag.ghost = h("div", { class: "palette-ghost", "aria-hidden": "true", text: drag.type });
      document.body.append(drag.ghost);
    }
    drag.ghost.style.left = `${event.clientX + 8}px`;
    drag.ghost.style.top = `${event.clientY + 8}px`;
    el.canvas.classList.toggle("is-drop-target", overCanvas(event));
  } else {
    drag.node.position.x = Math.max(0, Math.round(drag.originX + dx));
    drag.node.position.y = Math.max(0, Math.round(drag.originY + dy));
    drag.card.style.left = `${drag.node.position.x}px`;
    drag.card.style.top = `${drag.node.position.y}px`;
    renderEdges();
  }
});

document.addEventListener("pointerup", (event) => {
  if (wire) {
    const current = wire;
    wire = null;
    current.path.remove();
    const under = document.elementFromPoint(event.clientX, event.clientY)?.closest(".port.is-input");
    if (under) connect(current.source, current.pin, under.dataset.node, under.dataset.pin);
    else if (!current.moved) choosePending(current.source, current.pin);
    return;
  }
  if (!drag) return;
  const current = drag;
  drag = null;
  if (current.kind === "palette") {
    current.ghost?.remove();
    el.canvas.classList.remove("is-drop-target");
    if (!current.moved) addNode(current.type, freePosition());
    else if (overCanvas(event)) {
      const point = surfacePoint(event);
      addNode(current.type, { x: point.x - NODE_WIDTH / 2, y: point.y - 20 });
    }
  } else if (current.moved) {
    markDirty();
    renderCanvas();
    // The click that ends a drag must not also select the node as a press would.
    suppressClick = true;
    window.setTimeout(() => { suppressClick = false; }, 0);
  }
});

function choosePending(nodeId, pin) {
  const same = state.pending?.node === nodeId && state.pending?.pin === pin;
  state.pending = same ? null : { node: nodeId, pin };
  renderCanvas();
  if (state.pending) {
    const node = nodeById(nodeId);
    announce(format(S.output_chosen, { pin, name: node ? nodeName(node) : nodeId }));
  }
}

// Keyboard presses (a click with detail 0); the mouse goes through the pointer handlers above.
el.palette.addEventListener("click", (event) => {
  const item = event.target.closest("[data-node-type]");
  if (item && event.detail === 0) addNode(item.dataset.nodeType, freePosition());
});

el.surface.addEventListener("click", (event) => {
  const port = event.target.closest(".port");
  if (port) {
    if (port.dataset.side === "output" && event.detail === 0) {
      choosePending(port.dataset.node, port.dataset.pin);
    } else if (port.dataset.side === "input" && state.pending) {
      connect(state.pending.node, state.pending.pin, port.dataset.node, port.dataset.pin);
    }
    return;
  }
  const card = event.target.closest(".node");
  if (card && !suppressClick && !event.target.closest("button")) select(card.dataset.nodeId);
});

el.canvas.addEventListener("keydown", (event) => {
  const typing = event.target.closest("input, textarea, select");
  if (typing) return;
  if ((event.key === "Delete" || event.key === "Backspace") && state.selected) {
    event.preventDefault();
    removeNode(state.selected);
  } else if (event.key === "Escape" && state.pending) {
    state.pending = null;
    renderCanvas();
  }
});

// --- the palette ---------------------------------------------------------------------------

async function loadPalette() {
  const answer = await request("GET", data.urls.node_types);
  if (!answer.ok || !Array.isArray(answer.data)) {
    el.palette.replaceChildren(h("p", { class: "error", role: "alert", text: S.palette_failed }));
    return;
  }
  for (const type of answer.data) state.types[type.type] = type;
  const groups = {};
  for (const type of answer.data) (groups[type.category] ||= []).push(type);
  el.palette.replaceChildren(
    ...Object.entries(groups).map(([category, types]) => h(
      "div",
      { class: "palette-group" },
      h("h3", { text: S[`category_${category}`] || category }),
      h("ul", { class: "palette-list" }, types.map((type) => h(
        "li",
        {},
        h("button", {
          type: "button",
          class: "palette-item is-secondary",
          "data-node-type": type.type,
          title: type.description,
          "aria-label": format(S.add_node, { type: type.type }),
          text: type.type,
        }),
      ))),
    )),
  );
  renderCanvas();
  renderSettings();
}

// --- the settings form ---------------------------------------------------------------------

function fieldErrors(nodeId, key) {
  const problems = state.problems.nodes[nodeId] || [];
  const messages = problems.filter((problem) => problem.field === `config.${key}` || problem.field?.startsWith(`config.${key}.`))
    .map((problem) => problem.message);
  const jsonError = state.jsonErrors[`${nodeId}:${key}`];
  if (jsonError) messages.push(jsonError);
  return messages;
}

function kindOf(property) {
  if (Array.isArray(property.enum)) return "enum";
  const types = Array.isArray(property.type) ? property.type.filter((type) => type !== "null") : [property.type];
  if (types.length !== 1) return "json";
  return { string: "string", integer: "integer", number: "number", boolean: "boolean" }[types[0]] || "json";
}

function settingsField(node, key, property, required) {
  const id = `cfg-${node.id}-${key}`;
  const errors = fieldErrors(node.id, key);
  const value = node.config[key];
  const kind = kindOf(property);
  const describedBy = [property.description ? `${id}-help` : null, errors.length ? `${id}-errors` : null].filter(Boolean).join(" ") || null;
  const common = { id, name: key, "aria-invalid": errors.length ? "true" : null, "aria-describedby": describedBy, "aria-required": required ? "true" : null };
  let control;
  if (kind === "enum") {
    control = h("select", common, h("option", { value: "", text: S.none }), property.enum.map((option) => h("option", {
      value: JSON.stringify(option), text: typeof option === "string" ? option : JSON.stringify(option), selected: JSON.stringify(option) === JSON.stringify(value),
    })));
    control.addEventListener("change", () => setConfig(node, key, control.value === "" ? undefined : JSON.parse(control.value)));
  } else if (kind === "boolean") {
    control = h("input", { ...common, type: "checkbox", checked: value === true });
    control.addEventListener("change", () => setConfig(node, key, control.checked));
  } else if (kind === "integer" || kind === "number") {
    control = h("input", { ...common, type: "number", step: kind === "integer" ? "1" : "any", inputmode: kind === "integer" ? "numeric" : "decimal", value: value ?? "" });
    control.addEventListener("input", () => {
      const text = control.value.trim();
      setConfig(node, key, text === "" ? undefined : Number(text));
    });
  } else if (kind === "string") {
    const long = LONG_TEXT.test(key) || (property.maxLength || 0) > 300;
    control = long
      ? h("textarea", { ...common, rows: 4, spellcheck: key === "expression" ? "false" : null })
      : h("input", { ...common, type: "text", maxlength: property.maxLength || null });
    control.value = typeof value === "string" ? value : "";
    control.addEventListener("input", () => setConfig(node, key, control.value === "" && !required ? undefined : control.value));
  } else {
    control = h("textarea", { ...common, rows: 4, spellcheck: "false", class: "is-code" });
    control.value = value === undefined ? "" : JSON.stringify(value, null, 2);
    control.addEventListener("input", () => {
      const text = control.value.trim();
      const slot = `${node.id}:${key}`;
      if (text === "") {
        delete state.jsonErrors[slot];
        setConfig(node, key, undefined);
        showFieldErrors(control, node.id, key);
        return;
      }
      try {
        const parsed = JSON.parse(text);
        delete state.jsonErrors[slot];
        setConfig(node, key, parsed);
      } catch (error) {
        state.jsonErrors[slot] = format(S.json_invalid, { message: error.message });
        markDirty();
      }
      showFieldErrors(control, node.id, key);
    });
  }
  const label = h("label", { for: id }, key, required ? h("span", { class: "required-mark", text: ` (${S.required})` }) : null);
  const field = h(
    "div",
    { class: `field${kind === "boolean" ? " is-check" : ""}${errors.length ? " has-error" : ""}`, "data-key": key },
    ...(kind === "boolean" ? [control, label] : [label, control]),
    property.description ? h("div", { class: "helptext", id: `${id}-help`, text: property.description }) : null,
    kind === "json" ? h("div", { class: "helptext", text: S.json_help }) : null,
    errors.length ? h("ul", { class: "errorlist", id: `${id}-errors` }, errors.map((message) => h("li", { text: message }))) : null,
  );
  return field;
}

function showFieldErrors(control, nodeId, key) {
  const field = control.closest(".field");
  const errors = fieldErrors(nodeId, key);
  field.querySelector(".errorlist")?.remove();
  field.classList.toggle("has-error", errors.length > 0);
  control.setAttribute("aria-invalid", errors.length ? "true" : "false");
  if (errors.length) {
    const list = h("ul", { class: "errorlist", id: `${control.id}-errors` }, errors.map((message) => h("li", { text: message })));
    field.append(list);
    control.setAttribute("aria-describedby", `${control.id}-errors`);
  }
}

function setConfig(node, key, value) {
  if (value === undefined) delete node.config[key];
  else node.config[key] = value;
  markDirty();
  if (key === "label") {
    const title = el.surface.querySelector(`.node[data-node-id="${CSS.escape(node.id)}"] .node-title`);
    if (title) title.textContent = nodeName(node);
  }
  refreshPinsSoon();
}

function renderSettings() {
  const node = state.selected ? nodeById(state.selected) : null;
  if (!node) {
    el.settings.replaceChildren(h("p", { class: "muted", text: S.select_node }));
    return;
  }
  const described = state.types[node.type];
  const schema = described?.config_schema || { properties: {} };
  const required = new Set(schema.required || []);
  const own = [];
  const common = [];
  for (const [key, property] of Object.entries(schema.properties || {})) {
    const field = settingsField(node, key, property || {}, required.has(key));
    (COMMON.has(key) ? common : own).push(field);
  }
  el.settings.replaceChildren(
    h(
      "form",
      { class: "settings-form", "aria-label": format(S.settings_of, { name: nodeName(node) }), onsubmit: (event) => event.preventDefault() },
      h("p", { class: "settings-title" }, h("strong", { text: node.type }), " · ", h("span", { class: "muted", text: format(S.node_id, { id: node.id }) })),
      described?.description ? h("p", { class: "muted settings-description", text: described.description }) : null,
      own,
      common.length ? h("details", { class: "settings-more" }, h("summary", { text: S.more_settings }), common) : null,
    ),
  );
}

// --- problems from the API -----------------------------------------------------------------

function problemsFrom(answer) {
  const problems = { graph: [], nodes: {} };
  const fields = answer.data?.error?.fields || {};
  for (const [key, messages] of Object.entries(fields)) {
    const match = /^graph\.nodes\.([A-Za-z0-9_-]+)(?:\.(.+))?$/.exec(key);
    for (const message of messages) {
      if (match) {
        let field = match[2] || null;
        // A missing required key is reported on `config` itself: name the key it is about.
        const missing = /^'([^']+)' is a required property$/.exec(message);
        if (missing && field === "config") field = `config.${missing[1]}`;
        (problems.nodes[match[1]] ||= []).push({ field, message });
      } else {
        problems.graph.push(key === "graph" ? message : `${key}: ${message}`);
      }
    }
  }
  if (!Object.keys(fields).length && answer.data?.error?.message) problems.graph.push(answer.data.error.message);
  if (!answer.data && !answer.ok) problems.graph.push(`HTTP ${answer.status}`);
  return problems;
}

function renderProblems() {
  const items = [];
  for (const message of state.problems.graph) items.push(h("li", {}, h("strong", { text: `${S.graph_problem}: ` }), message));
  for (const [nodeId, problems] of Object.entries(state.problems.nodes)) {
    const node = nodeById(nodeId);
    for (const problem of problems) {
      items.push(h(
        "li",
        {},
        h("button", {
          type: "button",
          class: "is-quiet problem-node",
          text: node ? nodeName(node) : nodeId,
          onclick: () => {
            select(nodeId);
            const field = problem.field?.startsWith("config.") ? document.getElementById(`cfg-${nodeId}-${problem.field.split(".")[1]}`) : null;
            (field || el.surface.querySelector(`.node[data-node-id="${CSS.escape(nodeId)}"] .node-title`))?.focus();
          },
        }),
        ` ${problem.field ? `${problem.field}: ` : ""}${problem.message}`,
      ));
    }
  }
  el.problems.replaceChildren(items.length
    ? h("ul", { class: "problem-list", role: "alert" }, items)
    : h("p", { class: "muted", text: S.no_problems }));
}

function showProblems(problems) {
  state.problems = problems;
  renderCanvas();
  renderSettings();
  renderProblems();
}

// --- saving, publishing, versions ----------------------------------------------------------

function graphToSend() {
  return {
    nodes: state.graph.nodes.map(({ id, type, config, position }) => ({ id, type, config, position })),
    edges: state.graph.edges.map(({ source, source_output, target, target_input }) => ({ source, source_output, target, target_input })),
  };
}

function jsonProblems() {
  const entries = Object.entries(state.jsonErrors);
  if (!entries.length) return null;
  const problems = { graph: [], nodes: {} };
  for (const [slot, message] of entries) {
    const [nodeId, key] = slot.split(":");
    (problems.nodes[nodeId] ||= []).push({ field: `config.${key}`, message });
  }
  return problems;
}

async function save() {
  const local = jsonProblems();
  if (local) {
    showProblems(local);
    setStatus(S.not_saved, "error");
    return false;
  }
  state.busy = true;
  updateButtons();
  setStatus(S.saving, "busy");
  const answer = await request("PATCH", data.urls.workflow, { graph: graphToSend() });
  state.busy = false;
  if (answer.ok) {
    savedDraft = canonical(answer.data.graph);
    markSaved();
    showProblems({ graph: [], nodes: {} });
    return true;
  }
  updateButtons();
  showProblems(problemsFrom(answer));
  setStatus(answer.status === 400 ? S.not_saved : format(S.save_failed, { message: answer.data?.error?.message || answer.status }), "error");
  return false;
}

async function publish() {
  if (state.dirty && !(await save())) return;
  state.busy = true;
  updateButtons();
  setStatus(S.publishing, "busy");
  const answer = await request("POST", data.urls.publish);
  state.busy = false;
  updateButtons();
  if (answer.ok) {
    savedDraft = canonical(answer.data.graph);
    markSaved();
    showProblems({ graph: [], nodes: {} });
    setStatus(format(S.published, { number: answer.data.number }), "saved");
    announce(format(S.published, { number: answer.data.number }));
    const subtitle = document.querySelector(".page-header p");
    if (subtitle) subtitle.textContent = format(S.draft_of, { number: answer.data.number });
    loadVersions();
    return;
  }
  showProblems(problemsFrom(answer));
  setStatus(S.publish_failed, "error");
}

async function loadVersions() {
  const answer = await request("GET", data.urls.versions);
  if (!answer.ok) {
    el.versions.replaceChildren(h("p", { class: "error", text: S.versions_failed }));
    return;
  }
  const versions = answer.data?.results || [];
  if (!versions.length) {
    el.versions.replaceChildren(h("p", { class: "muted", text: S.no_versions }));
    return;
  }
  const dates = new Intl.DateTimeFormat(document.documentElement.lang || undefined, { dateStyle: "medium", timeStyle: "short" });
  el.versions.replaceChildren(h("ol", { class: "version-list", reversed: true }, versions.map((version) => h(
    "li",
    {},
    h("strong", { text: format(S.version, { number: version.number }) }),
    " ",
    h("time", { class: "muted", datetime: version.created_at, text: dates.format(new Date(version.created_at)) }),
  ))));
}

el.save.addEventListener("click", save);
el.publish.addEventListener("click", publish);
window.addEventListener("resize", () => renderEdges());

el.discard.addEventListener("click", () => {
  state.dirty = false; // no leave-page warning: the saved draft is what comes back
  dropBackup();
  window.location.reload();
});

if (restoreBackup()) {
  renderCanvas();
  markDirty();
  setStatus(S.restored, "dirty");
  el.discard.hidden = false;
  refreshPinsSoon();
} else {
  renderCanvas();
  markSaved();
}
loadPalette();
loadVersions();
