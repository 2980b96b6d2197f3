/*! chatgate web widget loader — the snippet's script.
 * Draws the launcher and the messenger-link buttons in a Shadow DOM and nothing else. Before the
 * visitor opens the chat it makes one request (its own config), writes no storage and sets no
 * cookie; the chat UI (widget-ui.js) and its CSS load on the first click. Styles here are set
 * through the CSSOM (allowed by a strict CSP); no inline <style>, no eval. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) return;
  var src = new URL(script.src);
  var match = src.pathname.match(/^(.*)\/web\/([^/]+)\/widget\.js$/);
  if (!match) return;
  var base = src.origin + match[1];
  var account = decodeURIComponent(match[2]);
  var key = "chatgate:" + src.origin + ":" + account;
  if (window["__chatgate:" + account]) return; // the snippet pasted twice
  window["__chatgate:" + account] = true;

  // Page views: kept in memory until a session exists (the UI drains them), sent at once after.
  var views = [];
  var sink = null;
  function pageView() {
    var view = { url: location.href, title: document.title, at: new Date().toISOString() };
    if (sink) sink(view);
    else if (views.length < 50) views.push(view);
  }
  ["pushState", "replaceState"].forEach(function (name) {
    var original = history[name];
    history[name] = function () {
      var result = original.apply(this, arguments);
      setTimeout(pageView, 0);
      return result;
    };
  });
  addEventListener("popstate", pageView);
  addEventListener("hashchange", pageView);

  // The source of this visit, read once now (the landing page is where the loader first ran).
  var params = new URLSearchParams(location.search);
  var utm = {};
  ["source", "medium", "campaign", "term", "content"].forEach(function (name) {
    var value = params.get("utm_" + name);
    if (value) utm[name] = value;
  });
  // Identity verification: the site's server computes user_hash = HMAC-SHA256(secret, user_id)
  // and writes both on the script tag (data-user-id, data-user-hash); never computed here.
  var identity = script.getAttribute("data-user-id")
    ? { user_id: script.getAttribute("data-user-id"), user_hash: script.getAttribute("data-user-hash") || undefined }
    : null;
  var source = { referrer: document.referrer || undefined, landing_url: location.href, utm: utm };

  function stored() {
    try {
      var value = JSON.parse(localStorage.getItem(key) || "null");
      return value && typeof value.token === "string" ? value : null;
    } catch (e) {
      return null;
    }
  }

  // A visitor who already chatted has a session: this page view goes out now (no buffering).
  var session = stored();
  if (session) {
    sink = function (view) {
      fetch(base + "/web/" + encodeURIComponent(account) + "/pageviews", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer " + session.token },
        body: JSON.stringify(view)
      }).catch(function () {});
    };
  }

  function css(el, props) {
    for (var name in props) el.style.setProperty(name, props[name]);
    return el;
  }

  var SVG = "http://www.w3.org/2000/svg";
  function svg(viewBox, parts) {
    var root = document.createElementNS(SVG, "svg");
    root.setAttribute("viewBox", viewBox);
    root.setAttribute("width", "24");
    root.setAttribute("height", "24");
    root.setAttribute("aria-hidden", "true");
    parts.forEach(function (part) {
      var el = document.createElementNS(SVG, part[0]);
      for (var name in part[1]) el.setAttribute(name, part[1][name]);
      root.appendChild(el);
    });
    return root;
  }

  // Our own simple glyphs for the messengers (not the brands' files): a shape and a colour each.
  var W = "#fff";
  var GLYPHS = {
    telegram: ["#229ED9", [["path", { d: "M5 11.5l13-5-2.3 11.3-4-3-2 2 .3-3.2 5.2-4.8-6.5 4z", fill: W }]]],
    whatsapp: ["#25D366", [["path", { d: "M12 5a7 7 0 0 0-6 10.6L5 19l3.5-1A7 7 0 1 0 12 5z", fill: "none", stroke: W, "stroke-width": "1.8" }], ["path", { d: "M9.5 9.5c.3 2 1.8 3.8 4 4.6l.9-1", fill: "none", stroke: W, "stroke-width": "1.6", "stroke-linecap": "round" }]]],
    viber: ["#7360F2", [["path", { d: "M6 7a3 3 0 0 1 3-3h6a3 3 0 0 1 3 3v5a3 3 0 0 1-3 3h-4l-3 3v-3a3 3 0 0 1-2-3z", fill: "none", stroke: W, "stroke-width": "1.8" }], ["path", { d: "M10 8.5c.4 1.8 1.5 3 3.3 3.6", fill: "none", stroke: W, "stroke-width": "1.5", "stroke-linecap": "round" }]]],
    messenger: ["#0A7CFF", [["path", { d: "M12 4.5c-4.3 0-7.5 3-7.5 6.9 0 2.2 1 4 2.7 5.3V20l2.7-1.5c.7.2 1.4.3 2.1.3 4.3 0 7.5-3 7.5-6.9S16.3 4.5 12 4.5z", fill: W }], ["path", { d: "M7.5 13.5l3-3.2 1.8 1.6 3.2-1.8-3 3.3-1.8-1.6z", fill: "#0A7CFF" }]]],
    instagram: ["#D6336C", [["rect", { x: "5", y: "5", width: "14", height: "14", rx: "4", fill: "none", stroke: W, "stroke-width": "1.8" }], ["circle", { cx: "12", cy: "12", r: "3.2", fill: "none", stroke: W, "stroke-width": "1.8" }], ["circle", { cx: "16.2", cy: "7.8", r: "1", fill: W }]]],
    vk: ["#0077FF", [["path", { d: "M5 8h2.2c.5 2.6 1.8 4.3 2.8 4.6V8h2v2.8c1-.1 2-1.4 2.5-2.8h2c-.3 1.7-1.6 3-2.5 3.6 1 .5 2.4 1.8 3 3.4h-2.2c-.5-1.2-1.6-2.3-2.8-2.4V15h-.3C7.5 15 5.3 12.3 5 8z", fill: W }]]],
    line: ["#06C755", [["path", { d: "M12 5c-4.4 0-8 2.8-8 6.3 0 3.1 2.9 5.7 6.7 6.2l-.3 1.8c0 .4.3.6.6.4 2.6-1.4 6-3.9 7.6-6A5.6 5.6 0 0 0 20 11.3C20 7.8 16.4 5 12 5z", fill: W }]]],
    skype: ["#00AFF0", [["circle", { cx: "12", cy: "12", r: "7", fill: "none", stroke: W, "stroke-width": "1.8" }], ["path", { d: "M14.5 9.5c-.6-.8-1.5-1.2-2.6-1.2-1.4 0-2.4.7-2.4 1.7 0 2.3 5.2 1.3 5.2 3.9 0 1.1-1.1 1.9-2.7 1.9-1.2 0-2.2-.5-2.8-1.3", fill: "none", stroke: W, "stroke-width": "1.6", "stroke-linecap": "round" }]]],
    slack: ["#4A154B", [["path", { d: "M10 5v6M14 13v6M5 14h6M13 10h6", stroke: W, "stroke-width": "2.4", "stroke-linecap": "round" }]]],
    wechat: ["#07C160", [["ellipse", { cx: "10", cy: "10", rx: "5.5", ry: "4.5", fill: W }], ["ellipse", { cx: "15", cy: "14.5", rx: "4.5", ry: "3.7", fill: W, stroke: "#07C160", "stroke-width": "1.2" }]]],
    snapchat: ["#F5C400", [["path", { d: "M12 5c2.4 0 4 1.8 4 4v2l1.5-.4c.4.5 0 1-1.2 1.5.5 1.4 1.6 2.4 3 2.8-.3.6-1.3.8-2.2 1-.2.7-.4 1-1 1-.8 0-1.5-.4-2.6-.1-.5.1-.9.7-1.5.7s-1-.6-1.5-.7c-1.1-.3-1.8.1-2.6.1-.6 0-.8-.3-1-1-.9-.2-1.9-.4-2.2-1 1.4-.4 2.5-1.4 3-2.8-1.2-.5-1.6-1-1.2-1.5L8 11V9c0-2.2 1.6-4 4-4z", fill: W }]]]
  };

  var host = document.createElement("div");
  host.setAttribute("data-chatgate", account);
  css(host, { all: "initial", position: "fixed", right: "20px", bottom: "20px", "z-index": "2147483000" });
  var shadow = host.attachShadow({ mode: "open" });
  var dock = css(document.createElement("div"), {
    display: "flex", "flex-direction": "column", "align-items": "center", gap: "10px",
    "font-family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
  });
  shadow.appendChild(dock);

  var links = css(document.createElement("div"), { display: "flex", "flex-direction": "column", gap: "8px" });
  links.setAttribute("part", "messenger-links");
  dock.appendChild(links);

  var launcher = css(document.createElement("button"), {
    width: "58px", height: "58px", "border-radius": "50%", border: "0", padding: "0", cursor: "pointer",
    display: "flex", "align-items": "center", "justify-content": "center",
    background: "#2563eb", color: "#fff", "box-shadow": "0 6px 20px rgba(15,23,42,.25)",
    transition: "transform .15s ease"
  });
  launcher.type = "button";
  launcher.className = "cg-launcher";
  launcher.setAttribute("aria-label", "Open chat");
  var bubble = svg("0 0 24 24", [["path", { d: "M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6c-.5.4-1.3 0-1.3-.6V16A2.5 2.5 0 0 1 4 13.5z", fill: "currentColor" }]]);
  css(bubble, { width: "28px", height: "28px" });
  launcher.appendChild(bubble);
  launcher.addEventListener("mouseenter", function () { css(launcher, { transform: "scale(1.06)" }); });
  launcher.addEventListener("mouseleave", function () { css(launcher, { transform: "none" }); });
  dock.appendChild(launcher);

  var config = null;
  var ui = null;
  var loading = null;

  function messengerButton(link) {
    var glyph = GLYPHS[link.kind] || ["#64748b", [["circle", { cx: "12", cy: "12", r: "5", fill: W }]]];
    var button = css(document.createElement("button"), {
      width: "42px", height: "42px", "border-radius": "50%", border: "0", padding: "0", cursor: "pointer",
      display: "flex", "align-items": "center", "justify-content": "center",
      background: glyph[0], "box-shadow": "0 3px 10px rgba(15,23,42,.2)"
    });
    button.type = "button";
    button.className = "cg-messenger";
    button.setAttribute("data-kind", link.kind);
    button.setAttribute("aria-label", link.label || link.kind);
    button.title = link.label || link.kind;
    button.appendChild(svg("0 0 24 24", glyph[1]));
    button.addEventListener("click", function () {
      // The link carries the visitor id, which needs a session: the click is the visitor's choice.
      var opened = window.open("about:blank", "_blank");
      load().then(function (mod) {
        return mod.visitorLink(link);
      }).then(function (url) {
        if (opened) {
          opened.opener = null;
          opened.location.href = url;
        } else {
          location.href = url;
        }
      }).catch(function () {
        if (opened) opened.close();
      });
    });
    return button;
  }

  function applyColors() {
    var colors = (config && config.colors) || {};
    if (colors.button) css(launcher, { background: colors.button });
    if (colors.button_text) css(launcher, { color: colors.button_text });
  }

  function load() {
    if (!loading) {
      loading = import(base + "/web/assets/widget-ui.js").then(function (mod) {
        ui = mod.mount({
          base: base, account: account, key: key, config: config, shadow: shadow, host: host,
          launcher: launcher, source: source, identity: identity,
          takeViews: function (send) {
            var pending = views;
            views = [];
            sink = send;
            return pending;
          }
        });
        return ui;
      });
      loading.catch(function () { loading = null; });
    }
    return loading;
  }

  launcher.addEventListener("click", function () {
    launcher.setAttribute("aria-busy", "true");
    load().then(function (mod) {
      launcher.removeAttribute("aria-busy");
      mod.toggle();
    }, function () {
      launcher.removeAttribute("aria-busy");
      launcher.title = "The chat could not be loaded. Please try again.";
    });
  });

  fetch(base + "/web/" + encodeURIComponent(account) + "/config", { credentials: "omit" })
    .then(function (response) {
      if (!response.ok) throw new Error("config " + response.status);
      return response.json();
    })
    .then(function (value) {
      config = value;
      applyColors();
      (config.messenger_links || []).forEach(function (link) {
        links.appendChild(messengerButton(link));
      });
      if (config.name) launcher.setAttribute("aria-label", "Open chat: " + config.name);
      pageView();
      mount();
    })
    .catch(function () {
      // A gateway that refuses this origin or is down: no launcher, nothing broken on the page.
    });

  function mount() {
    if (document.body) document.body.appendChild(host);
    else addEventListener("DOMContentLoaded", function () { document.body.appendChild(host); });
  }
})();
