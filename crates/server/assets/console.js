/* chatgate demo: a small operator console that stands in for the contact-centre core.
 * It asks for the API token, long-polls GET /v1/events, lists conversations, answers through
 * POST /v1/messages and shows the statuses of its answers from `status` events. Message text
 * is rendered with textContent only. Served at GET /console.js under a strict CSP. */
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "chatgate:console-token";
  const SENT_KEY = "chatgate:console-sent";
  const RANK = { queued: 0, sent: 1, delivered: 2, read: 3 };

  const state = {
    token: null,
    after: 0,
    conversations: new Map(), // key -> {channel, account, chat_id, customer, source, items: [], unread, last}
    outbound: new Map(), // message id -> item
    current: null,
    quoting: null,
    polling: false,
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function time(at) {
    const date = at ? new Date(at) : new Date();
    return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function setState(text, kind) {
    const pill = $("console-state");
    pill.textContent = text;
    pill.className = "pill" + (kind ? " " + kind : "");
  }

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: Object.assign({ authorization: "Bearer " + state.token }, body ? { "content-type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const error = new Error((data && data.error && data.error.message) || "HTTP " + response.status);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  // ---- conversations ----

  function conversationOf(event) {
    const key = `${event.channel}/${event.account}/${event.chat_id}`;
    let conv = state.conversations.get(key);
    if (!conv) {
      conv = { key, channel: event.channel, account: event.account, chat_id: event.chat_id, customer: null, source: null, pages: [], items: [], unread: 0, last: "" };
      state.conversations.set(key, conv);
    }
    if (event.customer) conv.customer = event.customer;
    if (event.source && (event.source.referrer || event.source.landing_url || event.source.utm)) conv.source = event.source;
    return conv;
  }

  function onEvent(event) {
    if (event.type === "status") {
      const info = event.status || {};
      const item = info.message_id && state.outbound.get(info.message_id);
      if (item) {
        if (info.status === "failed") {
          item.status = "failed";
          item.error = info.error && (info.error.code || info.error.message);
        } else if (item.status !== "failed" && (RANK[info.status] ?? -1) > (RANK[item.status] ?? -1)) {
          item.status = info.status;
        }
        saveSent();
        if (state.current && state.current.key === item.conv) renderThread();
      }
      return;
    }
    if (!event.chat_id) return;
    const conv = conversationOf(event);
    if (event.type === "message" && event.message) {
      const m = event.message;
      const files = (m.attachments || []).map((a) => `📎 ${a.name || a.kind}${a.size ? ` (${Math.round(a.size / 1024)} KB)` : ""}`);
      const text = [m.text || "", ...files].filter(Boolean).join("\n");
      conv.items.push({ kind: "in", id: m.external_id, text, at: m.sent_at || event.received_at, page: event.page });
      conv.last = text;
      if (!state.current || state.current.key !== conv.key) conv.unread++;
    } else if (event.type === "page_view" && event.page) {
      conv.pages.push(event.page);
      conv.items.push({ kind: "note", text: `opened ${event.page.title || event.page.url}`, at: event.page.at || event.received_at });
    } else if (event.type === "feedback" && event.feedback) {
      const f = event.feedback;
      conv.items.push({ kind: "note", text: `feedback: ${f.score} of ${f.scale}`, at: event.received_at });
      conv.last = `feedback ${f.score}/${f.scale}`;
    } else {
      conv.items.push({ kind: "note", text: event.type.replace(/_/g, " "), at: event.received_at });
    }
  }

  function renderList() {
    const list = $("conversations");
    list.textContent = "";
    if (!state.conversations.size) {
      list.appendChild(el("li", "muted empty", "Nothing yet — write in the widget."));
      return;
    }
    for (const conv of Array.from(state.conversations.values()).reverse()) {
      const li = el("li");
      const button = el("button");
      button.type = "button";
      button.dataset.key = conv.key;
      if (state.current && state.current.key === conv.key) button.classList.add("active");
      if (conv.unread) button.appendChild(el("span", "unread", conv.unread));
      const name = (conv.customer && (conv.customer.name || conv.customer.user_id)) || conv.chat_id;
      button.appendChild(el("span", "who", `${conv.channel} · ${name}`));
      button.appendChild(el("span", "last", conv.last || " "));
      button.addEventListener("click", () => select(conv.key));
      li.appendChild(button);
      list.appendChild(li);
    }
  }

  function select(key) {
    state.current = state.conversations.get(key) || null;
    state.quoting = null;
    if (state.current) state.current.unread = 0;
    renderList();
    renderThread();
  }

  function renderThread() {
    const conv = state.current;
    const head = $("thread-head");
    head.textContent = "";
    $("reply").hidden = !conv;
    if (!conv) {
      head.appendChild(el("span", "muted", "Choose a conversation"));
      return;
    }
    head.textContent = `${conv.channel}/${conv.account} · ${conv.chat_id}`;
    renderCustomer(conv);
    const list = $("messages");
    list.textContent = "";
    const items = conv.items.concat(
      Array.from(state.outbound.values()).filter((o) => o.conv === conv.key),
    ).sort((a, b) => String(a.at).localeCompare(String(b.at)));
    for (const item of items) {
      const li = el("li", "msg " + item.kind);
      if (item.reply_text) li.appendChild(el("span", "quote", item.reply_text));
      li.appendChild(document.createTextNode(item.text));
      if (item.kind !== "note") {
        const meta = el("span", "meta", time(item.at));
        if (item.kind === "out") {
          const ticks = { queued: "◷", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "✕" }[item.status] || "◷";
          const mark = el("span", "ticks " + (item.status || "queued"), ticks);
          mark.title = item.status + (item.error ? `: ${item.error}` : "");
          mark.dataset.status = item.status;
          meta.appendChild(mark);
        }
        li.appendChild(meta);
      }
      if (item.kind === "in") {
        li.title = "Click to quote this message in the answer";
        li.addEventListener("click", () => {
          state.quoting = item;
          $("quoting").hidden = false;
          $("quoting-text").textContent = "Quoting: " + item.text.slice(0, 80);
        });
      }
      list.appendChild(li);
    }
    $("quoting").hidden = !state.quoting;
    list.scrollTop = list.scrollHeight;
  }

  function renderCustomer(conv) {
    const box = $("customer");
    box.textContent = "";
    const rows = [];
    const c = conv.customer || {};
    if (c.user_id) rows.push(["verified user", c.user_id]);
    const s = conv.source;
    if (s) {
      if (s.referrer) rows.push(["referrer", s.referrer]);
      if (s.landing_url) rows.push(["landing page", s.landing_url]);
      const utm = s.utm ? Object.entries(s.utm).map(([k, v]) => `${k}=${v}`).join(", ") : "";
      if (utm) rows.push(["utm", utm]);
    }
    if (conv.pages.length) rows.push(["pages", conv.pages.slice(-3).map((p) => p.title || p.url).join(" → ")]);
    box.hidden = !rows.length;
    const dl = el("dl");
    for (const [k, v] of rows) {
      dl.appendChild(el("dt", "", k));
      dl.appendChild(el("dd", "", v));
    }
    box.appendChild(dl);
  }

  // ---- sending ----

  function saveSent() {
    try {
      sessionStorage.setItem(SENT_KEY, JSON.stringify(Array.from(state.outbound.values())));
    } catch (_) {
      /* the console forgets its answers on reload */
    }
  }

  async function send(extra) {
    const conv = state.current;
    if (!conv) return;
    const text = $("reply-text").value.trim();
    const body = Object.assign({ channel: conv.channel, account: conv.account, chat_id: conv.chat_id, idempotency_key: crypto.randomUUID ? crypto.randomUUID() : String(Math.random()) }, extra || {});
    if (!extra && !text) return;
    if (text) body.text = text;
    if (state.quoting && state.quoting.id && !extra) body.reply_to = state.quoting.id;
    const error = $("reply-error");
    error.hidden = true;
    try {
      const answer = await api("POST", "/v1/messages", body);
      const label = extra && extra.feedback ? `(asked for feedback on a ${extra.feedback.scale}-point scale)` : "";
      state.outbound.set(answer.id, {
        kind: "out",
        id: answer.id,
        conv: conv.key,
        text: [text, label].filter(Boolean).join("\n"),
        reply_text: !extra && state.quoting ? state.quoting.text : null,
        status: answer.status || "queued",
        at: new Date().toISOString(),
      });
      saveSent();
      if (text) $("reply-text").value = "";
      state.quoting = null;
      renderThread();
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  }

  // ---- the event loop ----

  async function poll() {
    if (state.polling) return;
    state.polling = true;
    let delay = 1000;
    while (state.token) {
      try {
        const page = await api("GET", `/v1/events?after=${state.after}&limit=500&wait=25`);
        for (const event of page.events || []) onEvent(event);
        state.after = page.next_after ?? state.after;
        setState("connected", "on");
        delay = 1000;
        if ((page.events || []).length) {
          if (!state.current && state.conversations.size) state.current = Array.from(state.conversations.values()).pop();
          renderList();
          renderThread();
        }
      } catch (e) {
        if (e.status === 401) {
          disconnect("The API token was refused.");
          break;
        }
        setState("reconnecting…", "off");
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 15000);
      }
    }
    state.polling = false;
  }

  function disconnect(message) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("console-body").hidden = true;
    $("token-form").hidden = false;
    $("token-error").textContent = message;
    $("token-error").hidden = false;
    setState("not connected", "off");
  }

  async function connect(token) {
    state.token = token;
    try {
      await api("GET", "/v1/accounts");
    } catch (e) {
      disconnect(e.status === 401 ? "The API token was refused." : "The gateway did not answer: " + e.message);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-form").hidden = true;
    $("token-error").hidden = true;
    $("console-body").hidden = false;
    setState("connected", "on");
    poll();
  }

  document.addEventListener("DOMContentLoaded", () => {
    try {
      for (const item of JSON.parse(sessionStorage.getItem(SENT_KEY) || "[]")) state.outbound.set(item.id, item);
    } catch (_) {
      /* nothing kept */
    }
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      connect($("token").value.trim());
    });
    $("reply").addEventListener("submit", (e) => {
      e.preventDefault();
      send(null);
    });
    $("reply-text").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        send(null);
      }
    });
    $("quoting-cancel").addEventListener("click", () => {
      state.quoting = null;
      $("quoting").hidden = true;
    });
    $("ask-feedback").addEventListener("click", () => {
      const scale = Number($("feedback-scale").value);
      send({ feedback: { scale, prompt: "How would you rate this chat?" } });
    });
    $("copy-snippet").addEventListener("click", () => {
      navigator.clipboard.writeText($("snippet").textContent).then(
        () => ($("copy-snippet").textContent = "Copied"),
        () => ($("copy-snippet").textContent = "Select and copy"),
      );
    });
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) connect(saved);
  });
})();
