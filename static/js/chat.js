// The agents' test chat: posts the conversation to the streaming endpoint (apps/agents/chat.py)
// and shows the reply as it arrives. The answer is Server-Sent Events over fetch's
// ReadableStream (EventSource cannot POST): `delta` {text}, then `done` or `error` with the usage
// and cost; a refusal before the model runs is a JSON error with a 4xx status.

const chat = document.querySelector("[data-chat]");

function csrfToken() {
  // base.html puts the token in hx-headers for htmx; the cookie is the fallback.
  try {
    const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    if (headers["X-CSRFToken"]) return headers["X-CSRFToken"];
  } catch (error) {
    // not JSON: fall through to the cookie
  }
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function format(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
}

// Splits a text stream into Server-Sent Events ({event, data}), whatever the chunk boundaries.
async function* serverSentEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

function start(root) {
  const log = root.querySelector("[data-chat-log]");
  const form = root.querySelector("[data-chat-form]");
  const input = root.querySelector("[data-chat-input]");
  const send = root.querySelector("[data-chat-send]");
  const loading = root.querySelector("[data-chat-loading]");
  const status = root.querySelector("[data-chat-status]");
  const balance = root.querySelector("[data-chat-balance]");
  const labels = root.dataset;
  let conversation = [];
  let busy = false;

  function bubble(role, text) {
    root.querySelector("[data-chat-empty]")?.remove();
    const item = document.createElement("li");
    item.className = `chat-message is-${role}`;
    const who = document.createElement("span");
    who.className = "chat-author";
    who.textContent = role === "user" ? labels.labelYou : labels.labelAgent;
    const body = document.createElement("div");
    body.className = "chat-text";
    body.textContent = text;
    item.append(who, body);
    log.append(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  function note(item, text, kind) {
    const line = document.createElement("p");
    line.className = `chat-note${kind ? ` is-${kind}` : ""}`;
    line.textContent = text;
    item.append(line);
    return line;
  }

  function setBusy(value) {
    busy = value;
    send.disabled = value;
    loading.hidden = !value;
    root.setAttribute("aria-busy", String(value));
  }

  function summary(data) {
    const usage = data.usage || {};
    if (data.balance_display !== undefined) {
      balance.textContent = format(labels.labelBalance, { balance: data.balance_display });
    }
    return format(labels.labelCost, {
      cost: data.cost_display,
      input: usage.input_tokens ?? 0,
      output: usage.output_tokens ?? 0,
      tools: usage.tool_calls ?? 0,
    });
  }

  async function turn(message) {
    conversation.push({ role: "user", content: message });
    bubble("user", message);
    const reply = bubble("assistant", "");
    reply.classList.add("is-streaming");
    const text = reply.querySelector(".chat-text");
    status.textContent = labels.labelThinking;
    setBusy(true);
    let finished = false;
    try {
      const response = await fetch(root.dataset.streamUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "text/event-stream" },
        body: JSON.stringify({ messages: conversation }),
        credentials: "same-origin",
      });
      if (!response.ok) {
        let message = response.statusText;
        try {
          message = (await response.json()).error.message;
        } catch (error) {
          // not our JSON error (a proxy's page): keep the status text
        }
        throw new Error(message);
      }
      for await (const { event, data } of serverSentEvents(response.body)) {
        if (event === "delta") {
          text.textContent += data.text;
        } else if (event === "done") {
          finished = true;
          note(reply, summary(data), "cost");
          status.textContent = labels.labelDone;
        } else if (event === "error") {
          finished = true;
          note(reply, format(labels.labelError, { message: data.message }), "error");
          note(reply, summary(data), "cost");
          status.textContent = format(labels.labelError, { message: data.message });
        }
      }
      if (!finished) throw new Error(labels.labelNetwork);
      if (text.textContent) conversation.push({ role: "assistant", content: text.textContent });
      else conversation.pop(); // an answer that failed before any text: the question may be asked again
    } catch (error) {
      conversation.pop();
      const shown = format(labels.labelError, { message: error.message });
      note(reply, shown, "error");
      status.textContent = shown;
    } finally {
      reply.classList.remove("is-streaming");
      setBusy(false);
      input.focus();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const message = input.value.trim();
    if (!message || busy) return;
    input.value = "";
    turn(message);
  });
  input.addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter makes a new line, as in most chat boxes.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  root.querySelector("[data-chat-reset]").addEventListener("click", () => {
    if (busy) return;
    conversation = [];
    log.replaceChildren();
    status.textContent = "";
    input.focus();
  });
}

if (chat) start(chat);
