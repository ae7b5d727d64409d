// The builder canvas: nodes for the trigger and steps, edges between them, a node form from the
// server for the selected node. The flow document is the state; serialize() hands it to htmx.
(function () {
  "use strict";

  var NODE_W = 190;
  var NODE_H = 60;
  var GRID = 10;
  var STEP_ID = /^[a-z][a-z0-9_]{0,62}$/;

  var root, canvas, svg, inspector, dirtyLabel;
  var doc, catalog;
  var selected = null;
  var selectedEdge = null;
  var errors = [];
  var editor = null;
  var formFor = null;

  function $(sel, el) { return (el || document).querySelector(sel); }
  function $all(sel, el) { return Array.prototype.slice.call((el || document).querySelectorAll(sel)); }

  function announce(text) {
    dirtyLabel.textContent = text;
  }

  function markDirty() {
    announce("Unsaved changes");
  }

  function blockTitle(kind) {
    return (catalog[kind] && catalog[kind].title) || kind;
  }

  function nodeIds() {
    return ["trigger"].concat(doc.steps.map(function (s) { return s.id; }));
  }

  function stepById(id) {
    if (id === "trigger") return { id: "trigger", kind: doc.trigger.kind, config: doc.trigger.config || {} };
    return doc.steps.find(function (s) { return s.id === id; }) || null;
  }

  function position(id) {
    doc.layout = doc.layout || {};
    if (!doc.layout[id]) {
      var index = nodeIds().indexOf(id);
      doc.layout[id] = { x: 40 + index * (NODE_W + 60), y: 120 + (index % 2) * 40 };
    }
    return doc.layout[id];
  }

  // Steps run in the order the edges give; ties keep the list order (as the compiler does).
  function orderedSteps() {
    var ids = doc.steps.map(function (s) { return s.id; });
    var indegree = {};
    ids.forEach(function (id) { indegree[id] = 0; });
    doc.edges.forEach(function (e) { if (e[1] in indegree && e[0] !== e[1]) indegree[e[1]] += 1; });
    var remaining = Object.assign({}, indegree);
    doc.edges.forEach(function (e) { if (e[0] === "trigger" && e[1] in remaining) remaining[e[1]] -= 1; });
    var order = [];
    var ready = ids.filter(function (id) { return remaining[id] === 0; });
    while (ready.length) {
      ready.sort(function (a, b) { return ids.indexOf(a) - ids.indexOf(b); });
      var current = ready.shift();
      order.push(current);
      doc.edges.forEach(function (e) {
        if (e[0] === current && e[1] in remaining) {
          remaining[e[1]] -= 1;
          if (remaining[e[1]] === 0) ready.push(e[1]);
        }
      });
    }
    ids.forEach(function (id) { if (order.indexOf(id) < 0) order.push(id); });
    return order.map(stepById);
  }

  function serialize() {
    var name = $("#flow-name").value.trim();
    if (name) doc.name = name;
    var layout = {};
    nodeIds().forEach(function (id) { layout[id] = position(id); });
    doc.layout = layout;
    doc.steps = orderedSteps();
    return JSON.stringify(doc);
  }

  // ---- Rendering -------------------------------------------------------------------------

  function errorsFor(id) {
    return errors.filter(function (e) { return e.step === id; });
  }

  function renderNodes() {
    $all(".node", canvas).forEach(function (el) { el.remove(); });
    nodeIds().forEach(function (id) {
      var step = stepById(id);
      var pos = position(id);
      var el = document.createElement("div");
      var problems = errorsFor(id).length;
      el.className = "node" + (id === "trigger" ? " trigger" : "") + (id === selected ? " selected" : "") +
        (problems ? " has-errors" : "");
      el.id = "node-" + id;
      el.dataset.id = id;
      el.tabIndex = 0;
      el.setAttribute("role", "button");
      el.setAttribute("aria-pressed", id === selected ? "true" : "false");
      el.setAttribute("aria-label", (id === "trigger" ? "Trigger: " : "Step " + id + ": ") +
        blockTitle(step.kind) + (problems ? ", " + problems + " problem" + (problems > 1 ? "s" : "") : ""));
      el.style.left = pos.x + "px";
      el.style.top = pos.y + "px";
      el.innerHTML = '<span class="port in" aria-hidden="true"></span>' +
        '<span class="node-title"></span><span class="node-kind"></span>' +
        (problems ? '<span class="node-errors">' + problems + " problem" + (problems > 1 ? "s" : "") + "</span>" : "") +
        '<span class="port out" aria-hidden="true" title="Drag to another node to connect"></span>';
      $(".node-title", el).textContent = id === "trigger" ? "Trigger" : (step.name || id);
      $(".node-kind", el).textContent = blockTitle(step.kind);
      canvas.appendChild(el);
    });
    renderEdges();
  }

  function anchor(id, side) {
    var pos = position(id);
    var el = document.getElementById("node-" + id);
    var h = el ? el.offsetHeight : NODE_H;
    var w = el ? el.offsetWidth : NODE_W;
    return side === "out" ? { x: pos.x + w, y: pos.y + h / 2 } : { x: pos.x - 9, y: pos.y + h / 2 };
  }

  function curve(a, b) {
    var dx = Math.max(40, Math.abs(b.x - a.x) / 2);
    return "M" + a.x + "," + a.y + " C" + (a.x + dx) + "," + a.y + " " + (b.x - dx) + "," + b.y + " " + b.x + "," + b.y;
  }

  function renderEdges() {
    var ns = "http://www.w3.org/2000/svg";
    svg.innerHTML = "";
    doc.edges.forEach(function (edge, index) {
      if (!document.getElementById("node-" + edge[0]) || !document.getElementById("node-" + edge[1])) return;
      var d = curve(anchor(edge[0], "out"), anchor(edge[1], "in"));
      var hit = document.createElementNS(ns, "path");
      hit.setAttribute("d", d);
      hit.setAttribute("class", "edge-hit");
      hit.dataset.index = index;
      var line = document.createElementNS(ns, "path");
      line.setAttribute("d", d);
      line.setAttribute("class", "edge" + (selectedEdge === index ? " selected" : ""));
      line.setAttribute("marker-end", "url(#arrow)");
      svg.appendChild(line);
      svg.appendChild(hit);
    });
    var defs = document.createElementNS(ns, "defs");
    defs.innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker>';
    svg.appendChild(defs);
  }

  // ---- Selection and the node form ---------------------------------------------------------

  // The side column shows either the selected node's form or the test run panel.
  function showTestPanel(show) {
    var panel = $("#test-panel");
    panel.hidden = !show;
    inspector.hidden = show;
    $("#toggle-test").setAttribute("aria-expanded", String(show));
    if (show) $("#sample").focus();
  }

  function select(id) {
    if (id) showTestPanel(false);
    selected = id;
    selectedEdge = null;
    $("#edge-actions").hidden = true;
    $all(".node", canvas).forEach(function (el) {
      var on = el.dataset.id === id;
      el.classList.toggle("selected", on);
      el.setAttribute("aria-pressed", on ? "true" : "false");
    });
    renderEdges();
    if (id) loadForm(id);
  }

  function loadForm(id) {
    var step = stepById(id);
    if (!step) return;
    formFor = id;
    var payload = { id: step.id, kind: step.kind, config: step.config || {} };
    ["grants", "limits", "connection", "name"].forEach(function (k) { if (step[k] !== undefined) payload[k] = step[k]; });
    htmx.ajax("POST", root.dataset.nodeUrl, {
      target: "#inspector",
      swap: "innerHTML",
      values: { step: JSON.stringify(payload), errors: JSON.stringify(errorsFor(id)) }
    });
  }

  function readParam(el) {
    var type = el.dataset.type;
    if (type === "boolean") return el.checked;
    if (type === "integer" || type === "number") {
      if (el.value === "") return null;
      var n = Number(el.value);
      return isNaN(n) ? el.value : n;
    }
    if (type === "list") return el.value.split("\n").map(function (s) { return s.trim(); }).filter(Boolean);
    if (type === "json") {
      if (el.value.trim() === "") return null;
      try {
        el.setCustomValidity("");
        return JSON.parse(el.value);
      } catch (e) {
        el.setCustomValidity("Not valid JSON yet: " + e.message);
        return el.value;
      }
    }
    return el.value;
  }

  function formChanged(event) {
    var form = $("#node-form");
    if (!form || !selected) return;
    var target = event.target;
    var step = stepById(selected);
    if (target.matches("[data-trigger-kind]")) {
      var defaults = (catalog[target.value] && catalog[target.value].defaults) || {};
      doc.trigger = { kind: target.value, config: JSON.parse(JSON.stringify(defaults)) };
      markDirty();
      renderNodes();
      loadForm("trigger");
      return;
    }
    if (target.matches("[data-step-id]")) {
      if (event.type === "change") renameStep(selected, target);
      return;
    }
    if (selected === "trigger") {
      doc.trigger.config = doc.trigger.config || {};
      step = doc.trigger;
    }
    step.config = step.config || {};
    $all("[data-param]", form).forEach(function (el) {
      var value = readParam(el);
      if (value === null || value === "") delete step.config[el.dataset.param];
      else step.config[el.dataset.param] = value;
    });
    if ($("[data-grant]", form)) {
      step.grants = $all("[data-grant]", form).filter(function (el) { return el.checked; })
        .map(function (el) { return el.value; });
      var limits = {};
      $all("[data-limit]", form).forEach(function (el) {
        if (el.value !== "") limits[el.dataset.limit] = Number(el.value);
      });
      if (Object.keys(limits).length) step.limits = limits; else delete step.limits;
    }
    var conn = $("[data-connection]", form);
    if (conn) { if (conn.value) step.connection = conn.value; else delete step.connection; }
    if (target.matches("[data-incoming]")) {
      var from = target.value;
      if (target.checked) addEdge(from, selected); else removeEdge(from, selected);
    }
    markDirty();
  }

  function renameStep(oldId, input) {
    var newId = input.value.trim();
    var problem = "";
    if (!STEP_ID.test(newId) || newId === "trigger") {
      problem = "Use lowercase letters, digits and underscores, starting with a letter.";
    } else if (newId !== oldId && stepById(newId)) {
      problem = "Another step already has the id “" + newId + "”.";
    }
    input.setCustomValidity(problem);
    input.reportValidity();
    if (problem || newId === oldId) return;
    stepById(oldId).id = newId;
    doc.edges = doc.edges.map(function (e) {
      return [e[0] === oldId ? newId : e[0], e[1] === oldId ? newId : e[1]];
    });
    doc.layout[newId] = doc.layout[oldId];
    delete doc.layout[oldId];
    selected = newId;
    markDirty();
    renderNodes();
    loadForm(newId);
  }

  // "Runs after" checkboxes: the keyboard way to connect nodes.
  function fillEdgesSlot() {
    var slot = $("[data-edges-slot]", inspector);
    if (!slot || !selected || selected === "trigger") return;
    var fieldset = document.createElement("fieldset");
    fieldset.className = "incoming";
    var legend = document.createElement("legend");
    legend.textContent = "Runs after";
    fieldset.appendChild(legend);
    nodeIds().filter(function (id) { return id !== selected; }).forEach(function (id) {
      var label = document.createElement("label");
      label.className = "check";
      var box = document.createElement("input");
      box.type = "checkbox";
      box.value = id;
      box.dataset.incoming = "";
      box.checked = doc.edges.some(function (e) { return e[0] === id && e[1] === selected; });
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + (id === "trigger" ? "the trigger" : id)));
      fieldset.appendChild(label);
    });
    slot.appendChild(fieldset);
  }

  function setUpCodeEditor() {
    editor = null;
    var textarea = $("textarea[data-code]", inspector);
    if (!textarea || !window.CodeMirror) return;
    var escaped = false;
    editor = CodeMirror.fromTextArea(textarea, {
      mode: "python",
      lineNumbers: true,
      indentUnit: 4,
      viewportMargin: Infinity,
      extraKeys: {
        Esc: function () { escaped = true; },
        Tab: function (cm) {
          if (escaped) return CodeMirror.Pass;
          if (cm.somethingSelected()) cm.indentSelection("add");
          else cm.replaceSelection("    ", "end");
        },
        "Shift-Tab": function (cm) {
          if (escaped) return CodeMirror.Pass;
          cm.indentSelection("subtract");
        }
      }
    });
    var input = editor.getInputField();
    input.setAttribute("aria-labelledby", textarea.id + "-label");
    var label = $('label[for="' + textarea.id + '"]', inspector);
    if (label) { label.id = textarea.id + "-label"; label.addEventListener("click", function () { editor.focus(); }); }
    input.addEventListener("keydown", function (e) { if (e.key !== "Escape" && e.key !== "Tab") escaped = false; });
    editor.on("focus", function () { escaped = false; });
    editor.on("change", function () {
      editor.save();
      textarea.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }

  // ---- Editing the graph -------------------------------------------------------------------

  function uniqueId(kind) {
    var parts = kind.split(".");
    var base = (parts.length > 1 ? parts.slice(1).join("_") : kind).toLowerCase().replace(/[^a-z0-9_]/g, "_");
    if (!/^[a-z]/.test(base)) base = "step_" + base;
    var id = base, n = 1;
    while (id === "trigger" || stepById(id)) { n += 1; id = base + "_" + n; }
    return id;
  }

  function addStep(kind) {
    var info = catalog[kind] || {};
    var id = uniqueId(kind);
    var from = selected || lastNode();
    var fromPos = position(from);
    doc.steps.push({ id: id, kind: kind, config: JSON.parse(JSON.stringify(info.defaults || {})) });
    // To the right of the node it follows while that stays in view, else below it.
    var visible = $(".canvas-scroll").clientWidth;
    var right = fromPos.x + NODE_W + 50;
    doc.layout[id] = right + NODE_W <= visible ? freeSpot(right, fromPos.y) : freeSpot(fromPos.x, fromPos.y + NODE_H + 40);
    addEdge(from, id);
    markDirty();
    renderNodes();
    select(id);
    document.getElementById("node-" + id).focus();
    announce("Added step " + id + " after " + (from === "trigger" ? "the trigger" : from) + ". Unsaved changes");
  }

  function lastNode() {
    var ids = nodeIds();
    var withOut = {};
    doc.edges.forEach(function (e) { withOut[e[0]] = true; });
    var ends = ids.filter(function (id) { return !withOut[id]; });
    return ends.length ? ends[ends.length - 1] : ids[ids.length - 1];
  }

  function freeSpot(x, y) {
    var taken = function (px, py) {
      return nodeIds().some(function (id) {
        var p = doc.layout[id];
        return p && Math.abs(p.x - px) < NODE_W && Math.abs(p.y - py) < NODE_H + 10;
      });
    };
    while (taken(x, y)) y += NODE_H + 30;
    return { x: x, y: y };
  }

  function addEdge(from, to) {
    if (from === to || to === "trigger") return false;
    if (doc.edges.some(function (e) { return e[0] === from && e[1] === to; })) return false;
    doc.edges.push([from, to]);
    renderEdges();
    return true;
  }

  function removeEdge(from, to) {
    doc.edges = doc.edges.filter(function (e) { return !(e[0] === from && e[1] === to); });
    renderEdges();
  }

  function deleteStep(id) {
    if (id === "trigger" || !stepById(id)) return;
    var neighbour = (doc.edges.find(function (e) { return e[1] === id; }) || ["trigger"])[0];
    doc.steps = doc.steps.filter(function (s) { return s.id !== id; });
    doc.edges = doc.edges.filter(function (e) { return e[0] !== id && e[1] !== id; });
    delete doc.layout[id];
    errors = errors.filter(function (e) { return e.step !== id; });
    selected = null;
    inspector.innerHTML = '<p class="muted">Select a node on the canvas to edit it.</p>';
    renderNodes();
    var next = document.getElementById("node-" + neighbour);
    if (next) next.focus();
    announce("Deleted step " + id + ". Unsaved changes");
  }

  // ---- Pointer and keyboard ----------------------------------------------------------------

  function canvasPoint(e) {
    var rect = canvas.getBoundingClientRect();
    return { x: e.clientX - rect.left, y: e.clientY - rect.top };
  }

  function onPointerDown(e) {
    var port = e.target.closest(".port.out");
    var node = e.target.closest(".node");
    if (!node) return;
    e.preventDefault();
    var id = node.dataset.id;
    if (port) return startConnect(e, id);
    var start = canvasPoint(e);
    var pos = position(id);
    var origin = { x: pos.x, y: pos.y };
    var moved = false;
    node.setPointerCapture(e.pointerId);
    function move(ev) {
      var p = canvasPoint(ev);
      var dx = p.x - start.x, dy = p.y - start.y;
      if (!moved && Math.abs(dx) + Math.abs(dy) < 4) return;
      moved = true;
      pos.x = Math.max(0, Math.round((origin.x + dx) / GRID) * GRID);
      pos.y = Math.max(0, Math.round((origin.y + dy) / GRID) * GRID);
      node.style.left = pos.x + "px";
      node.style.top = pos.y + "px";
      renderEdges();
    }
    function up() {
      node.removeEventListener("pointermove", move);
      node.removeEventListener("pointerup", up);
      if (moved) markDirty();
      else select(id);
      node.focus();
    }
    node.addEventListener("pointermove", move);
    node.addEventListener("pointerup", up);
  }

  function startConnect(e, from) {
    var ns = "http://www.w3.org/2000/svg";
    var temp = document.createElementNS(ns, "path");
    temp.setAttribute("class", "edge pending");
    svg.appendChild(temp);
    var a = anchor(from, "out");
    function move(ev) { temp.setAttribute("d", curve(a, canvasPoint(ev))); }
    function up(ev) {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
      temp.remove();
      var over = document.elementFromPoint(ev.clientX, ev.clientY);
      var target = over && over.closest(".node");
      if (target && addEdge(from, target.dataset.id)) {
        markDirty();
        announce("Connected " + from + " to " + target.dataset.id + ". Unsaved changes");
        if (selected) loadForm(selected);
      }
    }
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  }

  function onNodeKey(e) {
    var node = e.target.closest(".node");
    if (!node || e.target !== node) return;
    var id = node.dataset.id;
    var pos = position(id);
    var step = e.shiftKey ? 50 : GRID;
    var moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[e.key]) {
      e.preventDefault();
      pos.x = Math.max(0, pos.x + moves[e.key][0]);
      pos.y = Math.max(0, pos.y + moves[e.key][1]);
      node.style.left = pos.x + "px";
      node.style.top = pos.y + "px";
      renderEdges();
      markDirty();
    } else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      select(id);
    } else if (e.key === "Delete" || e.key === "Backspace") {
      e.preventDefault();
      deleteStep(id);
    }
  }

  function onEdgeClick(e) {
    var hit = e.target.closest(".edge-hit");
    if (!hit) return;
    selectedEdge = Number(hit.dataset.index);
    var edge = doc.edges[selectedEdge];
    $("#edge-label").textContent = "Connection " + edge[0] + " → " + edge[1];
    $("#edge-actions").hidden = false;
    renderEdges();
    $("#edge-delete").focus();
  }

  function deleteSelectedEdge() {
    if (selectedEdge === null) return;
    var edge = doc.edges[selectedEdge];
    doc.edges.splice(selectedEdge, 1);
    selectedEdge = null;
    $("#edge-actions").hidden = true;
    renderEdges();
    markDirty();
    announce("Removed the connection " + edge[0] + " → " + edge[1] + ". Unsaved changes");
    if (selected) loadForm(selected);
  }

  // ---- Start -------------------------------------------------------------------------------

  function init() {
    root = $("#builder");
    if (!root) return;
    canvas = $("#canvas");
    svg = $("#edges");
    inspector = $("#inspector");
    dirtyLabel = $("#dirty");
    doc = JSON.parse($("#flow-document").textContent);
    catalog = JSON.parse($("#block-catalog").textContent);
    doc.trigger = doc.trigger || { kind: "trigger.manual", config: {} };
    doc.steps = doc.steps || [];
    doc.edges = doc.edges || [];
    doc.layout = doc.layout || {};
    renderNodes();

    canvas.addEventListener("pointerdown", onPointerDown);
    canvas.addEventListener("keydown", onNodeKey);
    svg.addEventListener("click", onEdgeClick);
    $("#edge-delete").addEventListener("click", deleteSelectedEdge);
    $all(".palette-item").forEach(function (btn) {
      btn.addEventListener("click", function () { addStep(btn.dataset.kind); });
    });
    $("#flow-name").addEventListener("input", markDirty);
    inspector.addEventListener("input", formChanged);
    inspector.addEventListener("change", formChanged);
    inspector.addEventListener("click", function (e) {
      if (e.target.matches("[data-delete-step]")) deleteStep(selected);
    });
    // A form that arrives after its node was deleted or another one chosen is dropped.
    document.body.addEventListener("htmx:beforeSwap", function (e) {
      if (e.detail.target === inspector && formFor !== selected) e.detail.shouldSwap = false;
    });
    document.body.addEventListener("htmx:afterSwap", function (e) {
      if (e.detail.target === inspector) { fillEdgesSlot(); setUpCodeEditor(); }
    });
    document.body.addEventListener("flow-errors", function (e) {
      errors = (e.detail && e.detail.errors) || [];
      renderNodes();
      if (selected) loadForm(selected);
      announce(errors.length ? errors.length + " problem" + (errors.length > 1 ? "s" : "") + " to fix" : "");
    });
    document.body.addEventListener("artifact-uploaded", function (e) {
      var input = $("[data-param]", inspector);
      var field = $('[data-param="module"], [data-param="artifact"], [data-param="digest"]', inspector) || input;
      if (field) {
        field.value = e.detail.digest;
        field.dispatchEvent(new Event("input", { bubbles: true }));
      }
    });
    $("#toggle-test").addEventListener("click", function () {
      showTestPanel($("#test-panel").hidden);
    });
  }

  window.FlowBuilder = { serialize: serialize };
  document.addEventListener("DOMContentLoaded", init);
})();
