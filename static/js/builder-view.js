// The canvas viewport: zoom and pan as one CSS transform on the canvas, fit to view, and the
// "Arrange" layout (layers by longest path, left to right). Knows nothing of the flow document
// beyond node ids, edges and sizes.
(function () {
  "use strict";

  var MIN_ZOOM = 0.25;
  var MAX_ZOOM = 2;

  function View(viewport, canvas, onChange) {
    this.viewport = viewport;
    this.canvas = canvas;
    this.onChange = onChange || function () {};
    this.x = 0;
    this.y = 0;
    this.z = 1;
    this.apply();
  }

  View.prototype.apply = function () {
    this.canvas.style.transform = "translate(" + this.x + "px," + this.y + "px) scale(" + this.z + ")";
    var grid = 20 * this.z;
    this.viewport.style.backgroundSize = grid + "px " + grid + "px";
    this.viewport.style.backgroundPosition = this.x + "px " + this.y + "px";
    this.onChange(this);
  };

  // Client (screen) coordinates to canvas coordinates.
  View.prototype.toCanvas = function (clientX, clientY) {
    var rect = this.viewport.getBoundingClientRect();
    return { x: (clientX - rect.left - this.x) / this.z, y: (clientY - rect.top - this.y) / this.z };
  };

  View.prototype.zoomAt = function (factor, clientX, clientY) {
    var rect = this.viewport.getBoundingClientRect();
    var z = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, this.z * factor));
    var px = clientX - rect.left, py = clientY - rect.top;
    // Keep the canvas point under the pointer where it is.
    this.x = px - (px - this.x) * (z / this.z);
    this.y = py - (py - this.y) * (z / this.z);
    this.z = z;
    this.apply();
  };

  View.prototype.zoomBy = function (factor) {
    var rect = this.viewport.getBoundingClientRect();
    this.zoomAt(factor, rect.left + rect.width / 2, rect.top + rect.height / 2);
  };

  View.prototype.panBy = function (dx, dy) {
    this.x += dx;
    this.y += dy;
    this.apply();
  };

  // Show the whole box {x, y, w, h} (canvas coordinates), never enlarged past 100 %.
  View.prototype.fit = function (box) {
    var vw = this.viewport.clientWidth, vh = this.viewport.clientHeight;
    var margin = 30;
    var z = Math.min(1, (vw - 2 * margin) / Math.max(box.w, 1), (vh - 2 * margin) / Math.max(box.h, 1));
    this.z = Math.max(MIN_ZOOM, z);
    this.x = margin - box.x * this.z + Math.max(0, (vw - 2 * margin - box.w * this.z) / 2);
    this.y = margin - box.y * this.z;
    this.apply();
  };

  // Whether the box is entirely inside the viewport at the current zoom and pan.
  View.prototype.shows = function (box) {
    var vw = this.viewport.clientWidth, vh = this.viewport.clientHeight;
    var left = box.x * this.z + this.x, top = box.y * this.z + this.y;
    return left >= 0 && top >= 0 && left + box.w * this.z <= vw && top + box.h * this.z <= vh;
  };

  // Drag the background (or anything while Space is held) to pan.
  View.prototype.startPan = function (e) {
    var self = this;
    var last = { x: e.clientX, y: e.clientY };
    this.viewport.classList.add("panning");
    function move(ev) {
      self.panBy(ev.clientX - last.x, ev.clientY - last.y);
      last = { x: ev.clientX, y: ev.clientY };
    }
    function up() {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
      self.viewport.classList.remove("panning");
    }
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  };

  // Layers by longest path from the sources, left to right; each node of a layer below the last.
  // `nodes` is a list of ids, `edges` a list of [from, to], `size(id)` gives {w, h}; `extra(id)`
  // is room to keep free under a node (a loop body's box). Returns {id: {x, y}}.
  function layered(nodes, edges, size, extra, origin) {
    var layer = {}, incoming = {}, outgoing = {};
    nodes.forEach(function (id) { layer[id] = 0; incoming[id] = 0; outgoing[id] = []; });
    edges.forEach(function (e) {
      if (e[0] in layer && e[1] in layer && e[0] !== e[1]) {
        incoming[e[1]] += 1;
        outgoing[e[0]].push(e[1]);
      }
    });
    var ready = nodes.filter(function (id) { return incoming[id] === 0; });
    var seen = {};
    while (ready.length) {
      var id = ready.shift();
      seen[id] = true;
      outgoing[id].forEach(function (next) {
        layer[next] = Math.max(layer[next], layer[id] + 1);
        incoming[next] -= 1;
        if (incoming[next] === 0) ready.push(next);
      });
    }
    // Nodes on a cycle go one layer after everything else.
    var deepest = Math.max.apply(null, [0].concat(nodes.map(function (id) { return layer[id]; })));
    nodes.forEach(function (id) { if (!seen[id]) layer[id] = deepest + 1; });
    var columns = [];
    nodes.forEach(function (id) { (columns[layer[id]] = columns[layer[id]] || []).push(id); });
    var place = {}, x = origin.x;
    columns.forEach(function (column) {
      if (!column) return;
      // Order a column by where its predecessors sit, so that lines cross less.
      var rank = function (id) {
        var ys = edges.filter(function (e) { return e[1] === id && place[e[0]]; })
          .map(function (e) { return place[e[0]].y; });
        return ys.length ? ys.reduce(function (a, b) { return a + b; }, 0) / ys.length : Infinity;
      };
      column.sort(function (a, b) { return rank(a) - rank(b) || nodes.indexOf(a) - nodes.indexOf(b); });
      var y = origin.y, width = 0;
      column.forEach(function (id) {
        var s = size(id), room = extra(id);
        place[id] = { x: x, y: y };
        y += s.h + room.h + 40;
        width = Math.max(width, s.w, room.w);
      });
      x += width + 80;
    });
    return place;
  }

  // Positions for a whole flow: the top-level nodes by layers from (40, 40), and each loop's body
  // laid out the same way in a box under its loop node. `bodies` maps a loop id to its body's ids.
  function arrange(top, bodies, pairs, size) {
    function extent(ids) {
      var places = block(ids, { x: 0, y: 0 });
      var w = 0, h = 0;
      Object.keys(places).forEach(function (id) {
        w = Math.max(w, places[id].x + size(id).w);
        h = Math.max(h, places[id].y + size(id).h);
      });
      return { w: w + 32, h: h + 70 };
    }
    function room(id) { return bodies[id] ? extent(bodies[id]) : { w: 0, h: 0 }; }
    function block(ids, origin) {
      var places = layered(ids, pairs, size, room, origin);
      ids.forEach(function (id) {
        if (!bodies[id]) return;
        var inner = block(bodies[id], { x: places[id].x + 16, y: places[id].y + size(id).h + 60 });
        Object.keys(inner).forEach(function (b) { places[b] = inner[b]; });
      });
      return places;
    }
    return block(top, { x: 40, y: 40 });
  }

  window.FlowBuilderView = { View: View, layered: layered, arrange: arrange };
})();
