"use strict";

// Every UI string, in both languages. The bot's own wording comes from the server.
const STRINGS = {
  ar: {
    pageTitle: "تواصل — المحادثة",
    orgDefault: "الجمعية",
    subtitle: "تواصل · خدمة المستفيدين",
    toggle: "English",
    transcript: "المحادثة",
    inputLabel: "رسالتك",
    placeholder: "اكتب رسالتك…",
    placeholderPhone: "اكتب رقم جوالك…",
    send: "إرسال",
    attach: "إرفاق ملف",
    attachHint: "أرفق الملف المطلوب",
    fileLabel: "اختر ملفًا لإرفاقه",
    choices: "خيارات الرد",
    sending: "جارٍ الإرسال…",
    failed: "لم تُرسَل",
    networkError: "تعذّر الاتصال. تحقّق من الشبكة ثم أعد المحاولة.",
    serverError: "حدث خطأ في الخادم. أعد المحاولة بعد قليل.",
    requestError: "تعذّر إرسال الرسالة.",
    sessionLost: "انتهت جلسة المحادثة. حدّث الصفحة لبدء جلسة جديدة.",
    tooLarge: "حجم الملف أكبر من المسموح به.",
    badType: "نوع الملف غير مدعوم.",
    retry: "إعادة المحاولة",
    dismiss: "إغلاق",
    options: "الخيارات:",
  },
  en: {
    pageTitle: "Tawasul — Chat",
    orgDefault: "The Association",
    subtitle: "Tawasul · Beneficiary services",
    toggle: "العربية",
    transcript: "Conversation",
    inputLabel: "Your message",
    placeholder: "Type your message…",
    placeholderPhone: "Type your mobile number…",
    send: "Send",
    attach: "Attach a file",
    attachHint: "Attach the requested file",
    fileLabel: "Choose a file to attach",
    choices: "Reply options",
    sending: "Sending…",
    failed: "Not sent",
    networkError: "Could not connect. Check your connection and try again.",
    serverError: "Something went wrong on the server. Please try again shortly.",
    requestError: "The message could not be sent.",
    sessionLost: "This chat session has ended. Reload the page to start a new one.",
    tooLarge: "The file is larger than allowed.",
    badType: "This file type is not supported.",
    retry: "Retry",
    dismiss: "Dismiss",
    options: "Options:",
  },
};

const API = {
  start: "/api/webchat/start",
  messages: "/api/webchat/messages",
  upload: "/api/webchat/upload",
};

const POLL_MS = 3000;
const LANG_KEY = "tawasul.webchat.lang";

class NetworkError extends Error {}

class HttpError extends Error {
  constructor(status, body) {
    super(`HTTP ${status}`);
    this.status = status;
    this.code = body && typeof body.error === "string" ? body.error : "";
    this.serverMessage = body && typeof body.message === "string" ? body.message : "";
    this.serverMessages = body && body.messages && typeof body.messages === "object" ? body.messages : {};
  }
}

const state = {
  lang: "ar",
  cursor: null,
  seen: new Set(),
  queue: [],
  busy: false,
  paused: false,
  started: false,
  starting: false,
  polling: false,
  ask: null,
};

const el = {};

function t(key) {
  return (STRINGS[state.lang] && STRINGS[state.lang][key]) || STRINGS.ar[key] || key;
}

function otherLang(lang) {
  return lang === "ar" ? "en" : "ar";
}

function loadLang() {
  try {
    const saved = window.localStorage.getItem(LANG_KEY);
    if (saved === "ar" || saved === "en") return saved;
  } catch (_) {
    /* storage may be unavailable */
  }
  return "ar";
}

function saveLang(lang) {
  try {
    window.localStorage.setItem(LANG_KEY, lang);
  } catch (_) {
    /* storage may be unavailable */
  }
}

function orgName(lang) {
  const meta = document.querySelector(`meta[name="tawasul-org-${lang}"]`);
  const value = meta && meta.content ? meta.content.trim() : "";
  return value || STRINGS[lang].orgDefault;
}

// ---------------------------------------------------------------- language

