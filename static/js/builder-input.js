// Pointer and keyboard on the canvas: dragging nodes (with their loop bodies), connecting a
// port to a node, panning the background or with Space held, Shift+drag to select a rectangle,
// the wheel to zoom, and the keys (Ctrl+Z/Y/C/V/D/S/A, Delete, arrows, +/-, Escape).
(function () {
  "use strict";

  var GRID = 10;

  function $(sel, el) { return (el || document).querySelector(sel); }

  // app: what the canvas offers (builder.js); els: {canvas, svg, viewport}.
  function Input(app, els) {
    var spaceHeld = false;

    function onPointerDown(e) {
      if (e.button !== 0) return;
      var node = e.target.closest(".node");
      if (spaceHeld || (!node && !e.target.closest(".edge-hit"))) {
        e.preventDefault();
        els.viewport.focus({ preventScroll: true });
        if (e.shiftKey && !spaceHeld) return rubberBand(e);
        // A click on the background (no drag) clears the selection.
        var from = { x: e.clientX, y: e.clientY };
        if (!spaceHeld) {
          document.addEventListener("pointerup", function (ev) {
            if (Math.abs(ev.clientX - from.x) + Math.abs(ev.clientY - from.y) < 4 && app.selection().length) app.setSelection([]);
          }, { once: true });
        }
        return app.view.startPan(e);
      }
      if (!node) return;
      var port = e.target.closest(".port.out, .port.error");
      e.preventDefault();
      var id = node.dataset.id;
      if (port) return startConnect(e, id, port.dataset.port);
      dragNodes(e, node, id);
    }

    function dragNodes(e, node, id) {
      var start = app.view.toCanvas(e.clientX, e.clientY);
      var ids = app.selection().indexOf(id) >= 0 && !e.shiftKey ? app.selection().slice() : [id];
      app.doc().steps.forEach(function (s) { if (s.parent && ids.indexOf(s.parent) >= 0 && ids.indexOf(s.id) < 0) ids.push(s.id); });
      var origins = ids.map(function (n) { var p = app.position(n); return { x: p.x, y: p.y }; });
      var before = app.snapshot();
      var moved = false;
      node.setPointerCapture(e.pointerId);
      function move(ev) {
        var p = app.view.toCanvas(ev.clientX, ev.clientY);
        var dx = p.x - start.x, dy = p.y - start.y;
        if (!moved && Math.abs(dx) + Math.abs(dy) < 4) return;
        moved = true;
        ids.forEach(function (n, i) {
          var pos = app.position(n);
          pos.x = Math.max(0, Math.round((origins[i].x + dx) / GRID) * GRID);
          pos.y = Math.max(0, Math.round((origins[i].y + dy) / GRID) * GRID);
          var el = document.getElementById("node-" + n);
          el.style.left = pos.x + "px";
          el.style.top = pos.y + "px";
        });
        app.renderEdges();
      }
      function up(ev) {
        node.removeEventListener("pointermove", move);
        node.removeEventListener("pointerup", up);
        if (moved) {
          app.record(before);
          app.markDirty();
          app.renderNodes();
        } else {
          app.select(id, ev.shiftKey);
        }
        var el = document.getElementById("node-" + id);
        if (el) el.focus();
      }
      node.addEventListener("pointermove", move);
      node.addEventListener("pointerup", up);
    }

    function rubberBand(e) {
      var start = app.view.toCanvas(e.clientX, e.clientY);
      var band = document.createElement("div");
      band.className = "rubber-band";
      els.canvas.appendChild(band);
      var box = { x: start.x, y: start.y, w: 0, h: 0 };
      function move(ev) {
        var p = app.view.toCanvas(ev.clientX, ev.clientY);
        box = { x: Math.min(p.x, start.x), y: Math.min(p.y, start.y), w: Math.abs(p.x - start.x), h: Math.abs(p.y - start.y) };
        band.style.left = box.x + "px"; band.style.top = box.y + "px";
        band.style.width = box.w + "px"; band.style.height = box.h + "px";
      }
      function up() {
        document.removeEventListener("pointermove", move);
        document.removeEventListener("pointerup", up);
        band.remove();
        var inside = app.nodeIds().filter(function (id) {
          var p = app.position(id), s = app.size(id);
          return p.x < box.x + box.w && p.x + s.w > box.x && p.y < box.y + box.h && p.y + s.h > box.y;
        });
        if (inside.length) app.setSelection(inside);
      }
      document.addEventListener("pointermove", move);
      document.addEventListener("pointerup", up);
    }

    function startConnect(e, from, port) {
      var ns = "http://www.w3.org/2000/svg";
      var temp = document.createElementNS(ns, "path");
      temp.setAttribute("class", "edge pending");
      els.svg.appendChild(temp);
      var a = app.anchor(from, port);
      function move(ev) { temp.setAttribute("d", app.curve(a, app.view.toCanvas(ev.clientX, ev.clientY))); }
      function up(ev) {
        document.removeEventListener("pointermove", move);
        document.removeEventListener("pointerup", up);
        temp.remove();
        var over = document.elementFromPoint(ev.clientX, ev.clientY);
        var target = over && over.closest(".node");
        if (!target) return;
        var before = app.snapshot();
        if (app.addEdge(from, port, target.dataset.id)) {
          app.record(before);
          app.markDirty();
          app.renderNodes();
          var text = "Connected " + from + (port === "out" ? "" : " (" + app.portLabel(port) + ")") + " to " + target.dataset.id;
          app.announce(text + ". Unsaved changes");
          app.say(text + ".");
          if (app.selected()) app.loadForm(app.selected());
        }
      }
      document.addEventListener("pointermove", move);
      document.addEventListener("pointerup", up);
    }

    function onWheel(e) {
      e.preventDefault();
      var factor = Math.exp(-e.deltaY * (e.ctrlKey ? 0.01 : 0.0015));
      app.view.zoomAt(factor, e.clientX, e.clientY);
    }

    function typing(el) {
      return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName) || el.closest(".CodeMirror"));
    }

    function onKey(e) {
      var mod = e.ctrlKey || e.metaKey;
      var key = e.key.toLowerCase();
      if ($("#connection-dialog").open || $("#leave-dialog").open) return;
      if (mod && key === "s") {
        e.preventDefault();
        $("#save-draft").click();
        return;
      }
      if (typing(e.target)) return;
      if (mod && key === "z") { e.preventDefault(); if (e.shiftKey) app.redo(); else app.undo(); return; }
      if (mod && key === "y") { e.preventDefault(); app.redo(); return; }
      if (mod && key === "c") { if (app.selection().length) { e.preventDefault(); app.copySelection(); } return; }
      if (mod && key === "v") { e.preventDefault(); app.paste(window.FlowBuilderHistory.pasted()); return; }
      if (mod && key === "d") {
        e.preventDefault();
        if (app.selection().length) app.duplicate();
        return;
      }
      if (mod && key === "a" && e.target.closest(".canvas-viewport")) { e.preventDefault(); app.setSelection(app.nodeIds()); return; }
      if (mod) return;
      if (e.key === " " && (e.target === document.body || e.target.closest(".canvas-viewport"))) {
        e.preventDefault();
        if (!spaceHeld) { spaceHeld = true; els.viewport.classList.add("can-pan"); }
        return;
      }
      if (!e.target.closest(".canvas-viewport")) return;
      if (e.key === "+" || e.key === "=") { e.preventDefault(); app.view.zoomBy(1.2); }
      else if (e.key === "-") { e.preventDefault(); app.view.zoomBy(1 / 1.2); }
      else if (e.key === "Escape") { app.setSelection([]); }
      else if (e.key === "Delete" || e.key === "Backspace") {
        e.preventDefault();
        if (app.edgeSelected()) app.deleteSelectedEdge();
        else app.deleteSteps(app.selection());
      }
    }

    function onKeyUp(e) {
      if (e.key === " " && spaceHeld) { spaceHeld = false; els.viewport.classList.remove("can-pan"); }
    }

    function onNodeKey(e) {
      var node = e.target.closest(".node");
      if (!node || e.target !== node) return;
      var id = node.dataset.id;
      var pos = app.position(id);
      var step = e.shiftKey ? 50 : GRID;
      var moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      if (moves[e.key]) {
        e.preventDefault();
        app.remember("move:" + id);
        pos.x = Math.max(0, pos.x + moves[e.key][0]);
        pos.y = Math.max(0, pos.y + moves[e.key][1]);
        node.style.left = pos.x + "px";
        node.style.top = pos.y + "px";
        app.renderEdges();
        app.markDirty();
      } else if (e.key === "Enter") {
        e.preventDefault();
        app.select(id, e.shiftKey);
      } else if (e.key === " " && !spaceHeld) {
        e.preventDefault();
        e.stopPropagation();
        app.select(id, e.shiftKey);
      } else if (e.key === "Delete" || e.key === "Backspace") {
        e.preventDefault();
        e.stopPropagation();
        app.deleteSteps(app.selection().indexOf(id) >= 0 ? app.selection() : [id]);
      }
    }

    els.viewport.addEventListener("pointerdown", onPointerDown);
    els.viewport.addEventListener("wheel", onWheel, { passive: false });
    els.canvas.addEventListener("keydown", onNodeKey);
    document.addEventListener("keydown", onKey);
    document.addEventListener("keyup", onKeyUp);
  }

  window.FlowBuilderInput = { Input: Input };
})();
