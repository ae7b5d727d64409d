// The inspector: the selected node's form (HTML from the server, generated from its block's
// declaration), applying its fields to the document as they change, renaming a step, the
// "Runs after" checkboxes (connecting from the keyboard), the connection picker and its
// "create a new one" dialog, and the summary of a multiple selection.
(function () {
  "use strict";

  var STEP_ID = /^[a-z][a-z0-9_]{0,62}$/;
  var FIELDS = "[data-param], [data-grant], [data-limit], [data-incoming], [data-connection-service], " +
    "[data-trigger-kind], [data-step-id], [data-tool], [data-tool-ask], [data-code-tools]";
  var ERROR_PORT = window.FlowBuilderGraph.ERROR_PORT;

  function $(sel, el) { return (el || document).querySelector(sel); }
  function $all(sel, el) { return Array.prototype.slice.call((el || document).querySelectorAll(sel)); }
  function clone(value) { return JSON.parse(JSON.stringify(value)); }
  function nodeName(id) { return id === "trigger" ? "the trigger" : "step " + id; }

  // app: what the canvas offers (builder.js); els: {root, inspector}.
  function Inspector(app, els) {
    var formFor = null;
    var focusAfterForm = null;
    var dialogFor = null;

    function showMultiSelection() {
      formFor = null;
      var steps = app.selection().filter(function (id) { return id !== "trigger"; });
      els.inspector.innerHTML = "";
      var h = document.createElement("h2");
      h.className = "h4";
      h.textContent = app.selection().length + " nodes selected";
      var p = document.createElement("p");
      p.className = "muted small";
      p.textContent = app.selection().join(", ") + ". Ctrl+C copies them, Ctrl+D duplicates, Delete removes the steps.";
      els.inspector.appendChild(h);
      els.inspector.appendChild(p);
      if (steps.length) {
        var dup = document.createElement("button");
        dup.type = "button";
        dup.className = "secondary";
        dup.dataset.duplicate = "";
        dup.textContent = "Duplicate";
        var del = document.createElement("button");
        del.type = "button";
        del.className = "danger";
        del.dataset.deleteSelection = "";
        del.textContent = "Delete " + steps.length + " step" + (steps.length > 1 ? "s" : "");
        els.inspector.appendChild(dup);
        els.inspector.appendChild(document.createTextNode(" "));
        els.inspector.appendChild(del);
      }
    }

    // What a node's form is rendered from: the step and the flow's connections.
    function formData(id) {
      var step = app.stepById(id);
      if (!step) return null;
      var data = { id: step.id, kind: step.kind, config: step.config || {} };
      ["grants", "limits", "connection", "name", "parent"].forEach(function (k) { if (step[k] !== undefined) data[k] = step[k]; });
      return { step: JSON.stringify(data), connections: JSON.stringify(app.doc().connections || {}) };
    }

    // Each form request is numbered, and the newest one's state kept: a form that arrives after
    // the node changed (a field typed while it loaded) would show, and then save, the old
    // values; it is dropped, and the newest request asks again.
    var formSeq = 0;
    var sentState = "";

    function loadForm(id, focusId) {
      var data = formData(id);
      if (!data) return;
      formFor = id;
      focusAfterForm = focusId || null;
      formSeq += 1;
      sentState = data.step + data.connections;
      htmx.ajax("POST", els.root.dataset.nodeUrl, {
        target: "#inspector",
        swap: "innerHTML",
        headers: { "X-Node-Form": String(formSeq) },
        values: {
          step: data.step,
          errors: JSON.stringify(app.errorsFor(id)),
          connections: data.connections
        }
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
      var id = app.selected();
      if (!form || !id || formFor !== id) return;
      var target = event.target;
      // Only the form's own fields: the code editor's inner textarea, for one, sends a change
      // when htmx removes it while focused, which is no edit.
      if (!target.matches(FIELDS)) return;
      var step = app.stepById(id);
      if (target.matches("[data-connection-service]")) {
        if (event.type === "change") pickConnection(target);
        return;
      }
      if (target.matches("[data-trigger-kind]")) {
        app.remember();
        var defaults = (app.catalog[target.value] && app.catalog[target.value].defaults) || {};
        app.doc().trigger = { kind: target.value, config: clone(defaults) };
        app.markDirty();
        app.renderNodes();
        loadForm("trigger", "trigger-kind");
        return;
      }
      if (target.matches("[data-step-id]")) {
        if (event.type === "change") renameStep(id, target);
        return;
      }
      app.remember("field:" + id + ":" + (target.id || target.value));
      if (id === "trigger") {
        app.doc().trigger.config = app.doc().trigger.config || {};
        step = app.doc().trigger;
      }
      var portsBefore = app.portsOf(id).join(",");
      step.config = step.config || {};
      $all("[data-param]", form).forEach(function (el) {
        var value = readParam(el);
        if (value === null || value === "") delete step.config[el.dataset.param];
        else step.config[el.dataset.param] = value;
      });
      if ($("[data-grant]", form)) {
        var grantsBefore = (step.grants || []).join(",");
        step.grants = $all("[data-grant]", form).filter(function (el) { return el.checked; })
          .map(function (el) { return el.value; });
        var limits = {};
        $all("[data-limit]", form).forEach(function (el) {
          if (el.value !== "") limits[el.dataset.limit] = Number(el.value);
        });
        if (Object.keys(limits).length) step.limits = limits; else delete step.limits;
        // New grants may need a connection: the form shows its picker.
        if (target.matches("[data-grant]") && grantsBefore !== step.grants.join(",")) {
          app.markDirty();
          loadForm(id, target.id || null);
          return;
        }
      }
      if ($("[data-tools]", form)) {
        step.config.tools = window.FlowBuilderTools.read(form, step.config.tools);
        // A tool of another service needs its connection: the form shows its picker.
        if (target.matches("[data-tool], [data-code-tools]") && event.type === "change") {
          app.markDirty();
          loadForm(id, target.id || null);
          return;
        }
      }
      if (target.matches("[data-incoming]")) {
        var parts = target.value.split("\u0000");
        if (target.checked) app.addEdge(parts[0], parts[1], id); else app.removeEdge(parts[0], parts[1], id);
      }
      if (app.portsOf(id).join(",") !== portsBefore) app.renderNodes();
      app.markDirty();
    }

    function renameStep(oldId, input) {
      var newId = input.value.trim();
      var problem = "";
      if (!STEP_ID.test(newId) || newId === "trigger") {
        problem = "Use lowercase letters, digits and underscores, starting with a letter.";
      } else if (newId !== oldId && app.stepById(newId)) {
        problem = "Another step already has the id “" + newId + "”.";
      }
      input.setCustomValidity(problem);
      input.reportValidity();
      if (problem || newId === oldId) return;
      app.remember();
      app.stepById(oldId).id = newId;
      app.doc().steps.forEach(function (s) { if (s.parent === oldId) s.parent = newId; });
      app.doc().edges = app.doc().edges.map(function (e) {
        return [e[0] === oldId ? newId : e[0], e[1], e[2] === oldId ? newId : e[2]];
      });
      app.doc().layout[newId] = app.doc().layout[oldId];
      delete app.doc().layout[oldId];
      app.replaceSelection([newId]);
      app.markDirty();
      app.renderNodes();
      loadForm(newId, "step-id");
    }

    // "Runs after" checkboxes: the keyboard way to connect nodes, one per output port.
    function fillEdgesSlot() {
      var slot = $("[data-edges-slot]", els.inspector);
      var id = app.selected();
      // Two forms swapped in quick succession settle twice on the same content: fill it once.
      if (!slot || slot.firstChild || !id || id === "trigger") return;
      var fieldset = document.createElement("fieldset");
      fieldset.className = "incoming";
      var legend = document.createElement("legend");
      legend.textContent = "Runs after";
      fieldset.appendChild(legend);
      app.nodeIds().filter(function (other) { return other !== id; }).forEach(function (other) {
        var ports = app.portsOf(other);
        var regular = ports.filter(function (p) { return p !== ERROR_PORT; });
        ports.forEach(function (port) {
          var label = document.createElement("label");
          label.className = "check" + (port === ERROR_PORT ? " error-port" : "");
          var box = document.createElement("input");
          box.type = "checkbox";
          box.value = other + "\u0000" + port;
          box.id = "after-" + other + "-" + port.replace(/[^A-Za-z0-9_-]/g, "_");
          box.dataset.incoming = "";
          box.checked = app.doc().edges.some(function (e) { return e[0] === other && e[1] === port && e[2] === id; });
          label.appendChild(box);
          var text = other === "trigger" ? "the trigger" : other;
          if (port === ERROR_PORT) text += " fails";
          else if (regular.length > 1) text += " (" + port + ")";
          label.appendChild(document.createTextNode(" " + text));
          fieldset.appendChild(label);
        });
      });
      slot.appendChild(fieldset);
    }

    // After htmx settles the new form (it restores the attributes of elements that kept their
    // id only then, which would show the code textarea again beside its editor).
    function formArrived() {
      fillEdgesSlot();
      window.FlowBuilderCode.setUp(els.inspector);
      if (focusAfterForm) {
        var el = document.getElementById(focusAfterForm);
        focusAfterForm = null;
        if (el) el.focus();
      }
    }

    function showEmpty() {
      formFor = null;
      els.inspector.innerHTML = '<p class="muted">Select a node on the canvas to edit it.</p>';
    }

    // ---- Connections of a node ----------------------------------------------------------------

    function pickConnection(select) {
      var id = app.selected();
      var step = app.stepById(id);
      var service = select.dataset.connectionService;
      if (select.value === "new") {
        openConnectionDialog(select);
        return;
      }
      app.remember();
      if (select.value) {
        var alias = app.connections.bind(app.doc(), step, service, Number(select.value), select.hasAttribute("data-primary"));
        app.say(nodeName(id) + " uses the connection “" + select.selectedOptions[0].textContent + "” (" + alias + ").");
      } else if (select.hasAttribute("data-primary")) {
        delete step.connection;
      }
      app.markDirty();
      loadForm(id, select.id);
    }

    function openConnectionDialog(select) {
      var dialog = $("#connection-dialog");
      var service = select.dataset.connectionService;
      dialogFor = { select: select.id, service: service, previous: select.dataset.previous || "", node: app.selected() };
      $("#connection-dialog-title").textContent = "New " + $('label[for="' + select.id + '"]').textContent.trim();
      $("#connection-dialog-body").innerHTML = '<p class="muted">Loading the form…</p>';
      dialog.showModal();
      htmx.ajax("GET", els.root.dataset.connectionUrl.replace("service-slot", service), {
        target: "#connection-dialog-body", swap: "innerHTML"
      }).then(function () {
        var first = $("#connection-dialog-body input:not([type=hidden])");
        if (first) first.focus();
      });
    }

    function closeConnectionDialog() {
      var dialog = $("#connection-dialog");
      if (dialog.open) dialog.close();
    }

    function connectionDialogClosed() {
      if (!dialogFor) return;
      var select = document.getElementById(dialogFor.select);
      if (select && select.value === "new") select.value = dialogFor.previous;
      if (select) select.focus();
      dialogFor = null;
    }

    function connectionCreated(detail) {
      if (!dialogFor) return;
      var pending = dialogFor;
      dialogFor = null;
      closeConnectionDialog();
      var step = app.stepById(pending.node);
      if (!step) return;
      app.remember();
      var select = document.getElementById(pending.select);
      var primary = select ? select.hasAttribute("data-primary") : app.connections.servicesOf(step)[0] === pending.service;
      var alias = app.connections.bind(app.doc(), step, pending.service, detail.id, primary);
      app.markDirty();
      app.say("Created the connection “" + detail.name + "”; " + nodeName(pending.node) + " uses it (" + alias + ").");
      if (app.selected() === pending.node) loadForm(pending.node, pending.select);
    }

    // The form of the node that is selected now, rendered from its current state; a form
    // arriving for another node, or from an older state, is dropped.
    function wanted(detail) {
      if (formFor === null || formFor !== app.selected()) return false;
      var headers = (detail && detail.requestConfig && detail.requestConfig.headers) || {};
      var seq = Number(headers["X-Node-Form"]);
      if (!seq) return true;
      if (seq !== formSeq) return false;
      var data = formData(formFor);
      if (data && sentState !== data.step + data.connections) {
        loadForm(formFor, focusAfterForm);
        return false;
      }
      return true;
    }

    function noteFocus(e) {
      if (e.target.matches("[data-connection-service]")) e.target.dataset.previous = e.target.value;
    }

    return {
      load: loadForm,
      multi: showMultiSelection,
      empty: showEmpty,
      changed: formChanged,
      arrived: formArrived,
      wanted: wanted,
      noteFocus: noteFocus,
      dialogClosed: connectionDialogClosed,
      closeDialog: closeConnectionDialog,
      connectionCreated: connectionCreated
    };
  }

  window.FlowBuilderInspector = { Inspector: Inspector };
})();