function applyLang() {
  const lang = state.lang;
  const root = document.documentElement;
  root.lang = lang;
  root.dir = lang === "ar" ? "rtl" : "ltr";
  document.title = t("pageTitle");
  el.orgName.textContent = orgName(lang);

  for (const node of document.querySelectorAll("[data-i18n]")) {
    node.textContent = t(node.dataset.i18n);
  }
  for (const node of document.querySelectorAll("[data-i18n-aria-label]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nAriaLabel));
  }
  for (const node of document.querySelectorAll("[data-i18n-title]")) {
    node.setAttribute("title", t(node.dataset.i18nTitle));
  }
  for (const node of document.querySelectorAll("[data-status-key]")) {
    node.textContent = t(node.dataset.statusKey);
  }
  for (const node of document.querySelectorAll(".choices")) {
    node.setAttribute("aria-label", t("choices"));
  }
  for (const node of document.querySelectorAll("time[datetime]")) {
    node.textContent = formatTime(node.dateTime);
  }

  // The toggle names the other language, in that language.
  el.toggle.textContent = t("toggle");
  el.toggle.lang = otherLang(lang);
  applyAsk();
}

function switchLang() {
  state.lang = otherLang(state.lang);
  saveLang(state.lang);
  applyLang();
  enqueue({ kind: "command", body: { command: `lang:${state.lang}` } });
}

// ---------------------------------------------------------------- HTTP

async function api(url, { method = "POST", json, form, timeout = 30000 } = {}) {
  const controller = new AbortController();
  const timer = window.setTimeout(() => controller.abort(), timeout);
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json" },
    signal: controller.signal,
  };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }

  let response;
  let body = null;
  try {
    response = await fetch(url, init);
    const text = await response.text();
    if (text) {
      try {
        body = JSON.parse(text);
      } catch (_) {
        body = null;
      }
    }
  } catch (_) {
    throw new NetworkError("network");
  } finally {
    window.clearTimeout(timer);
  }
  if (!response.ok) throw new HttpError(response.status, body);
  return body || {};
}

// ---------------------------------------------------------------- rendering

function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  try {
    return new Intl.DateTimeFormat(state.lang === "ar" ? "ar-SA" : "en", {
      hour: "numeric",
      minute: "2-digit",
    }).format(date);
  } catch (_) {
    return "";
  }
}

function safeUrl(raw) {
  if (typeof raw !== "string" || !raw) return null;
  try {
    const url = new URL(raw, window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch (_) {
    return null;
  }
}

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function paperclipIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "18");
  svg.setAttribute("height", "18");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", "attachment-icon");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "2");
  path.setAttribute("stroke-linecap", "round");
  path.setAttribute("stroke-linejoin", "round");
  path.setAttribute(
    "d",
    "M21 11.5l-8.6 8.6a5.5 5.5 0 0 1-7.8-7.8l8.6-8.6a3.7 3.7 0 0 1 5.2 5.2l-8.6 8.6a1.8 1.8 0 0 1-2.6-2.6l7.9-7.9",
  );
  svg.append(path);
  return svg;
}

function renderAttachment(attachment) {
  const filename = String(attachment.filename || "") || t("attach");
  const type = String(attachment.content_type || "");
  const href = safeUrl(attachment.url);
  const fragment = document.createDocumentFragment();

  if (href && type.startsWith("image/")) {
    const link = make("a", "attachment-image");
    link.href = href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    const img = document.createElement("img");
    img.src = href;
    img.alt = filename;
    img.loading = "lazy";
    link.append(img);
    fragment.append(link);
  }

  const chip = make(href ? "a" : "span", "attachment");
  if (href) {
    chip.href = href;
    chip.target = "_blank";
    chip.rel = "noopener noreferrer";
  }
  chip.dataset.testid = "attachment";
  const name = make("span", "attachment-name", filename);
  name.dir = "auto";
  chip.append(paperclipIcon(), name);
  fragment.append(chip);
  return fragment;
}

// A request's reference (SR-1448-00012) is one word: never broken at its dashes, and read
// left to right inside Arabic.
const REFERENCE = /[A-Z]{2,8}-\d{4}-\d{3,}/g;

