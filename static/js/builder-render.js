// Drawing the flow on the canvas: a node per trigger and step with a dot per output port
// (labelled when a node has several; the error port dashed), the edges as curves, and each
// loop's body in a box. Draws from the document and the block catalog; knows no editing.
(function () {
  "use strict";

  var NODE_W = 190;
  var PORT_GAP = 22;
  var ERROR_PORT = "error";
  var SVG = "http://www.w3.org/2000/svg";
  var G = window.FlowBuilderGraph;

  function curve(a, b) {
    var dx = Math.max(40, Math.abs(b.x - a.x) / 2);
    return "M" + a.x + "," + a.y + " C" + (a.x + dx) + "," + a.y + " " + (b.x - dx) + "," + b.y + " " + b.x + "," + b.y;
  }

  function Drawing(canvas, svg, catalog) {
    this.canvas = canvas;
    this.svg = svg;
    this.catalog = catalog;
  }

  Drawing.prototype.title = function (kind) {
    return (this.catalog[kind] && this.catalog[kind].title) || kind;
  };

  // Where a node sits; a node without a place gets one in a row (and keeps it).
  Drawing.prototype.position = function (doc, id) {
    doc.layout = doc.layout || {};
    if (!doc.layout[id]) {
      var index = G.nodeIds(doc).indexOf(id);
      doc.layout[id] = { x: 40 + index * (NODE_W + 60), y: 120 + (index % 2) * 40 };
    }
    return doc.layout[id];
  };

  Drawing.prototype.nodeHeight = function (doc, id) {
    return Math.max(60, 14 + G.portsOf(doc, this.catalog, id).length * PORT_GAP);
  };

  Drawing.prototype.size = function (doc, id) {
    var el = document.getElementById("node-" + id);
    return { w: el ? el.offsetWidth : NODE_W, h: el ? el.offsetHeight : this.nodeHeight(doc, id) };
  };

  Drawing.prototype.bounds = function (doc, ids) {
    var self = this;
    var x1 = Infinity, y1 = Infinity, x2 = -Infinity, y2 = -Infinity;
    ids.forEach(function (id) {
      var p = self.position(doc, id), s = self.size(doc, id);
      x1 = Math.min(x1, p.x); y1 = Math.min(y1, p.y);
      x2 = Math.max(x2, p.x + s.w); y2 = Math.max(y2, p.y + s.h);
    });
    if (x1 === Infinity) return { x: 0, y: 0, w: 1, h: 1 };
    return { x: x1, y: y1, w: x2 - x1, h: y2 - y1 };
  };

  // The point where an edge leaves a node's port, or (port null) enters the node.
  Drawing.prototype.anchor = function (doc, id, port) {
    var pos = this.position(doc, id);
    var s = this.size(doc, id);
    if (port === null) return { x: pos.x - 9, y: pos.y + s.h / 2 };
    var ports = G.portsOf(doc, this.catalog, id);
    var i = Math.max(0, ports.indexOf(port));
    return { x: pos.x + s.w, y: pos.y + (i + 1) * this.nodeHeight(doc, id) / (ports.length + 1) };
  };

  // state: {selection: [ids], errors: [{step, field, message}], selectedEdge: index|null}
  Drawing.prototype.nodes = function (doc, state) {
    var self = this;
    Array.prototype.slice.call(this.canvas.querySelectorAll(".node, .group")).forEach(function (el) { el.remove(); });
    this.groups(doc);
    G.nodeIds(doc).forEach(function (id) { self.canvas.appendChild(self.node(doc, state, id)); });
    this.edges(doc, state);
  };

  Drawing.prototype.node = function (doc, state, id) {
    var step = G.stepById(doc, id);
    var pos = this.position(doc, id);
    var height = this.nodeHeight(doc, id);
    var el = document.createElement("div");
    var problems = state.errors.filter(function (e) { return e.step === id; }).length;
    var problemText = problems + " problem" + (problems > 1 ? "s" : "");
    var on = state.selection.indexOf(id) >= 0;
    var ports = G.portsOf(doc, this.catalog, id);
    var regular = ports.filter(function (p) { return p !== ERROR_PORT; });
    el.className = "node" + (id === "trigger" ? " trigger" : "") + (on ? " selected" : "") +
      (problems ? " has-errors" : "") + (step.parent ? " in-body" : "") + (regular.length > 1 ? " labelled" : "");
    el.id = "node-" + id;
    el.dataset.id = id;
    el.tabIndex = 0;
    el.setAttribute("role", "button");
    el.setAttribute("aria-pressed", on ? "true" : "false");
    el.setAttribute("aria-label", (id === "trigger" ? "Trigger: " : "Step " + id + ": ") +
      this.title(step.kind) + (problems ? ", " + problemText : ""));
    el.style.left = pos.x + "px";
    el.style.top = pos.y + "px";
    el.style.minHeight = height + "px";
    el.innerHTML = (id === "trigger" ? "" : '<span class="port in" aria-hidden="true"></span>') +
      '<span class="node-title"></span><span class="node-kind"></span>' +
      (problems ? '<span class="node-errors">' + problemText + "</span>" : "");
    el.querySelector(".node-title").textContent = id === "trigger" ? "Trigger" : (step.name || id);
    el.querySelector(".node-kind").textContent = this.title(step.kind);
    ports.forEach(function (port, i) {
      var dot = document.createElement("span");
      dot.className = "port " + (port === ERROR_PORT ? "error" : "out");
      dot.dataset.port = port;
      dot.setAttribute("aria-hidden", "true");
      dot.title = "Drag to another node: it runs " + (port === ERROR_PORT ? "when this step fails" : "after “" + port + "”");
      dot.style.top = ((i + 1) * height / (ports.length + 1)) + "px";
      if (regular.length > 1 || port === ERROR_PORT) {
        var label = document.createElement("span");
        label.className = "port-label";
        label.textContent = port;
        dot.appendChild(label);
      }
      el.appendChild(dot);
    });
    return el;
  };

  // A loop's body steps (those with "parent") sit in a box under their loop node.
  Drawing.prototype.groups = function (doc) {
    var self = this;
    var bodies = {};
    doc.steps.forEach(function (s) {
      if (s.parent && G.stepById(doc, s.parent)) (bodies[s.parent] = bodies[s.parent] || []).push(s.id);
    });
    Object.keys(bodies).forEach(function (loop) {
      var box = self.bounds(doc, bodies[loop]);
      var el = document.createElement("div");
      el.className = "group";
      el.id = "group-" + loop;
      el.style.left = (box.x - 16) + "px";
      el.style.top = (box.y - 30) + "px";
      el.style.width = (box.w + 32) + "px";
      el.style.height = (box.h + 46) + "px";
      el.innerHTML = '<span class="group-title"></span>';
      el.querySelector(".group-title").textContent = "Loop body of " + loop;
      self.canvas.appendChild(el);
    });
  };

  Drawing.prototype.edges = function (doc, state) {
    var self = this;
    var svg = this.svg;
    svg.innerHTML = "";
    doc.edges.forEach(function (edge, index) {
      if (!document.getElementById("node-" + edge[0]) || !document.getElementById("node-" + edge[2])) return;
      var d = curve(self.anchor(doc, edge[0], edge[1]), self.anchor(doc, edge[2], null));
      var hit = document.createElementNS(SVG, "path");
      hit.setAttribute("d", d);
      hit.setAttribute("class", "edge-hit");
      hit.dataset.index = index;
      var line = document.createElementNS(SVG, "path");
      line.setAttribute("d", d);
      line.setAttribute("class", "edge" + (edge[1] === ERROR_PORT ? " error" : "") + (state.selectedEdge === index ? " selected" : ""));
      line.setAttribute("marker-end", "url(#arrow)");
      line.dataset.edge = edge.join(" ");
      svg.appendChild(line);
      svg.appendChild(hit);
    });
    var defs = document.createElementNS(SVG, "defs");
    defs.innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker>';
    svg.appendChild(defs);
  };

  window.FlowBuilderRender = { Drawing: Drawing, curve: curve };
})();
