// The builder canvas: the flow document as the state, selection, editing (add, connect,
// delete, copy/paste, undo/redo), saving and leaving; payload() hands the document to htmx.
// Each other concern has a file: the document as a graph (builder-graph.js), connection aliases
// (builder-connections.js), drawing (builder-render.js), zoom, pan and layout (builder-view.js),
// undo/redo and the clipboard (builder-history.js), the palette (builder-palette.js), the code
// editor (builder-code.js), the node form (builder-inspector.js), pointer and keys
// (builder-input.js), the last test run on the nodes (builder-runs.js), template paths
// (builder-autocomplete.js). They are plain scripts loaded in that order, no build step.
(function () {
  "use strict";

  var NODE_W = 190;
  var GRID = 10;
  // Below this zoom node titles are hard to read: the page does not open smaller.
  var LEGIBLE = 0.6;
  var SCHEMA = "flowbuilder/flow@2";
  var G = window.FlowBuilderGraph;
  var ERROR_PORT = G.ERROR_PORT;

  var root, canvas, svg, viewport, inspector, dirtyLabel, live;
  var doc, catalog, connections, drawing, view, history, form, runs;
  var selection = [];
  var selectedEdge = null;
  var errors = [];
  var dirty = false;
  var changes = 0;
  var savedChanges = 0;
  var revision = "";
  var overwriteNext = false;
  var leaveTo = null;

  function $(sel, el) { return (el || document).querySelector(sel); }
  function $all(sel, el) { return Array.prototype.slice.call((el || document).querySelectorAll(sel)); }
  function clone(value) { return JSON.parse(JSON.stringify(value)); }

  function announce(text) { dirtyLabel.textContent = text; }
  function say(text) { live.textContent = text; }

  function markDirty(text) {
    dirty = true;
    changes += 1;
    announce(text || "Unsaved changes");
  }

  function blockTitle(kind) { return (catalog[kind] && catalog[kind].title) || kind; }
  function nodeName(id) { return id === "trigger" ? "the trigger" : "step " + id; }
  function selected() { return selection.length === 1 ? selection[0] : null; }

  function nodeIds() { return G.nodeIds(doc); }
  function stepById(id) { return G.stepById(doc, id); }
  function portsOf(id) { return G.portsOf(doc, catalog, id); }
  function hasBody(id) { return G.hasBody(doc, catalog, id); }

  function size(id) { return drawing.size(doc, id); }
  function position(id) { return drawing.position(doc, id); }

  function serialize() {
    var name = $("#flow-name").value.trim();
    if (name) doc.name = name;
    doc.schema = SCHEMA;
    var layout = {};
    nodeIds().forEach(function (id) { layout[id] = position(id); });
    doc.layout = layout;
    doc.steps = G.orderedSteps(doc);
    return JSON.stringify(doc);
  }

  // What Save, Deploy and Run send: the document and the revision of the draft it started from.
  function payload() {
    savedChanges = changes;
    var values = { document: serialize(), revision: revision };
    if (overwriteNext) values.overwrite = "1";
    overwriteNext = false;
    return values;
  }

  function snapshot() {
    var name = $("#flow-name").value;
    return JSON.stringify({ doc: doc, name: name });
  }

  function remember(key) { history.record(snapshot(), key); }

  // ---- Rendering (builder-render.js) ---------------------------------------------------------

  function errorsFor(id) { return errors.filter(function (e) { return e.step === id; }); }
  function portLabel(port) { return port === ERROR_PORT ? "on error" : port; }
  function drawState() { return { selection: selection, errors: errors, selectedEdge: selectedEdge }; }
  function renderNodes() {
    drawing.nodes(doc, drawState());
    if (runs) runs.apply();
  }
  function renderEdges() { drawing.edges(doc, drawState()); }
  function boundsOf(ids) { return drawing.bounds(doc, ids); }
  function anchor(id, port) { return drawing.anchor(doc, id, port); }
  var curve = window.FlowBuilderRender.curve;

  // ---- Selection (the node form: builder-inspector.js) --------------------------------------

  // The side column shows either the selected node's form or the test run panel.
  function showTestPanel(show) {
    var panel = $("#test-panel");
    panel.hidden = !show;
    inspector.hidden = show;
    $("#toggle-test").setAttribute("aria-expanded", String(show));
    if (show) $("#sample").focus();
  }

  function describe(id) {
    var step = stepById(id);
    var ports = portsOf(id);
    return (id === "trigger" ? "the trigger" : "step " + id) + " (" + blockTitle(step.kind) + ")" +
      (ports.length > 1 ? ", outputs: " + ports.map(portLabel).join(", ") : "");
  }

  function setSelection(ids) {
    selection = ids.filter(function (id) { return !!stepById(id); });
    if (selection.length) showTestPanel(false);
    selectedEdge = null;
    $("#edge-actions").hidden = true;
    $all(".node", canvas).forEach(function (el) {
      var on = selection.indexOf(el.dataset.id) >= 0;
      el.classList.toggle("selected", on);
      el.setAttribute("aria-pressed", on ? "true" : "false");
    });
    renderEdges();
    if (selection.length === 1) {
      say("Selected " + describe(selection[0]) + ".");
      form.load(selection[0]);
    } else if (selection.length > 1) {
      say(selection.length + " nodes selected: " + selection.join(", ") + ".");
      form.multi();
    } else {
      say("Nothing selected.");
      form.empty();
    }
  }

  function select(id, additive) {
    if (!additive) return setSelection(id ? [id] : []);
    var next = selection.slice();
    var at = next.indexOf(id);
    if (at >= 0) next.splice(at, 1); else next.push(id);
    setSelection(next);
  }

  // ---- Editing the graph -------------------------------------------------------------------

  // A new step joins after the selected node (or the last one): into the body of a loop node,
  // beside a body step inside its loop, after anything else on its first port.
  function addStep(kind, at) {
    var info = catalog[kind] || {};
    remember();
    var id = G.uniqueId(doc, G.kindBase(kind));
    var from = selected() || G.lastNode(doc);
    var fromStep = stepById(from);
    var port = hasBody(from) ? "body" : portsOf(from)[0];
    var step = { id: id, kind: kind, config: clone(info.defaults || {}) };
    if (port === "body") step.parent = from;
    else if (fromStep.parent) step.parent = fromStep.parent;
    doc.steps.push(step);
    var fromPos = position(from);
    if (at) {
      doc.layout[id] = { x: Math.max(0, Math.round(at.x / GRID) * GRID), y: Math.max(0, Math.round(at.y / GRID) * GRID) };
    } else if (port === "body") {
      doc.layout[id] = freeSpot(fromPos.x + 20, fromPos.y + size(from).h + 60);
    } else {
      doc.layout[id] = freeSpot(fromPos.x + NODE_W + 80, fromPos.y);
    }
    addEdge(from, port, id);
    markDirty();
    renderNodes();
    setSelection([id]);
    reveal([id]);
    document.getElementById("node-" + id).focus();
    announce("Added step " + id + " after " + nodeName(from) + ". Unsaved changes");
  }

  function freeSpot(x, y) {
    var taken = function (px, py) {
      return nodeIds().some(function (id) {
        var p = doc.layout[id];
        return p && Math.abs(p.x - px) < NODE_W && Math.abs(p.y - py) < 70;
      });
    };
    while (taken(x, y)) y += 90;
    return { x: x, y: y };
  }

  function addEdge(from, port, to) {
    if (!G.addEdge(doc, catalog, from, port, to)) return false;
    renderEdges();
    return true;
  }

  function removeEdge(from, port, to) {
    doc.edges = doc.edges.filter(function (e) { return !(e[0] === from && e[1] === port && e[2] === to); });
    renderEdges();
  }

  function deleteSteps(ids) {
    ids = ids.filter(function (id) { return id !== "trigger" && stepById(id); });
    if (!ids.length) return;
    ids = G.withBodies(doc, ids);
    remember();
    var gone = function (id) { return ids.indexOf(id) >= 0; };
    var before = doc.edges.find(function (e) { return gone(e[2]) && !gone(e[0]); });
    G.removeSteps(doc, ids);
    errors = errors.filter(function (e) { return !gone(e.step); });
    renderNodes();
    setSelection([]);
    var next = document.getElementById("node-" + (before ? before[0] : "trigger"));
    if (next) next.focus();
    markDirty("Deleted " + (ids.length > 1 ? ids.length + " steps" : "step " + ids[0]) + " (Ctrl+Z brings it back). Unsaved changes");
    say("Deleted " + ids.join(", ") + ". Undo with Ctrl+Z.");
  }

  // ---- Copy, paste, duplicate ----------------------------------------------------------------

  function copiedPiece(ids) {
    return G.piece(doc, ids, function (step) { return connections.aliasesUsed(doc, step); });
  }

  function copySelection() {
    var piece = copiedPiece(selection);
    if (!piece) return;
    window.FlowBuilderHistory.copy(piece);
    say("Copied " + piece.steps.length + " step" + (piece.steps.length > 1 ? "s" : "") + ".");
    announce("Copied " + piece.steps.map(function (s) { return s.id; }).join(", "));
  }

  function paste(piece) {
    if (!piece || !Array.isArray(piece.steps) || !piece.steps.length) return;
    remember();
    var ids = G.paste(doc, piece);
    markDirty("Pasted " + ids.join(", ") + ". Unsaved changes");
    renderNodes();
    setSelection(ids);
    reveal(ids);
    var first = document.getElementById("node-" + ids[0]);
    if (first) first.focus();
  }

  // ---- Undo and redo -------------------------------------------------------------------------

  function restore(text) {
    if (!text) return false;
    var state = JSON.parse(text);
    doc = state.doc;
    $("#flow-name").value = state.name;
    renderNodes();
    var keep = selection.filter(function (id) { return stepById(id); });
    setSelection(keep);
    markDirty();
    return true;
  }

  function undo() {
    if (restore(history.undo(snapshot()))) say("Undone.");
  }

  function redo() {
    if (restore(history.redo(snapshot()))) say("Redone.");
  }

  function historyChanged(h) {
    $("#undo").disabled = !h.undos.length;
    $("#redo").disabled = !h.redos.length;
  }

  // ---- The view -----------------------------------------------------------------------------

  function allBounds() { return boundsOf(nodeIds()); }

  function fitView() {
    view.fit(allBounds());
    say("Zoomed to show the whole flow.");
  }

  // The whole flow when it fits legibly; a long one from its start, at a zoom still readable.
  function showFlow() {
    var all = allBounds();
    view.fit(all);
    if (view.z >= LEGIBLE) return;
    view.z = LEGIBLE;
    view.x = 30 - all.x * view.z;
    view.y = 30 - all.y * view.z;
    view.apply();
  }

  // Bring nodes into view: the whole flow when it fits legibly, else centred on the nodes.
  function reveal(ids) {
    var box = boundsOf(ids);
    if (view.shows(box)) return;
    var all = allBounds();
    var fitZoom = Math.min(1, (viewport.clientWidth - 60) / all.w, (viewport.clientHeight - 60) / all.h);
    if (fitZoom >= LEGIBLE) {
      view.fit(all);
      return;
    }
    view.z = Math.max(view.z, LEGIBLE);
    view.x = viewport.clientWidth / 2 - (box.x + box.w / 2) * view.z;
    view.y = viewport.clientHeight / 2 - (box.y + box.h / 2) * view.z;
    view.apply();
  }

  function zoomChanged(v) {
    var label = $("#zoom-level");
    if (label) label.textContent = Math.round(v.z * 100) + "%";
  }

  // Lay the flow out left to right: the top level by layers, each loop body in a row under
  // its loop node.
  function arrange() {
    remember();
    var pairs = doc.edges.map(function (e) { return [e[0], e[2]]; });
    var bodies = {};
    doc.steps.forEach(function (s) { if (s.parent && stepById(s.parent)) (bodies[s.parent] = bodies[s.parent] || []).push(s.id); });
    var top = nodeIds().filter(function (id) { var p = stepById(id).parent; return !p || !stepById(p); });
    var places = window.FlowBuilderView.arrange(top, bodies, pairs, size);
    Object.keys(places).forEach(function (id) { doc.layout[id] = places[id]; });
    markDirty("Arranged the nodes. Unsaved changes");
    renderNodes();
    showFlow();
  }

  function onEdgeClick(e) {
    var hit = e.target.closest(".edge-hit");
    if (!hit) return;
    selectedEdge = Number(hit.dataset.index);
    var edge = doc.edges[selectedEdge];
    $("#edge-label").textContent = "Connection " + edge[0] + (edge[1] === "out" ? "" : " (" + portLabel(edge[1]) + ")") + " → " + edge[2];
    $("#edge-actions").hidden = false;
    renderEdges();
    $("#edge-delete").focus();
  }

  function deleteSelectedEdge() {
    if (selectedEdge === null) return;
    remember();
    var edge = doc.edges[selectedEdge];
    doc.edges.splice(selectedEdge, 1);
    selectedEdge = null;
    $("#edge-actions").hidden = true;
    renderEdges();
    markDirty("Removed the connection " + edge[0] + " → " + edge[2] + ". Unsaved changes");
    if (selected()) form.load(selected());
  }

  // ---- Saving and leaving -------------------------------------------------------------------

  function onSaved(detail) {
    revision = detail.revision || revision;
    if (detail.connections) doc.connections = detail.connections;
    if (changes === savedChanges) {
      dirty = false;
      announce("");
    }
    if (leaveTo) window.location.href = leaveTo;
  }

  function onLinkClick(e) {
    var link = e.target.closest("a[href]");
    if (!link || !dirty || e.defaultPrevented || link.target === "_blank" || e.ctrlKey || e.metaKey || e.shiftKey) return;
    if (link.getAttribute("href").charAt(0) === "#") return;
    e.preventDefault();
    leaveTo = null;
    var dialog = $("#leave-dialog");
    dialog.dataset.href = link.href;
    dialog.showModal();
    $("[data-leave-save]", dialog).focus();
  }

  function onLeaveChoice(e) {
    var dialog = $("#leave-dialog");
    var href = dialog.dataset.href;
    if (e.target.matches("[data-leave-discard]")) {
      dirty = false;
      dialog.close();
      window.location.href = href;
    } else if (e.target.matches("[data-leave-save]")) {
      dialog.close();
      leaveTo = href;
      $("#save-draft").click();
    } else if (e.target.matches("[data-leave-stay]")) {
      dialog.close();
    }
  }

  // ---- Start -------------------------------------------------------------------------------

  // What the inspector may read and do on the canvas.
  var app = {
    doc: function () { return doc; },
    selection: function () { return selection; },
    replaceSelection: function (ids) { selection = ids; },
    selected: selected,
    stepById: stepById,
    portsOf: portsOf,
    nodeIds: nodeIds,
    errorsFor: errorsFor,
    remember: remember,
    markDirty: markDirty,
    say: say,
    renderNodes: renderNodes,
    addEdge: addEdge,
    removeEdge: removeEdge,
    setSelection: setSelection,
    select: select,
    position: position,
    size: size,
    anchor: anchor,
    curve: curve,
    snapshot: snapshot,
    record: function (before) { history.record(before); },
    renderEdges: renderEdges,
    announce: announce,
    loadForm: function (id) { form.load(id); },
    portLabel: portLabel,
    undo: undo,
    redo: redo,
    paste: paste,
    copySelection: copySelection,
    duplicate: function () { if (selection.length) paste(copiedPiece(selection)); },
    deleteSteps: deleteSteps,
    edgeSelected: function () { return selectedEdge !== null; },
    deleteSelectedEdge: deleteSelectedEdge
  };

  function init() {
    root = $("#builder");
    if (!root) return;
    canvas = $("#canvas");
    svg = $("#edges");
    viewport = $("#canvas-viewport");
    inspector = $("#inspector");
    dirtyLabel = $("#dirty");
    live = $("#canvas-live");
    revision = root.dataset.revision || "";
    doc = G.normalise(JSON.parse($("#flow-document").textContent));
    catalog = JSON.parse($("#block-catalog").textContent);
    drawing = new window.FlowBuilderRender.Drawing(canvas, svg, catalog);
    runs = new window.FlowBuilderRuns.RunStatus($("#test-output"), canvas, app);
    new window.FlowBuilderAutocomplete.Autocomplete(inspector, function () { return doc; }, $("#test-panel"));
    connections = new window.FlowBuilderConnections.Connections(
      catalog, JSON.parse($("#capability-services").textContent));
    app.catalog = catalog;
    app.connections = connections;
    form = window.FlowBuilderInspector.Inspector(app, { root: root, inspector: inspector });
    history = new window.FlowBuilderHistory.History(historyChanged);
    historyChanged(history);
    view = new window.FlowBuilderView.View(viewport, canvas, zoomChanged);
    app.view = view;
    var unplaced = nodeIds().some(function (id) { return !doc.layout[id]; });
    renderNodes();
    if (unplaced && doc.steps.length) { arrange(); history.undos = []; historyChanged(history); dirty = false; announce(""); }
    if (!view.shows(allBounds())) showFlow();

    var resizing = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizing);
      resizing = setTimeout(function () { if (!view.shows(allBounds())) showFlow(); }, 150);
    });
    // Focusing a node out of view scrolls the viewport: turn that into a pan.
    viewport.addEventListener("scroll", function () {
      view.panBy(-viewport.scrollLeft, -viewport.scrollTop);
      viewport.scrollLeft = 0;
      viewport.scrollTop = 0;
    });
    canvas.addEventListener("focusin", function (e) {
      var node = e.target.closest(".node");
      if (node) reveal([node.dataset.id]);
    });
    window.FlowBuilderInput.Input(app, { canvas: canvas, svg: svg, viewport: viewport });
    svg.addEventListener("click", onEdgeClick);
    $("#edge-delete").addEventListener("click", deleteSelectedEdge);
    $("#zoom-in").addEventListener("click", function () { view.zoomBy(1.2); });
    $("#zoom-out").addEventListener("click", function () { view.zoomBy(1 / 1.2); });
    $("#fit-view").addEventListener("click", fitView);
    $("#arrange").addEventListener("click", arrange);
    $("#undo").addEventListener("click", undo);
    $("#redo").addEventListener("click", redo);
    new window.FlowBuilderPalette.Palette({
      palette: $(".palette"),
      search: $("#palette-search"),
      empty: $("#palette-empty"),
      viewport: viewport,
      add: function (kind, point) {
        if (!point) return addStep(kind);
        var p = view.toCanvas(point.x, point.y);
        addStep(kind, { x: p.x - NODE_W / 2, y: p.y - 20 });
      }
    });
    $("#flow-name").addEventListener("input", function () { remember("name"); markDirty(); });
    inspector.addEventListener("focusin", form.noteFocus);
    inspector.addEventListener("input", form.changed);
    inspector.addEventListener("change", form.changed);
    inspector.addEventListener("click", function (e) {
      if (e.target.matches("[data-delete-step]")) deleteSteps([selected()]);
      if (e.target.matches("[data-delete-selection]")) deleteSteps(selection);
      if (e.target.matches("[data-duplicate]")) paste(copiedPiece(selection));
    });
    // A form that arrives after its node was deleted or another one chosen is dropped.
    document.body.addEventListener("htmx:beforeSwap", function (e) {
      if (e.detail.target === inspector && !form.wanted(e.detail)) e.detail.shouldSwap = false;
    });
    document.body.addEventListener("htmx:afterSettle", function (e) {
      if (e.detail.target !== inspector) return;
      form.arrived();
      if (selected()) runs.showIn(inspector, selected());
    });
    document.body.addEventListener("flow-errors", function (e) {
      errors = (e.detail && e.detail.errors) || [];
      renderNodes();
      if (selected()) form.load(selected());
      if (errors.length) announce(errors.length + " problem" + (errors.length > 1 ? "s" : "") + " to fix");
    });
    document.body.addEventListener("flow-saved", function (e) { onSaved(e.detail || {}); });
    // A refused save (a changed draft, a broken document) keeps the user here.
    document.body.addEventListener("htmx:afterRequest", function (e) { if (e.detail.failed) leaveTo = null; });
    document.body.addEventListener("connection-created", function (e) { form.connectionCreated(e.detail || {}); });
    $("#connection-dialog").addEventListener("close", form.dialogClosed);
    $("#connection-dialog").addEventListener("click", function (e) {
      if (e.target.matches("[data-close-dialog]")) form.closeDialog();
    });
    $("#leave-dialog").addEventListener("click", onLeaveChoice);
    document.body.addEventListener("click", function (e) {
      if (e.target.matches("[data-reload-draft]")) { dirty = false; window.location.reload(); }
      if (e.target.matches("[data-overwrite-draft]")) { overwriteNext = true; $("#save-draft").click(); }
    });
    document.addEventListener("click", onLinkClick, true);
    window.addEventListener("beforeunload", function (e) {
      if (!dirty) return;
      e.preventDefault();
      e.returnValue = "";
    });
    // A module's "Grant ... to this step" button ticks the grants it declares.
    document.body.addEventListener("click", function (e) {
      if (!e.target.matches("[data-grant-module]")) return;
      var changed = null;
      JSON.parse(e.target.dataset.grantModule).forEach(function (name) {
        var box = $all("[data-grant]", inspector).filter(function (el) { return el.value === name; })[0];
        if (box && !box.checked) { box.checked = true; changed = box; }
      });
      if (changed) changed.dispatchEvent(new Event("change", { bubbles: true }));
    });
    document.body.addEventListener("artifact-uploaded", function (e) {
      var field = $('[data-param="module"], [data-param="artifact"], [data-param="digest"]', inspector) || $("[data-param]", inspector);
      if (field) {
        field.value = e.detail.digest;
        field.dispatchEvent(new Event("input", { bubbles: true }));
      }
    });
    $("#toggle-test").addEventListener("click", function () {
      showTestPanel($("#test-panel").hidden);
    });
  }

  window.FlowBuilder = { serialize: serialize, payload: payload };
  document.addEventListener("DOMContentLoaded", init);
})();