function appendText(node, text) {
  let last = 0;
  for (const found of text.matchAll(REFERENCE)) {
    node.append(document.createTextNode(text.slice(last, found.index)));
    const ref = make("bdi", "ref", found[0]); // textContent only
    ref.dir = "ltr";
    node.append(ref);
    last = found.index + found[0].length;
  }
  node.append(document.createTextNode(text.slice(last)));
}

function renderMessage(message) {
  const from = message.from === "user" ? "user" : "bot";
  const item = make("li", `msg msg--${from}`);
  item.dataset.testid = `message-${from}`;
  if (message.id !== undefined && message.id !== null) item.dataset.messageId = String(message.id);

  const bubble = make("div", "bubble");
  const text = typeof message.text === "string" ? message.text : "";
  if (text) {
    const p = make("p", "text"); // text nodes only: never HTML
    appendText(p, text);
    p.dir = "auto";
    p.dataset.testid = "message-text";
    bubble.append(p);
  }
  if (message.attachment && typeof message.attachment === "object") {
    bubble.append(renderAttachment(message.attachment));
  }
  item.append(bubble);

  const choices = Array.isArray(message.choices) ? message.choices : [];
  if (from === "bot" && choices.length) {
    const group = make("div", "choices");
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", t("choices"));
    for (const choice of choices) {
      if (!choice) continue;
      const label = String(choice.label ?? choice.value ?? "");
      if (!label) continue;
      const button = make("button", "choice", label);
      button.type = "button";
      button.dir = "auto";
      button.dataset.testid = "choice";
      button.dataset.value = String(choice.value ?? label);
      button.addEventListener("click", () => onChoice(button));
      group.append(button);
    }
    if (group.childElementCount) item.append(group);
  }

  const meta = make("div", "meta");
  const at = typeof message.at === "string" && message.at ? message.at : new Date().toISOString();
  const time = make("time", "", formatTime(at));
  time.dateTime = at;
  meta.append(time);
  const status = make("span", "status");
  meta.append(status);
  item.append(meta);
  return item;
}

function setStatus(item, key) {
  if (!item) return;
  const status = item.querySelector(".status");
  item.classList.toggle("msg--failed", key === "failed");
  item.dataset.state = key || "sent";
  if (!key) {
    status.className = "status";
    status.textContent = "";
    delete status.dataset.statusKey;
    return;
  }
  status.className = `status status--${key}`;
  status.dataset.statusKey = key;
  status.textContent = t(key);
}

function isNearBottom() {
  const s = el.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
}

function scrollToBottom() {
  el.scroller.scrollTop = el.scroller.scrollHeight;
}

function announce(message) {
  const parts = [];
  if (message.text) parts.push(String(message.text));
  if (message.attachment && message.attachment.filename) parts.push(String(message.attachment.filename));
  const labels = (Array.isArray(message.choices) ? message.choices : [])
    .map((c) => (c ? String(c.label ?? "") : ""))
    .filter(Boolean);
  if (labels.length) parts.push(`${t("options")} ${labels.join("، ")}`);
  if (!parts.length) return;
  const line = make("p", "", parts.join("\n"));
  el.announcer.append(line);
  while (el.announcer.childElementCount > 3) el.announcer.firstElementChild.remove();
}

function disableChoices() {
  for (const button of el.log.querySelectorAll(".choice:not(:disabled)")) {
    button.disabled = true;
  }
}

