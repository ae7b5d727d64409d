// The last test run's outcome on the canvas: each node that ran shows its status (succeeded,
// failed, skipped, running), read from the run's live panel as its steps update.
(function () {
  "use strict";

  var SHOWN = { running: "Running", succeeded: "Succeeded", failed: "Failed", skipped: "Skipped", cancelled: "Cancelled" };

  function RunStatus(panel, canvas, app) {
    var self = this;
    this.panel = panel;
    this.canvas = canvas;
    this.app = app;
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
    var pinned = (this.app && this.app.doc().pinned) || {};
    Array.prototype.slice.call(this.canvas.querySelectorAll(".node")).forEach(function (node) {
      var pin = node.querySelector(".node-pin");
      if (pinned[node.dataset.id] && !pin) {
        pin = document.createElement("span");
        pin.className = "node-pin badge";
        pin.textContent = "Pinned";
        pin.title = "Test runs use this step's pinned output instead of running it";
        node.insertBefore(pin, node.querySelector(".node-errors"));
      } else if (!pinned[node.dataset.id] && pin) {
        pin.remove();
      }
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

  // The selected node's input and output in the last test run, shown in its form, with the
  // choice to pin that output: later test runs then start from it instead of running the step.
  RunStatus.prototype.showIn = function (container, stepId) {
    var old = container.querySelector(".node-last-run");
    if (old) old.remove();
    var oldPin = container.querySelector(".node-pin-bar");
    if (oldPin) oldPin.remove();
    var item = this.panel.querySelector('li.step[id$="-item-' + stepId + '"]');
    var io = item && item.querySelector(".io");
    var slot = container.querySelector("[data-edges-slot]");
    if (slot && stepId !== "trigger") this.pinBar(container, slot, stepId, item);
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

  RunStatus.prototype.pinBar = function (container, slot, stepId, item) {
    var self = this;
    var app = this.app;
    var doc = app.doc();
    var pinned = (doc.pinned || {})[stepId];
    var live = this.panel.querySelector("[data-run]");
    var canPin = !pinned && live && this.statuses[stepId] === "succeeded" && item;
    if (!pinned && !canPin) return;
    var bar = document.createElement("p");
    bar.className = "node-pin-bar small";
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    if (pinned) {
      bar.appendChild(document.createTextNode(
        "Pinned: test runs use this step's saved output instead of running it. "));
      button.textContent = "Unpin";
      button.addEventListener("click", function () {
        app.remember("pin");
        delete doc.pinned[stepId];
        if (!Object.keys(doc.pinned).length) delete doc.pinned;
        app.markDirty("Unpinned " + stepId + ": test runs run it again. Unsaved changes");
        app.renderNodes();
        self.showIn(container, stepId);
      });
    } else {
      button.textContent = "Pin this output";
      button.title = "Later test runs use this output instead of running the step";
      button.addEventListener("click", function () {
        var body = new FormData();
        body.append("run", live.dataset.run);
        body.append("step", stepId);
        var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];
        fetch(document.getElementById("builder").dataset.pinUrl, {
          method: "POST", body: body, headers: { "X-CSRFToken": csrf }, credentials: "same-origin"
        }).then(function (answer) { return answer.json(); }).then(function (pin) {
          if (pin.error) { app.say(pin.error); return; }
          app.remember("pin");
          doc.pinned = doc.pinned || {};
          doc.pinned[stepId] = { output: pin.output, port: pin.port };
          app.markDirty("Pinned the output of " + stepId + ": test runs start from it. Unsaved changes");
          app.say("Pinned the output of " + stepId);
          app.renderNodes();
          self.showIn(container, stepId);
        });
      });
    }
    bar.appendChild(button);
    slot.parentNode.insertBefore(bar, slot);
  };

  window.FlowBuilderRuns = { RunStatus: RunStatus };
})();
