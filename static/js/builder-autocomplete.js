// Autocomplete in template fields: after "{{" it offers the paths a template can read —
// event.… (from the test panel's event), steps.<id>.… (from the last test run's outputs, and
// every step's id) and settings.… — each with a preview of the value it gives.
(function () {
  "use strict";

  var MAX = 8;
  var OPEN = /\{\{\s*([A-Za-z0-9_.]*)$/;

  function preview(value) {
    if (value === undefined) return "";
    var text = typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value);
    if (text === undefined) return "";
    return text.length > 60 ? text.slice(0, 57) + "…" : text;
  }

  // path -> value for an object and what it holds, a few levels deep.
  function flatten(prefix, value, into, depth) {
    into[prefix] = value;
    if (depth > 3 || !value || typeof value !== "object" || Array.isArray(value)) return;
    Object.keys(value).slice(0, 50).forEach(function (key) {
      if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) flatten(prefix + "." + key, value[key], into, depth + 1);
    });
  }

  function parse(text) {
    try { return JSON.parse(text); } catch (e) { return undefined; }
  }

  // doc(): the flow document; panel: the test run panel (its event editor and run output).
  function Autocomplete(container, doc, panel) {
    this.container = container;
    this.doc = doc;
    this.panel = panel;
    this.list = document.createElement("ul");
    this.list.id = "template-suggestions";
    this.list.className = "suggestions";
    this.list.setAttribute("role", "listbox");
    this.list.setAttribute("aria-label", "Template paths");
    this.list.hidden = true;
    this.field = null;
    this.active = 0;
    this.items = [];
    var self = this;
    container.addEventListener("input", function (e) { if (e.target.matches("[data-templated]")) self.update(e.target); });
    container.addEventListener("keydown", function (e) { self.key(e); }, true);
    container.addEventListener("focusout", function () { setTimeout(function () { self.close(); }, 150); });
    this.list.addEventListener("mousedown", function (e) {
      var li = e.target.closest("li");
      if (!li) return;
      e.preventDefault();
      self.active = Number(li.dataset.index);
      self.accept();
    });
  }

  Autocomplete.prototype.paths = function () {
    var doc = this.doc();
    var paths = {};
    var editor = this.panel.querySelector("#event-json");
    var event = editor ? parse(editor.value) : undefined;
    if (event !== undefined) flatten("event", event, paths, 0);
    doc.steps.forEach(function (s) { paths["steps." + s.id] = undefined; });
    Array.prototype.slice.call(this.panel.querySelectorAll('li.step[id*="-item-"]')).forEach(function (li) {
      var pres = li.querySelectorAll(".io pre");
      var output = pres.length ? parse(pres[pres.length - 1].textContent) : undefined;
      if (output !== undefined) flatten("steps." + li.id.split("-item-")[1], output, paths, 0);
    });
    Object.keys(doc.settings || {}).forEach(function (name) { paths["settings." + name] = doc.settings[name]; });
    return paths;
  };

  Autocomplete.prototype.update = function (field) {
    var before = field.value.slice(0, field.selectionStart);
    var match = OPEN.exec(before);
    if (!match) return this.close();
    var typed = match[1].toLowerCase();
    var paths = this.paths();
    this.items = Object.keys(paths).filter(function (p) {
      return p.toLowerCase().indexOf(typed) === 0 && p.toLowerCase() !== typed;
    }).sort().slice(0, MAX).map(function (p) { return { path: p, value: paths[p] }; });
    if (!this.items.length) return this.close();
    this.field = field;
    this.typed = match[1];
    this.active = 0;
    this.render();
  };

  Autocomplete.prototype.render = function () {
    var self = this;
    var field = this.field;
    this.list.innerHTML = "";
    this.items.forEach(function (item, i) {
      var li = document.createElement("li");
      li.id = "suggestion-" + i;
      li.dataset.index = i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", i === self.active ? "true" : "false");
      var path = document.createElement("code");
      path.textContent = item.path;
      li.appendChild(path);
      var value = preview(item.value);
      if (value) {
        var shown = document.createElement("span");
        shown.className = "suggestion-value";
        shown.textContent = value;
        li.appendChild(shown);
      }
      self.list.appendChild(li);
    });
    field.parentNode.insertBefore(this.list, field.nextSibling);
    this.list.hidden = false;
    field.setAttribute("aria-autocomplete", "list");
    field.setAttribute("aria-controls", this.list.id);
    field.setAttribute("aria-expanded", "true");
    field.setAttribute("aria-activedescendant", "suggestion-" + this.active);
  };

  Autocomplete.prototype.close = function () {
    if (this.field) {
      this.field.setAttribute("aria-expanded", "false");
      this.field.removeAttribute("aria-activedescendant");
    }
    this.list.hidden = true;
    this.field = null;
  };

  Autocomplete.prototype.key = function (e) {
    if (!this.field || this.list.hidden || e.target !== this.field) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      var n = this.items.length;
      this.active = (this.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      this.render();
    } else if (e.key === "Enter" || e.key === "Tab") {
      e.preventDefault();
      this.accept();
    } else if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      this.close();
    }
  };

  // Put the chosen path in place of what was typed, closing the expression if it is not yet.
  Autocomplete.prototype.accept = function () {
    var field = this.field;
    var item = this.items[this.active];
    if (!field || !item) return;
    var at = field.selectionStart;
    var start = at - this.typed.length;
    var after = field.value.slice(at);
    var closing = /^\s*\}\}/.test(after) ? "" : " }}";
    field.value = field.value.slice(0, start) + item.path + closing + after;
    var caret = start + item.path.length + closing.length;
    field.setSelectionRange(caret, caret);
    this.close();
    field.focus();
    field.dispatchEvent(new Event("input", { bubbles: true }));
  };

  window.FlowBuilderAutocomplete = { Autocomplete: Autocomplete };
})();
