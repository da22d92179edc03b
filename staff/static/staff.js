// The console's little script: live regions over server-sent events, canned answers,
// confirmations. Every fragment is rendered (and escaped) by the server.
(function () {
  "use strict";

  function refresh(region) {
    return fetch(region.dataset.fragment, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    }).then(function (response) {
      if (response.status === 401 || response.redirected) {
        window.location.reload();
        return;
      }
      if (!response.ok) return;
      return response.text().then(function (html) {
        var scroller = region.classList.contains("history-scroll") ? region : null;
        var atBottom = scroller &&
          scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
        replaceChanged(region, html);
        if (scroller && atBottom) scroller.scrollTop = scroller.scrollHeight;
        showWaiting();
      });
    });
  }

  // Only the items that changed are replaced, so that a live region (the conversation's
  // history, aria-live) announces the new message, not the whole history again.
  function replaceChanged(region, html) {
    var fresh = document.createElement("div");
    fresh.innerHTML = html;
    var oldList = region.firstElementChild;
    var newList = fresh.firstElementChild;
    if (!oldList || !newList || fresh.children.length !== 1 || region.children.length !== 1 ||
        oldList.tagName !== newList.tagName || oldList.className !== newList.className) {
      region.innerHTML = html;
      return;
    }
    var incoming = Array.prototype.slice.call(newList.children);
    incoming.forEach(function (item, i) {
      var current = oldList.children[i];
      if (!current) oldList.appendChild(item);
      else if (!current.isEqualNode(item)) oldList.replaceChild(item, current);
    });
    while (oldList.children.length > incoming.length) oldList.removeChild(oldList.lastElementChild);
  }

  // The number waiting leads the tab's title, so a console in a background tab still says
  // that someone needs an answer.
  var baseTitle = document.title;
  function showWaiting() {
    var count = document.querySelector("[data-testid='waiting-count']");
    var n = count ? parseInt(count.textContent, 10) : 0;
    document.title = n > 0 ? "(" + n + ") " + baseTitle : baseTitle;
  }

  function setState(value) {
    var badge = document.getElementById("live-state");
    if (badge) badge.dataset.liveState = value;
  }

  function composerBusy() {
    var box = document.querySelector("[data-testid='reply-text'], #note-text");
    return box && box.value.trim() !== "";
  }

  function live(region) {
    if (!window.EventSource) {
      window.setInterval(function () { refresh(region); }, 5000);
      return;
    }
    var source = new EventSource(region.dataset.events);
    source.onopen = function () { setState("open"); };
    source.onerror = function () {
      setState(source.readyState === 2 ? "lost" : "connecting");
      // Refused for good (the session ended: it ran out, or the account was disabled): the
      // region's own fetch finds out and takes the page to the sign-in form, which says why.
      if (source.readyState === 2) refresh(region);
    };
    source.addEventListener("changed", function () { refresh(region); });
    source.addEventListener("history", function () { refresh(region); });
    source.addEventListener("status", function () {
      // Someone else moved the conversation: show the new actions, unless a reply is
      // being typed, in which case say so instead of throwing it away.
      if (composerBusy()) {
        var banner = document.getElementById("changed-banner");
        if (banner) banner.hidden = false;
      } else {
        window.location.reload();
      }
    });
  }

  function insertAtCursor(box, text) {
    var start = box.selectionStart || 0;
    var end = box.selectionEnd || 0;
    var before = box.value.slice(0, start);
    var spacer = before && !/\s$/.test(before) ? "\n" : "";
    box.value = before + spacer + text + box.value.slice(end);
    var caret = (before + spacer + text).length;
    box.focus();
    box.setSelectionRange(caret, caret);
  }

  // Drafts: what is typed in a reply, a note or a status message is kept in this tab
  // (sessionStorage) for its page until it is sent, so that a session that ended, a refused
  // form or a reload does not throw it away. A page that shows the result of a send without
  // an error (nor the sign-in form, an error page, or "the conversation changed") clears the
  // drafts that were sent.
  var SENT = "tawasul.sent";
  function draftKey(box) {
    return "tawasul.draft:" + window.location.pathname + ":" + (box.id || box.name);
  }
  function storage() {
    try { return window.sessionStorage; } catch (e) { return null; }
  }
  function keepDrafts(store) {
    var sent = store.getItem(SENT);
    if (sent === null) return;
    store.removeItem(SENT);
    var refused = document.querySelector(
      ".login-page, [data-testid='flash-error'], [data-testid='error-page'], [data-testid='moved-page']"
    );
    if (refused) return;
    JSON.parse(sent).forEach(function (key) { store.removeItem(key); });
  }
  function drafts() {
    var store = storage();
    if (!store) return;
    keepDrafts(store);
    document.querySelectorAll("textarea[data-draft]").forEach(function (box) {
      var key = draftKey(box);
      var kept = store.getItem(key);
      if (kept && !box.value) {
        box.value = kept;
        box.dispatchEvent(new Event("input"));
      }
      box.addEventListener("input", function () {
        if (box.value.trim()) store.setItem(key, box.value);
        else store.removeItem(key);
      });
      if (box.form) {
        box.form.addEventListener("submit", function () {
          var keys = JSON.parse(store.getItem(SENT) || "[]");
          if (keys.indexOf(key) < 0) keys.push(key);
          store.setItem(SENT, JSON.stringify(keys));
        });
      }
    });
  }

  // A box that follows the direction of what is typed in it (dir="auto") lays an empty box's
  // placeholder out left to right; it takes the page's direction until something is typed.
  function placeholderDirection(box) {
    function update() {
      box.dir = box.value ? "auto" : document.documentElement.dir || "auto";
    }
    box.addEventListener("input", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("textarea[dir='auto'], input[dir='auto']").forEach(placeholderDirection);
    drafts();
    // A page rendered by a refused form shows the address of the page it stands for, so that a
    // reload does not post the form again.
    var replace = document.querySelector("[data-replace-url]");
    if (replace && window.history.replaceState) {
      window.history.replaceState(null, "", replace.dataset.replaceUrl);
    }
    document.querySelectorAll("[data-live]").forEach(live);
    showWaiting();

    document.querySelectorAll(".history-scroll").forEach(function (el) {
      el.scrollTop = el.scrollHeight;
    });

    document.querySelectorAll("select[data-canned]").forEach(function (select) {
      select.addEventListener("change", function () {
        var option = select.options[select.selectedIndex];
        var box = select.form && select.form.querySelector("textarea");
        if (option && option.dataset.text && box) insertAtCursor(box, option.dataset.text);
        select.selectedIndex = 0;
      });
    });

    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });

    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.addEventListener("click", function () { window.print(); });
    });

    // Ctrl/Cmd+Enter sends the reply.
    var reply = document.querySelector("[data-testid='reply-text']");
    if (reply) {
      reply.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          reply.form.requestSubmit();
        }
      });
    }

    // A form is sent once: a second click while the page loads does nothing.
    document.querySelectorAll("form[method='post']").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (event.defaultPrevented) return;
        if (form.dataset.sent) { event.preventDefault(); return; }
        form.dataset.sent = "1";
      });
    });
  });
})();
