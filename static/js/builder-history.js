// Undo/redo over every change of the session (snapshots of the flow document), and the clipboard
// of nodes, kept in localStorage so that a copy in one flow pastes into another.
(function () {
  "use strict";

  var LIMIT = 200;
  // Typing into one field within this many milliseconds is one step of the history.
  var MERGE_MS = 1200;

  function History(onChange) {
    this.undos = [];
    this.redos = [];
    this.onChange = onChange || function () {};
    this.lastKey = null;
    this.lastAt = 0;
  }

  // Call before changing the document: `snapshot` is the document as it is now. Successive
  // records with the same `key` (the same field being typed into) merge into one.
  History.prototype.record = function (snapshot, key) {
    var now = Date.now();
    if (key && key === this.lastKey && now - this.lastAt < MERGE_MS) {
      this.lastAt = now;
      return;
    }
    this.lastKey = key || null;
    this.lastAt = now;
    this.undos.push(snapshot);
    if (this.undos.length > LIMIT) this.undos.shift();
    this.redos = [];
    this.onChange(this);
  };

  History.prototype.undo = function (current) {
    if (!this.undos.length) return null;
    this.redos.push(current);
    this.lastKey = null;
    var snapshot = this.undos.pop();
    this.onChange(this);
    return snapshot;
  };

  History.prototype.redo = function (current) {
    if (!this.redos.length) return null;
    this.undos.push(current);
    this.lastKey = null;
    var snapshot = this.redos.pop();
    this.onChange(this);
    return snapshot;
  };

  var CLIPBOARD_KEY = "flowbuilder.clipboard";

  // What was copied: {steps, edges between them, layout, the connection aliases they use}.
  function copy(piece) {
    var text = JSON.stringify(piece);
    try { window.localStorage.setItem(CLIPBOARD_KEY, text); } catch (e) { /* private mode */ }
    copy.memory = text;
  }

  function pasted() {
    var text = null;
    try { text = window.localStorage.getItem(CLIPBOARD_KEY); } catch (e) { /* private mode */ }
    text = text || copy.memory;
    if (!text) return null;
    try { return JSON.parse(text); } catch (e) { return null; }
  }

  window.FlowBuilderHistory = { History: History, copy: copy, pasted: pasted };
})();