// Renders a batch from the server. source: "start" | "reply" | "poll".
function ingest(data, source, options = {}) {
  if (data && typeof data.cursor === "number") {
    state.cursor = state.cursor === null ? data.cursor : Math.max(state.cursor, data.cursor);
  }
  const list = data && Array.isArray(data.messages) ? data.messages : [];
  const stick = source !== "poll" || isNearBottom();
  const toAnnounce = [];
  let lastBot = null;

  for (const message of list) {
    if (!message || typeof message !== "object") continue;
    const id = message.id;
    if (id !== undefined && id !== null) {
      if (state.seen.has(id)) continue;
      state.seen.add(id);
    }
    if (message.from === "user") {
      // Our own messages are already on screen; only the history is rendered.
      if (source !== "start") continue;
      disableChoices();
      toAnnounce.length = 0;
      el.log.append(renderMessage(message));
      continue;
    }
    if (options.replacesChoices && Array.isArray(message.choices) && message.choices.length) {
      // A question asked again (e.g. after a language change) replaces the older options.
      disableChoices();
    }
    el.log.append(renderMessage(message));
    toAnnounce.push(message);
    lastBot = message;
  }

  if (lastBot) {
    state.ask = lastBot.ask === "attachment" || lastBot.ask === "phone" ? lastBot.ask : null;
    // The page follows the conversation: a question asked in English is answered in English,
    // and the page's own words and direction go with it (a staff member's reply, polled,
    // carries no language and changes nothing).
    if (source !== "poll" && (lastBot.lang === "ar" || lastBot.lang === "en") && lastBot.lang !== state.lang) {
      state.lang = lastBot.lang;
      saveLang(state.lang);
      applyLang();
    }
    applyAsk();
  }
  for (const message of toAnnounce) announce(message);
  if (stick) scrollToBottom();
}

function applyAsk() {
  const wantsFile = state.ask === "attachment";
  el.attach.classList.toggle("attach--wanted", wantsFile);
  el.attachHint.hidden = !wantsFile;
  if (state.ask === "phone") {
    el.input.inputMode = "tel";
    el.input.setAttribute("autocomplete", "tel");
    el.input.placeholder = t("placeholderPhone");
  } else {
    el.input.inputMode = "text";
    el.input.setAttribute("autocomplete", "off");
    el.input.placeholder = t("placeholder");
  }
}

// ---------------------------------------------------------------- errors

function showError(text, retry) {
  el.errorText.textContent = text;
  el.retry.hidden = !retry;
  el.retry.onclick = retry
    ? () => {
        hideError();
        retry();
        el.input.focus();
      }
    : null;
  el.error.hidden = false;
}

function hideError() {
  el.error.hidden = true;
  el.errorText.textContent = "";
  el.retry.onclick = null;
}

function errorText(error) {
  if (error instanceof HttpError) {
    // The server's words in the page's language (both, for a server that sends one text).
    const own = error.serverMessages[state.lang];
    if (typeof own === "string" && own) return own;
    // Otherwise our own words: the server's single `message` is for whoever reads the API.
    if (error.status === 401) return t("sessionLost");
    if (error.status === 413) return t("tooLarge");
    if (error.status === 415) return t("badType");
    return error.status >= 500 ? t("serverError") : t("requestError");
  }
  return t("networkError");
}

// ---------------------------------------------------------------- sending

function setBusy(busy) {
  document.body.dataset.busy = busy ? "true" : "false";
  el.typing.hidden = !busy;
  if (busy && isNearBottom()) scrollToBottom();
}

