// The last test run's outcome on the canvas: each node that ran shows its status (succeeded,
// failed, skipped, running), read from the run's live panel as its steps update.
(function () {
  "use strict";

  var SHOWN = { running: "Running", succeeded: "Succeeded", failed: "Failed", skipped: "Skipped", cancelled: "Cancelled" };

  function RunStatus(panel, canvas) {
    var self = this;
    this.panel = panel;
    this.canvas = canvas;
    this.statuses = {};
    new MutationObserver(function () { self.read(); }).observe(panel, {
      childList: true, subtree: true, attributes: true, attributeFilter: ["class"]
    });
  }

  // The run panel lists a step as <li class="step STATUS" id="run-N-item-STEP">.
  RunStatus.prototype.read = function () {
    var statuses = {};
    Array.prototype.slice.call(this.panel.querySelectorAll('li.step[id*="-item-"]')).forEach(function (li) {
      var step = li.id.split("-item-")[1];
      var status = Array.prototype.slice.call(li.classList).find(function (c) { return SHOWN[c]; });
      if (step && status) statuses[step] = status;
    });
    if (JSON.stringify(statuses) === JSON.stringify(this.statuses)) return;
    this.statuses = statuses;
    this.apply();
  };

  // Called after every drawing of the nodes as well.
  RunStatus.prototype.apply = function () {
    var statuses = this.statuses;
    Array.prototype.slice.call(this.canvas.querySelectorAll(".node")).forEach(function (node) {
      var status = statuses[node.dataset.id];
      var badge = node.querySelector(".node-run");
      if (!status) {
        if (badge) badge.remove();
        return;
      }
      if (!badge) {
        badge = document.createElement("span");
        node.insertBefore(badge, node.querySelector(".node-errors"));
      }
      badge.className = "node-run badge " + status;
      badge.textContent = SHOWN[status];
      badge.title = "In the last test run";
    });
  };

  // The selected node's input and output in the last test run, shown in its form.
  RunStatus.prototype.showIn = function (container, stepId) {
    var old = container.querySelector(".node-last-run");
    if (old) old.remove();
    var item = this.panel.querySelector('li.step[id$="-item-' + stepId + '"]');
    var io = item && item.querySelector(".io");
    var slot = container.querySelector("[data-edges-slot]");
    if (!io || !slot) return;
    var box = document.createElement("details");
    box.className = "node-last-run";
    box.open = true;
    var summary = document.createElement("summary");
    summary.textContent = "In the last test run: " + (SHOWN[this.statuses[stepId]] || "").toLowerCase();
    box.appendChild(summary);
    box.appendChild(io.cloneNode(true));
    slot.parentNode.insertBefore(box, slot);
  };

  window.FlowBuilderRuns = { RunStatus: RunStatus };
})();
