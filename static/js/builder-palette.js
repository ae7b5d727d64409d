// The palette of blocks: a search box that filters it (Enter adds the first match), a click
// that adds a block, and dragging a block onto the canvas to add it where it is dropped.
(function () {
  "use strict";

  function $all(sel, el) { return Array.prototype.slice.call((el || document).querySelectorAll(sel)); }

  // options: palette, search, empty (the "no match" note), viewport, add(kind, clientPoint|null)
  function Palette(options) {
    var self = this;
    this.o = options;
    options.search.addEventListener("input", function () { self.filter(); });
    options.search.addEventListener("keydown", function (e) {
      if (e.key !== "Enter") return;
      e.preventDefault();
      var first = self.items().find(function (b) { return !b.parentElement.hidden; });
      if (first) options.add(first.dataset.kind, null);
    });
    options.palette.addEventListener("pointerdown", function (e) { self.drag(e); });
    this.items().forEach(function (btn) {
      btn.addEventListener("click", function () { if (!btn.dataset.dragged) options.add(btn.dataset.kind, null); });
    });
  }

  Palette.prototype.items = function () { return $all(".palette-item", this.o.palette); };

  Palette.prototype.filter = function () {
    var words = this.o.search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    this.items().forEach(function (btn) {
      var text = (btn.textContent + " " + btn.dataset.kind + " " + (btn.title || "")).toLowerCase();
      var match = words.every(function (w) { return text.indexOf(w) >= 0; });
      btn.parentElement.hidden = !match;
      if (match) shown += 1;
    });
    $all(".palette-group", this.o.palette).forEach(function (group) {
      group.hidden = !$all("li", group).some(function (li) { return !li.hidden; });
    });
    this.o.empty.hidden = shown > 0;
  };

  // A drag of more than a few pixels shows the block under the pointer; dropped on the canvas,
  // it is added there (and the click that follows is ignored).
  Palette.prototype.drag = function (e) {
    var btn = e.target.closest(".palette-item");
    if (!btn || e.button !== 0) return;
    var viewport = this.o.viewport, add = this.o.add;
    var start = { x: e.clientX, y: e.clientY };
    var ghost = null;
    function move(ev) {
      if (!ghost && Math.abs(ev.clientX - start.x) + Math.abs(ev.clientY - start.y) < 6) return;
      if (!ghost) {
        ghost = document.createElement("div");
        ghost.className = "palette-ghost";
        ghost.textContent = btn.textContent;
        document.body.appendChild(ghost);
      }
      ghost.style.left = ev.clientX + 8 + "px";
      ghost.style.top = ev.clientY + 8 + "px";
    }
    function up(ev) {
      document.removeEventListener("pointermove", move);
      document.removeEventListener("pointerup", up);
      if (!ghost) return;
      ghost.remove();
      btn.dataset.dragged = "1";
      setTimeout(function () { delete btn.dataset.dragged; }, 0);
      var rect = viewport.getBoundingClientRect();
      if (ev.clientX < rect.left || ev.clientX > rect.right || ev.clientY < rect.top || ev.clientY > rect.bottom) return;
      add(btn.dataset.kind, { x: ev.clientX, y: ev.clientY });
    }
    document.addEventListener("pointermove", move);
    document.addEventListener("pointerup", up);
  };

  window.FlowBuilderPalette = { Palette: Palette };
})();