// The message's own id, sent with it and again with every retry of it: the server takes a
// message once, so a retry after an answer that was lost on the way back (a dropped
// connection, the timeout, a proxy's 5xx) is not taken as a second message.
function newId() {
  const c = window.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID(); // secure pages only
  if (c && typeof c.getRandomValues === "function") {
    return Array.from(c.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  }
  const part = () => Math.random().toString(36).slice(2, 10).padEnd(8, "0");
  return `${Date.now().toString(36)}-${part()}${part()}${part()}`;
}

function enqueue(item) {
  if (item.bubble) setStatus(item.bubble, "sending");
  item.id = newId();
  state.queue.push(item);
  pump();
}

async function pump() {
  if (state.busy || state.paused || !state.started) return;
  const item = state.queue[0];
  if (!item) return;

  state.busy = true;
  setBusy(true);
  let keepGoing = true;
  try {
    let data;
    if (item.kind === "upload") {
      const form = new FormData();
      form.append("file", item.file, item.file.name);
      if (item.text) form.append("text", item.text);
      form.append("client_id", item.id);
      data = await api(API.upload, { form, timeout: 120000 });
    } else {
      data = await api(API.messages, { json: { ...item.body, client_id: item.id } });
    }
    state.queue.shift();
    setStatus(item.bubble, null);
    hideError();
    ingest(data, "reply", { replacesChoices: item.kind === "command" });
  } catch (error) {
    if (error instanceof HttpError && error.status < 500) {
      // The server refused this one (e.g. 413/415): retrying would not help.
      state.queue.shift();
      setStatus(item.bubble, "failed");
      showError(errorText(error), null);
    } else {
      state.paused = true;
      keepGoing = false;
      setStatus(item.bubble, "failed");
      showError(errorText(error), () => {
        state.paused = false;
        for (const queued of state.queue) if (queued.bubble) setStatus(queued.bubble, "sending");
        pump();
      });
    }
  } finally {
    state.busy = false;
    setBusy(false);
  }
  if (keepGoing) pump();
}

function addOwnMessage(text, file) {
  disableChoices();
  const message = { from: "user", text, at: new Date().toISOString() };
  if (file) message.attachment = { filename: file.name, content_type: file.type, url: "" };
  const item = renderMessage(message);
  el.log.append(item);
  scrollToBottom();
  return item;
}

function sendText(text) {
  const value = text.trim();
  if (!value) return;
  const bubble = addOwnMessage(value, null);
  enqueue({ kind: "text", body: { text: value }, bubble });
}

function sendFile(file) {
  const text = el.input.value.trim();
  el.input.value = "";
  autosize();
  const bubble = addOwnMessage(text, file);
  enqueue({ kind: "upload", file, text, bubble });
}

function onChoice(button) {
  if (button.disabled) return;
  button.classList.add("choice--chosen");
  sendText(button.textContent || "");
  el.input.focus();
}

function autosize() {
  el.input.style.height = "auto";
  el.input.style.height = `${Math.min(el.input.scrollHeight + 3, 140)}px`;
}

// ---------------------------------------------------------------- start & poll

async function start() {
  if (state.started || state.starting) return;
  state.starting = true;
  hideError();
  setBusy(true);
  try {
    const data = await api(API.start, { json: { lang: state.lang } });
    ingest(data, "start");
    state.started = true;
  } catch (error) {
    showError(errorText(error), start);
  } finally {
    state.starting = false;
    setBusy(false);
  }
  if (state.started) pump();
}

async function poll() {
  if (!state.started || state.busy || state.polling) return;
  if (document.visibilityState !== "visible") return;
  state.polling = true;
  try {
    const after = encodeURIComponent(String(state.cursor ?? 0));
    const data = await api(`${API.messages}?after=${after}`, { method: "GET", timeout: 15000 });
    ingest(data, "poll");
  } catch (_) {
    /* polling is best effort; the next tick tries again */
  } finally {
    state.polling = false;
  }
}

// ---------------------------------------------------------------- wiring

function init() {
  el.log = document.getElementById("log");
  el.scroller = document.getElementById("scroller");
  el.typing = document.getElementById("typing");
  el.announcer = document.getElementById("announcer");
  el.error = document.getElementById("error");
  el.errorText = document.getElementById("error-text");
  el.retry = document.getElementById("retry");
  el.errorClose = document.getElementById("error-close");
  el.form = document.getElementById("composer");
  el.input = document.getElementById("input");
  el.send = document.getElementById("send");
  el.attach = document.getElementById("attach");
  el.attachHint = document.getElementById("attach-hint");
  el.attachHintButton = document.getElementById("attach-hint-button");
  el.file = document.getElementById("file");
  el.toggle = document.getElementById("lang-toggle");
  el.orgName = document.getElementById("org-name");

  state.lang = loadLang();
  applyLang();

  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = el.input.value;
    el.input.value = "";
    autosize();
    sendText(text);
    el.input.focus();
  });

  el.input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    el.form.requestSubmit();
  });
  el.input.addEventListener("input", autosize);

  const pickFile = () => el.file.click();
  el.attach.addEventListener("click", pickFile);
  el.attachHintButton.addEventListener("click", pickFile);
  el.file.addEventListener("change", () => {
    const file = el.file.files && el.file.files[0];
    el.file.value = "";
    if (file) sendFile(file);
    el.input.focus();
  });

  el.toggle.addEventListener("click", switchLang);
  el.errorClose.addEventListener("click", () => {
    hideError();
    el.input.focus();
  });

  window.setInterval(poll, POLL_MS);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") poll();
  });

  el.input.focus();
  start();
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", init);
} else {
  init();
}
