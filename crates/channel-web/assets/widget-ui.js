/*! chatgate web widget UI — loaded by widget.js on the visitor's first click.
 * Plain ES2020 module, no build step, no eval, no innerHTML with message content: text is
 * rendered as text nodes, links are built as <a> elements (http, https, mailto, tel only).
 * Styles come from widget.css inside the shadow root; colours are CSS custom properties. */

const STATUS_RANK = { pending: 0, stored: 1, sent: 1, queued: 1, delivered: 2, read: 3 };
const KIND_LABEL = { image: "Images", audio: "Audio files", video: "Videos", file: "Files" };
const KA_TIMEOUT_MS = 45000; // three keep-alives (15 s) missed: the connection is dead
const SVG = "http://www.w3.org/2000/svg";

/** Builds the chat panel inside `ctx.shadow`; the loader calls `toggle()` and `visitorLink()`. */
export function mount(ctx) {
  const widget = new Widget(ctx);
  return {
    toggle: () => widget.toggle(),
    visitorLink: (link) => widget.visitorLink(link),
  };
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function icon(d, extra) {
  const root = document.createElementNS(SVG, "svg");
  root.setAttribute("viewBox", "0 0 24 24");
  root.setAttribute("aria-hidden", "true");
  root.setAttribute("class", "cg-icon" + (extra ? " " + extra : ""));
  for (const path of Array.isArray(d) ? d : [d]) {
    const node = document.createElementNS(SVG, "path");
    node.setAttribute("d", path);
    root.appendChild(node);
  }
  return root;
}

const ICONS = {
  close: "M6 6l12 12M18 6L6 18",
  send: "M4 12l16-8-6 16-2.5-6.5z",
  clip: "M16.5 7.5l-7 7a2 2 0 0 0 2.8 2.8l7.2-7.2a4 4 0 0 0-5.7-5.7L6.6 11.6a6 6 0 0 0 8.5 8.5l5.4-5.4",
  book: ["M5 4.5A1.5 1.5 0 0 1 6.5 3H19v15H6.5A1.5 1.5 0 0 0 5 19.5z", "M5 19.5A1.5 1.5 0 0 0 6.5 21H19v-3"],
  file: ["M7 3h7l5 5v13H7z", "M14 3v5h5"],
  watch: ["M12 7v5l3 2", "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z"],
  tick: "M5 12.5l4 4 10-10",
  ticks: ["M2.5 12.5l4 4 10-10", "M9.5 16.5l1 0 10-10"],
  cross: ["M7 7l10 10", "M17 7L7 17"],
};

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function chars(text) {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function megabytes(bytes) {
  if (bytes < 1024 * 1024) return Math.max(1, Math.round(bytes / 1024)) + " KB";
  const mb = bytes / (1024 * 1024);
  return (mb >= 10 ? mb.toFixed(0) : mb.toFixed(1).replace(/\.0$/, "")) + " MB";
}

function kindOf(file) {
  const type = (file.type || "").split("/")[0];
  return type === "image" || type === "audio" || type === "video" ? type : "file";
}

const LINK = /\b(?:https?:\/\/[^\s<>"']+|mailto:[^\s<>"']+|tel:\+?[\d\-(). ]{3,}\d|www\.[^\s<>"']+)/gi;

/** Appends `text` to `parent` as text nodes, with http/https/mailto/tel links as <a> elements. */
function appendText(parent, text) {
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    let raw = match[0].replace(/[.,;:!?)\]]+$/, "");
    const start = match.index;
    if (start > last) parent.appendChild(document.createTextNode(text.slice(last, start)));
    const href = /^www\./i.test(raw) ? "https://" + raw : raw;
    let url = null;
    try {
      url = new URL(href);
    } catch (_) {
      url = null;
    }
    if (url && ["http:", "https:", "mailto:", "tel:"].includes(url.protocol)) {
      const a = el("a", "cg-link", raw);
      a.href = url.href;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      parent.appendChild(a);
    } else {
      parent.appendChild(document.createTextNode(raw));
    }
    last = start + raw.length;
  }
  if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
}

/**
 * The messenger link carrying the visitor id, so that channel's adapter can report where the
 * customer came from: a `{visitor_id}` placeholder is replaced; otherwise the id goes where each
 * messenger passes it on (Telegram `start`, Viber `context`, Messenger `ref`, WhatsApp text).
 */
function withVisitor(kind, url, visitor) {
  if (url.includes("{visitor_id}")) return url.split("{visitor_id}").join(encodeURIComponent(visitor));
  let parsed;
  try {
    parsed = new URL(url);
  } catch (_) {
    return url;
  }
  const tag = "w_" + visitor;
  const params = parsed.searchParams;
  if (kind === "telegram") params.set("start", tag);
  else if (kind === "viber") params.set("context", tag);
  else if (kind === "messenger") params.set("ref", tag);
  else if (kind === "whatsapp") {
    const text = `${params.get("text") || "Hello!"} [${tag}]`;
    return `${parsed.origin}${parsed.pathname}?text=${encodeURIComponent(text)}`; // %20, not +
  } else return url;
  return parsed.href;
}

function formatTime(at) {
  const date = at ? new Date(at) : new Date();
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The chat server answered ${status}.`);
    this.status = status;
    this.code = error.code || null;
    this.detail = error;
  }
}

class Widget {
  constructor(ctx) {
    this.ctx = ctx;
    this.config = ctx.config || {};
    this.limits = Object.assign(
      { text_max_chars: 2000, image_bytes: 10485760, audio_bytes: 20971520, video_bytes: 52428800, file_bytes: 20971520 },
      this.config.limits || {},
    );
    this.prefix = `${ctx.base}/web/${encodeURIComponent(ctx.account)}`;
    this.session = this.readSession();
    this.open = false;
    this.messages = new Map(); // id or client_id -> view
    this.lastSeq = 0;
    this.acked = new Map(); // operator message id -> "delivered" | "read"
    this.receiptQueue = new Map();
    this.running = false;
    this.backoff = 1000;
    this.wakeUp = null;
    this.asked = false;
    this.sentSomething = false;
    this.build();
    this.applyColors();
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        this.wake();
        this.markRead();
      }
    });
    addEventListener("online", () => this.wake());
    addEventListener("storage", (e) => {
      if (e.key === ctx.key) this.session = this.readSession();
    });
  }

  // ---- storage: only after the visitor opened the chat ----

  readSession() {
    try {
      const value = JSON.parse(localStorage.getItem(this.ctx.key) || "null");
      return value && typeof value.token === "string" ? value : null;
    } catch (_) {
      return null;
    }
  }

  saveSession() {
    try {
      localStorage.setItem(this.ctx.key, JSON.stringify(this.session));
    } catch (_) {
      /* private mode: the session lasts as long as the page */
    }
  }

  // ---- DOM ----

  build() {
    const { shadow } = this.ctx;
    const sheet = el("link");
    sheet.rel = "stylesheet";
    sheet.href = `${this.ctx.base}/web/assets/widget.css`;
    shadow.insertBefore(sheet, shadow.firstChild);
    this.sheetLoaded = new Promise((resolve) => {
      sheet.addEventListener("load", resolve);
      sheet.addEventListener("error", resolve);
    });

    const panel = el("section", "cg-panel");
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", this.config.name || "Chat");
    panel.hidden = true;

    const header = el("header", "cg-header");
    const avatar = el("img", "cg-avatar cg-avatar-lg");
    avatar.alt = "";
    avatar.src = this.avatar("operator");
    const titles = el("div", "cg-titles");
    titles.appendChild(el("div", "cg-title", this.config.name || "Chat"));
    this.state = el("div", "cg-state", "Connecting…");
    titles.appendChild(this.state);
    header.append(avatar, titles);
    if (this.config.knowledge_base_url && /^https?:/i.test(this.config.knowledge_base_url)) {
      const kb = el("a", "cg-head-button");
      kb.href = this.config.knowledge_base_url;
      kb.target = "_blank";
      kb.rel = "noopener noreferrer";
      kb.title = "Help centre";
      kb.setAttribute("aria-label", "Help centre");
      kb.appendChild(icon(ICONS.book));
      header.appendChild(kb);
    }
    const close = el("button", "cg-head-button cg-close");
    close.type = "button";
    close.setAttribute("aria-label", "Close chat");
    close.appendChild(icon(ICONS.close));
    close.addEventListener("click", () => this.close());
    header.appendChild(close);

    this.log = el("div", "cg-log");
    this.log.setAttribute("role", "log");
    this.log.setAttribute("aria-live", "polite");
    this.empty = el("div", "cg-empty", "Ask us anything — we usually answer within a few minutes.");
    this.log.appendChild(this.empty);

    this.error = el("div", "cg-error");
    this.error.setAttribute("role", "alert");
    this.error.hidden = true;

    const composer = el("form", "cg-composer");
    const clip = el("button", "cg-clip");
    clip.type = "button";
    clip.title = "Attach a file";
    clip.setAttribute("aria-label", "Attach a file");
    clip.appendChild(icon(ICONS.clip));
    this.fileInput = el("input", "cg-file");
    this.fileInput.type = "file";
    this.fileInput.multiple = true;
    this.fileInput.hidden = true;
    clip.addEventListener("click", () => this.fileInput.click());
    this.fileInput.addEventListener("change", () => {
      const files = Array.from(this.fileInput.files || []);
      this.fileInput.value = "";
      files.forEach((file) => this.upload(file));
    });
    this.input = el("textarea", "cg-input");
    this.input.rows = 1;
    this.input.placeholder = "Write a message…";
    this.input.setAttribute("aria-label", "Message");
    this.send = el("button", "cg-send");
    this.send.type = "submit";
    this.send.setAttribute("aria-label", "Send");
    this.send.appendChild(icon(ICONS.send));
    this.counter = el("div", "cg-counter");
    this.counter.setAttribute("aria-live", "polite");
    this.counter.hidden = true;
    composer.append(clip, this.fileInput, this.input, this.send);
    composer.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => this.onInput());

    const drop = el("div", "cg-drop", "Drop files to send them");
    drop.hidden = true;
    let depth = 0;
    panel.addEventListener("dragenter", (e) => {
      if (!e.dataTransfer || !Array.from(e.dataTransfer.types).includes("Files")) return;
      e.preventDefault();
      depth++;
      drop.hidden = false;
    });
    panel.addEventListener("dragover", (e) => {
      if (e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files")) e.preventDefault();
    });
    panel.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) drop.hidden = true;
    });
    panel.addEventListener("drop", (e) => {
      e.preventDefault();
      depth = 0;
      drop.hidden = true;
      Array.from((e.dataTransfer && e.dataTransfer.files) || []).forEach((file) => this.upload(file));
    });

    const footer = el("div", "cg-footer");
    footer.append(this.counter, this.error);
    panel.append(header, this.log, footer, composer, drop);
    shadow.appendChild(panel);
    this.panel = panel;

    this.badge = el("span", "cg-badge");
    this.badge.hidden = true;
    this.ctx.launcher.style.setProperty("position", "relative");
    this.ctx.launcher.appendChild(this.badge);
    this.unread = 0;
  }

  applyColors() {
    const colors = this.config.colors || {};
    const names = { bot: "--cg-bot", operator: "--cg-operator", user: "--cg-user", button: "--cg-button", button_text: "--cg-button-text" };
    for (const [key, variable] of Object.entries(names)) {
      if (typeof colors[key] === "string" && colors[key]) this.ctx.host.style.setProperty(variable, colors[key]);
    }
  }

  avatar(who) {
    const avatars = this.config.avatars || {};
    return avatars[who] || `${this.prefix}/avatars/${who}`;
  }

  // ---- open / close ----

  async toggle() {
    if (this.open) this.close();
    else await this.show();
  }

  async show() {
    await this.sheetLoaded;
    this.open = true;
    this.panel.hidden = false;
    this.ctx.launcher.setAttribute("aria-expanded", "true");
    this.ctx.host.classList.add("cg-open");
    this.unread = 0;
    this.badge.hidden = true;
    this.input.focus({ preventScroll: true });
    this.scrollDown();
    try {
      await this.ensureSession();
    } catch (error) {
      this.showError(this.explain(error));
      return;
    }
    this.startStream();
    this.markRead();
    this.scheduleFeedback();
  }

  close() {
    const fb = this.config.feedback || {};
    if (fb.on_close && this.sentSomething && !this.asked && !this.session?.feedback_done) {
      this.asked = true;
      this.askFeedback({ request_id: null, scale: fb.scale || 5, prompt: fb.prompt || "How was this chat?" });
      return; // the first close shows the question; the next one closes
    }
    this.open = false;
    this.panel.hidden = true;
    this.ctx.launcher.setAttribute("aria-expanded", "false");
    this.ctx.host.classList.remove("cg-open");
  }

  // ---- session ----

  async ensureSession() {
    if (this.sessionReady) return this.sessionReady;
    this.sessionReady = this.createSession().catch((error) => {
      this.sessionReady = null;
      throw error;
    });
    return this.sessionReady;
  }

  async createSession() {
    const body = {
      source: this.ctx.source,
      page: { url: location.href, title: document.title },
    };
    if (this.ctx.identity && this.ctx.identity.user_id) {
      body.user_id = this.ctx.identity.user_id;
      if (this.ctx.identity.user_hash) body.user_hash = this.ctx.identity.user_hash;
    }
    const known = this.readSession();
    let answer;
    try {
      answer = await this.call("/sessions", { body: Object.assign({ token: known ? known.token : undefined }, body), auth: false });
    } catch (error) {
      if (!known || error.status !== 401) throw error;
      answer = await this.call("/sessions", { body, auth: false }); // a token from an old secret
    }
    const same = known && known.visitor_id === answer.visitor_id;
    this.session = {
      token: answer.token,
      visitor_id: answer.visitor_id,
      started_at: same && known.started_at ? known.started_at : Date.now(),
      feedback_done: same ? known.feedback_done || [] : [],
      pressed: same ? known.pressed || [] : [],
    };
    this.saveSession();
    // The session's `page` already reported this page; buffered views of other pages follow.
    for (const view of this.ctx.takeViews((v) => this.pageView(v))) if (view.url !== body.page.url) this.pageView(view);
    return this.session;
  }

  async visitorLink(link) {
    await this.ensureSession();
    return withVisitor(link.kind, String(link.url || ""), this.session.visitor_id);
  }

  pageView(view) {
    this.call("/pageviews", { body: view }).catch(() => {});
  }

  // ---- HTTP ----

  async call(path, { body, method = "POST", auth = true, raw = null, type = null } = {}) {
    const headers = {};
    if (auth && this.session) headers.authorization = `Bearer ${this.session.token}`;
    let payload;
    if (raw) {
      payload = raw;
      headers["content-type"] = type || "application/octet-stream";
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers["content-type"] = "application/json";
    }
    const response = await fetch(this.prefix + path, { method, headers, body: payload, credentials: "omit" });
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    if (this.running && !this.state.classList.contains("cg-live")) this.wake(); // the gateway is back
    return data;
  }

  explain(error) {
    if (!(error instanceof ApiError)) return "No connection to the chat. We keep trying…";
    switch (error.code) {
      case "origin_not_allowed":
        return "This chat is not enabled on this website.";
      case "rate_limited":
        return "Too many messages at once — please wait a moment.";
      case "identity_required":
      case "identity_invalid":
        return "Please sign in to the website to chat with us.";
      case "text_too_long":
        return `Messages can be up to ${this.limits.text_max_chars} characters.`;
      case "upload_too_large":
        return `This file is too large${error.detail.limit ? ` (up to ${megabytes(error.detail.limit)})` : ""}.`;
      case "upload_kind_unsupported":
        return "This kind of file cannot be sent here.";
      default:
        return error.message;
    }
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
    clearTimeout(this.errorTimer);
    if (text) this.errorTimer = setTimeout(() => (this.error.hidden = true), 12000);
  }

  // ---- composing and sending ----

  onInput() {
    const input = this.input;
    input.style.setProperty("height", "auto");
    input.style.setProperty("height", Math.min(input.scrollHeight, 140) + "px");
    const max = this.limits.text_max_chars;
    const n = chars(input.value);
    const over = n > max;
    this.counter.hidden = n < max * 0.9;
    this.counter.textContent = over
      ? `${n} / ${max} — too long by ${n - max}; messages can be up to ${max} characters`
      : `${n} / ${max}`;
    this.counter.classList.toggle("cg-over", over);
    this.send.disabled = over;
    this.input.setAttribute("aria-invalid", over ? "true" : "false");
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    const max = this.limits.text_max_chars;
    if (chars(text) > max) {
      this.onInput();
      this.showError(`Your message is ${chars(text)} characters long; the limit is ${max}. Please shorten it.`);
      return;
    }
    this.input.value = "";
    this.onInput();
    this.showError("");
    this.sendMessage({ text });
  }

  async sendMessage({ text, attachments, local }) {
    const clientId = uuid();
    const view = this.render({ from: "visitor", text: text || "", attachments: local || [], client_id: clientId, at: new Date().toISOString() });
    this.setStatus(view, "pending");
    this.sentSomething = true;
    view.request = { client_id: clientId, text: text || undefined, attachments, page: { url: location.href, title: document.title } };
    await this.deliver(view);
  }

  async deliver(view) {
    this.setStatus(view, "pending", true);
    let delay = 1000;
    const started = Date.now();
    for (;;) {
      try {
        await this.ensureSession();
        const answer = await this.call("/messages", { body: view.request });
        this.bind(view, answer.id);
        this.setStatus(view, "stored");
        return;
      } catch (error) {
        const retryable = !(error instanceof ApiError) || error.status >= 500 || error.status === 429 || error.status === 401;
        if (error instanceof ApiError && error.status === 401) this.sessionReady = null;
        if (!retryable || Date.now() - started > 120000) {
          this.setStatus(view, "failed", true);
          view.node.title = this.explain(error) + " Click to try again.";
          this.showError(this.explain(error));
          return;
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 15000);
      }
    }
  }

  async upload(file) {
    const kind = kindOf(file);
    const limit = this.limits[`${kind}_bytes`];
    if (limit === 0 || limit === false) {
      this.showError(`${KIND_LABEL[kind]} cannot be sent in this chat.`);
      return;
    }
    if (typeof limit === "number" && file.size > limit) {
      this.showError(`“${file.name}” is ${megabytes(file.size)} — ${KIND_LABEL[kind].toLowerCase()} can be up to ${megabytes(limit)}.`);
      return;
    }
    const local = [{ kind, name: file.name, size: file.size, mime: file.type, pending: true }];
    const clientId = uuid();
    const view = this.render({ from: "visitor", text: "", attachments: local, client_id: clientId, at: new Date().toISOString() });
    this.setStatus(view, "pending");
    this.sentSomething = true;
    try {
      await this.ensureSession();
      const stored = await this.call(`/uploads?name=${encodeURIComponent(file.name)}`, { raw: file, type: file.type || "application/octet-stream" });
      view.request = { client_id: clientId, attachments: [stored.ref], page: { url: location.href, title: document.title } };
      await this.deliver(view);
    } catch (error) {
      this.setStatus(view, "failed", true);
      view.node.title = this.explain(error);
      this.showError(`“${file.name}”: ${this.explain(error)}`);
    }
  }

  // ---- rendering ----

  bind(view, id) {
    if (!id || view.id === id) return;
    const existing = this.messages.get(id);
    if (existing && existing !== view) {
      existing.node.remove(); // the echo arrived before the POST answer: keep one bubble
      if (STATUS_RANK[existing.status] > STATUS_RANK[view.status]) this.setStatus(view, existing.status);
    }
    view.id = id;
    view.node.dataset.id = id;
    this.messages.set(id, view);
  }

  render(item) {
    const known = (item.id && this.messages.get(item.id)) || (item.client_id && this.messages.get("c:" + item.client_id));
    if (known) {
      if (item.id) this.bind(known, item.id);
      if (item.attachments && item.attachments.length) this.fillAttachments(known, item.attachments);
      return known;
    }
    this.empty.remove();
    const mine = item.from === "visitor";
    const row = el("div", `cg-row cg-${mine ? "mine" : "theirs"} cg-from-${item.from || "operator"}`);
    const avatar = el("img", "cg-avatar");
    avatar.alt = "";
    avatar.src = this.avatar(mine ? "user" : item.from === "bot" ? "bot" : "operator");
    const bubble = el("div", "cg-bubble");
    if (item.reply_to && (item.reply_to.text || item.reply_to.id)) {
      const quote = el("blockquote", "cg-quote");
      const replied = item.reply_to.id && (this.messages.get(item.reply_to.id) || this.messages.get("c:" + item.reply_to.id));
      appendText(quote, item.reply_to.text || (replied ? replied.text : "") || "…");
      bubble.appendChild(quote);
    }
    if (item.text) {
      const body = el("div", "cg-text");
      appendText(body, item.text);
      bubble.appendChild(body);
    }
    const files = el("div", "cg-files");
    bubble.appendChild(files);
    if (!mine && Array.isArray(item.buttons) && item.buttons.length) bubble.appendChild(this.renderButtons(item));
    const meta = el("div", "cg-meta");
    meta.appendChild(el("time", "cg-time", formatTime(item.at)));
    const status = el("span", "cg-status");
    if (mine) meta.appendChild(status);
    bubble.appendChild(meta);
    row.append(avatar, bubble);
    this.log.appendChild(row);
    const view = { node: row, bubble, files, statusNode: status, status: null, id: null, text: item.text || "", from: item.from };
    if (item.client_id) this.messages.set("c:" + item.client_id, view);
    if (item.id) this.bind(view, item.id);
    if (item.attachments && item.attachments.length) this.fillAttachments(view, item.attachments);
    if (mine) {
      row.addEventListener("click", () => {
        if (view.status === "failed" && view.request) this.deliver(view);
      });
    }
    this.scrollDown();
    return view;
  }

  fillAttachments(view, attachments) {
    view.files.textContent = "";
    for (const file of attachments) {
      const chip = el("a", `cg-attachment cg-kind-${file.kind || "file"}`);
      chip.appendChild(icon(ICONS.file));
      const label = el("span", "cg-attachment-name", file.name || file.kind || "file");
      chip.appendChild(label);
      if (file.size) chip.appendChild(el("span", "cg-attachment-size", megabytes(file.size)));
      if (file.url && /^https?:/i.test(new URL(file.url, this.ctx.base).protocol)) {
        const url = new URL(file.url, this.ctx.base).href;
        chip.href = url;
        chip.rel = "noopener noreferrer";
        chip.target = "_blank";
        chip.addEventListener("click", (e) => {
          e.preventDefault();
          this.openFile(url, file.name);
        });
        if (file.kind === "image") this.preview(view, url);
      }
      view.files.appendChild(chip);
    }
  }

  async fetchFile(url) {
    const headers = this.session && url.startsWith(this.ctx.base) ? { authorization: `Bearer ${this.session.token}` } : {};
    const response = await fetch(url, { headers, credentials: "omit" });
    if (!response.ok) throw new ApiError(response.status, null);
    return response.blob();
  }

  async preview(view, url) {
    try {
      const blob = await this.fetchFile(url);
      if (!/^image\/(png|jpeg|gif|webp)$/.test(blob.type)) return;
      const data = await new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result);
        reader.onerror = reject;
        reader.readAsDataURL(blob); // data: URLs pass a host page's `img-src <gateway> data:`
      });
      const img = el("img", "cg-image");
      img.alt = "";
      img.src = data;
      view.files.insertBefore(img, view.files.firstChild);
      this.scrollDown();
    } catch (_) {
      /* the chip stays */
    }
  }

  async openFile(url, name) {
    try {
      const blob = await this.fetchFile(url);
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = name || "file";
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (error) {
      this.showError("The file could not be downloaded.");
    }
  }

  setStatus(view, status, force) {
    if (!force && view.status && status !== "failed") {
      if (view.status === "failed" || (STATUS_RANK[status] ?? 0) <= (STATUS_RANK[view.status] ?? 0)) return;
    }
    view.status = status;
    const node = view.statusNode;
    if (!node) return;
    node.textContent = "";
    const shape = status === "pending" ? "watch" : status === "failed" ? "cross" : STATUS_RANK[status] >= 2 ? "ticks" : "tick";
    node.dataset.status = shape === "ticks" ? "delivered" : shape === "tick" ? "sent" : shape === "watch" ? "pending" : "failed";
    node.appendChild(icon(ICONS[shape], `cg-${shape}`));
    node.title = { watch: "Sending…", tick: "Sent", ticks: "Delivered", cross: "Not sent — click to try again" }[shape];
    node.setAttribute("aria-label", node.title);
    view.node.classList.toggle("cg-failed", status === "failed");
  }

  scrollDown() {
    requestAnimationFrame(() => {
      this.log.scrollTop = this.log.scrollHeight;
    });
  }

  // ---- the stream ----

  startStream() {
    if (this.running) return;
    this.running = true;
    this.streamLoop();
  }

  wake() {
    if (this.wakeUp) this.wakeUp();
  }

  setState(text, live) {
    this.state.textContent = text;
    this.state.classList.toggle("cg-live", !!live);
  }

  async streamLoop() {
    while (this.running) {
      const controller = new AbortController();
      let watchdog = null;
      const feed = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), KA_TIMEOUT_MS);
      };
      try {
        await this.ensureSession();
        feed();
        const response = await fetch(`${this.prefix}/stream`, {
          headers: { authorization: `Bearer ${this.session.token}`, "last-event-id": String(this.lastSeq), accept: "text/event-stream" },
          credentials: "omit",
          cache: "no-store",
          signal: controller.signal,
        });
        if (response.status === 401) {
          this.sessionReady = null; // a token the gateway no longer accepts: a new session
          throw new ApiError(401, null);
        }
        if (!response.ok || !response.body) throw new ApiError(response.status, null);
        this.setState("Online", true);
        this.backoff = 1000;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          feed();
          buffer += value.replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            this.onBlock(block);
          }
        }
      } catch (_) {
        /* dropped: reconnect below */
      } finally {
        clearTimeout(watchdog);
        controller.abort();
      }
      if (!this.running) break;
      this.setState("Reconnecting…", false);
      const delay = this.backoff * (0.5 + Math.random() * 0.5);
      this.backoff = Math.min(this.backoff * 2, 30000);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = null;
    }
  }

  onBlock(block) {
    let id = null;
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") type = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    const seq = id !== null ? Number(id) : null;
    if (seq !== null && Number.isFinite(seq)) {
      if (seq <= this.lastSeq) return; // already seen: never twice
      this.lastSeq = seq;
    }
    let item;
    try {
      item = JSON.parse(data.join("\n"));
    } catch (_) {
      return;
    }
    if (type === "message") this.onMessage(item);
    else if (type === "status") this.onStatus(item);
    else if (type === "feedback_request") this.onFeedbackRequest(item);
  }

  onMessage(item) {
    const view = this.render(item);
    if (item.from === "visitor") {
      this.setStatus(view, item.status || "stored");
      return;
    }
    // The contact centre answered: everything the visitor wrote before has been seen (two ticks).
    for (const earlier of new Set(this.messages.values())) {
      if (earlier.from === "visitor" && earlier.status === "stored") this.setStatus(earlier, "delivered");
    }
    if (!item.id) return;
    this.receipt(item.id, "delivered");
    if (this.open && document.visibilityState === "visible") this.receipt(item.id, "read");
    else if (!this.acked.has(item.id) || this.acked.get(item.id) !== "read") {
      if (!this.open) {
        this.unread++;
        this.badge.textContent = String(this.unread);
        this.badge.hidden = false;
      }
    }
  }

  // ---- buttons ----

  renderButtons(item) {
    const perRow = Math.min(Math.max(Number(item.buttons_per_row) || 1, 1), 4);
    const choices = el("div", "cg-choices cg-buttons");
    choices.style.gridTemplateColumns = `repeat(${perRow}, minmax(0, 1fr))`;
    choices.setAttribute("role", "group");
    const pressed = (this.session && this.session.pressed) || [];
    const buttons = [];
    for (const b of item.buttons) {
      if (b.url) {
        const link = el("a", "cg-choice cg-link", b.title || b.url);
        link.href = b.url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        choices.appendChild(link);
        continue;
      }
      const button = el("button", "cg-choice", b.title || "");
      button.type = "button";
      button.disabled = pressed.includes(item.id);
      button.addEventListener("click", () => this.press(item, b, button, buttons));
      buttons.push(button);
      choices.appendChild(button);
    }
    return choices;
  }

  async press(item, b, button, buttons) {
    buttons.forEach((x) => (x.disabled = true));
    button.classList.add("cg-lit");
    const body = { client_id: uuid(), payload: b.payload, title: b.title, message_id: item.id };
    try {
      await this.ensureSession();
      await this.call("/postbacks", { body });
      this.session.pressed = (this.session.pressed || []).concat(item.id);
      this.saveSession();
    } catch (_) {
      buttons.forEach((x) => (x.disabled = false));
      button.classList.remove("cg-lit");
    }
  }

  onStatus(item) {
    const view = item.id && (this.messages.get(item.id) || this.messages.get("c:" + item.id));
    if (view) this.setStatus(view, item.status);
  }

  // ---- receipts ----

  receipt(id, status) {
    const had = this.acked.get(id);
    if (had === "read" || had === status) return;
    this.acked.set(id, status);
    this.receiptQueue.set(id, status);
    clearTimeout(this.receiptTimer);
    this.receiptTimer = setTimeout(() => this.flushReceipts(), 150);
  }

  markRead() {
    if (!this.open || document.visibilityState !== "visible") return;
    for (const [id, status] of this.acked) if (status !== "read") this.receipt(id, "read");
  }

  async flushReceipts(attempt = 0) {
    if (!this.receiptQueue.size) return;
    const items = Array.from(this.receiptQueue, ([id, status]) => ({ id, status }));
    this.receiptQueue.clear();
    try {
      await this.call("/receipts", { body: { items } });
    } catch (_) {
      for (const { id, status } of items) if (!this.receiptQueue.has(id)) this.receiptQueue.set(id, status);
      if (attempt < 6) setTimeout(() => this.flushReceipts(attempt + 1), 1000 * 2 ** attempt);
    }
  }

  // ---- feedback ----

  scheduleFeedback() {
    const fb = this.config.feedback || {};
    if (!fb.after_seconds || this.feedbackTimer || !this.session) return;
    const due = this.session.started_at + fb.after_seconds * 1000 - Date.now();
    this.feedbackTimer = setTimeout(() => {
      if (this.asked || (this.session.feedback_done || []).includes("auto")) return;
      this.asked = true;
      this.askFeedback({ request_id: null, scale: fb.scale || 5, prompt: fb.prompt || "How was this chat?" });
    }, Math.max(0, due));
  }

  onFeedbackRequest(item) {
    const done = (this.session && this.session.feedback_done) || [];
    if (item.request_id && done.includes(item.request_id)) return;
    this.asked = true;
    this.askFeedback(item);
  }

  askFeedback({ request_id, scale, prompt }) {
    scale = [2, 5, 10].includes(Number(scale)) ? Number(scale) : 5;
    this.empty.remove();
    const card = el("div", `cg-feedback cg-scale-${scale}`);
    card.appendChild(el("div", "cg-feedback-prompt", prompt || "How was this chat?"));
    const choices = el("div", "cg-choices");
    choices.setAttribute("role", "group");
    choices.setAttribute("aria-label", prompt || "Rate this chat");
    const buttons = [];
    for (let score = 1; score <= scale; score++) {
      const button = el("button", "cg-choice");
      button.type = "button";
      button.dataset.score = String(score);
      if (scale === 2) {
        button.textContent = score === 1 ? "👎" : "👍";
        button.setAttribute("aria-label", score === 1 ? "Not helpful" : "Helpful");
      } else if (scale === 5) {
        button.textContent = "★";
        button.classList.add("cg-star");
        button.setAttribute("aria-label", `${score} of 5`);
        button.addEventListener("mouseenter", () => {
          if (!card.classList.contains("cg-answered")) buttons.forEach((b, i) => b.classList.toggle("cg-lit", i < score));
        });
      } else {
        button.textContent = String(score);
        button.setAttribute("aria-label", `${score} of 10`);
      }
      button.addEventListener("click", () => this.answerFeedback(card, buttons, { request_id, scale, score }));
      buttons.push(button);
      choices.appendChild(button);
    }
    choices.addEventListener("mouseleave", () => {
      if (!card.classList.contains("cg-answered")) buttons.forEach((b) => b.classList.remove("cg-lit"));
    });
    card.appendChild(choices);
    this.log.appendChild(card);
    this.scrollDown();
  }

  async answerFeedback(card, buttons, { request_id, scale, score }) {
    card.classList.add("cg-answered"); // keeps the choice lit
    buttons.forEach((b, i) => {
      b.disabled = true;
      b.classList.toggle("cg-lit", scale === 5 ? i < score : i === score - 1);
    });
    try {
      await this.ensureSession();
      const body = { scale, score };
      if (request_id) body.request_id = request_id;
      await this.call("/feedback", { body });
      this.session.feedback_done = (this.session.feedback_done || []).concat(request_id || "auto");
      this.saveSession();
      card.appendChild(el("div", "cg-feedback-thanks", "Thank you for your feedback!"));
      card.dataset.sent = "true";
    } catch (error) {
      card.classList.remove("cg-answered");
      buttons.forEach((b) => (b.disabled = false));
      this.showError(this.explain(error));
    }
  }
}
