// The flow document as a graph: node ids, the output ports of a node (from the block catalog),
// the order steps run in, fresh step ids, and pieces of a flow cut out and pasted in. Pure
// functions of the document; the canvas (builder.js) draws and edits with them.
(function () {
  "use strict";

  var ERROR_PORT = "error";

  function clone(value) { return JSON.parse(JSON.stringify(value)); }

  function nodeIds(doc) {
    return ["trigger"].concat(doc.steps.map(function (s) { return s.id; }));
  }

  function stepById(doc, id) {
    if (id === "trigger") return { id: "trigger", kind: doc.trigger.kind, config: doc.trigger.config || {} };
    return doc.steps.find(function (s) { return s.id === id; }) || null;
  }

  // The ports of a node, as flows.catalog.block_ports computes them: the block's own, those named
  // by the items of its `ports_from` list (before "default"), and "error" last for steps.
  function portsOf(doc, catalog, id) {
    var step = stepById(doc, id);
    var info = (step && catalog[step.kind]) || {};
    var ports = (info.ports || ["out"]).slice();
    if (info.ports_from) {
      var items = (step.config || {})[info.ports_from];
      (Array.isArray(items) ? items : []).forEach(function (item) {
        var port = item && item.port;
        if (typeof port === "string" && port && ports.indexOf(port) < 0) {
          var at = ports.indexOf("default");
          ports.splice(at < 0 ? ports.length : at, 0, port);
        }
      });
    }
    if (id !== "trigger") ports.push(ERROR_PORT);
    return ports;
  }

  function hasBody(doc, catalog, id) {
    var step = stepById(doc, id);
    return !!(step && catalog[step.kind] && catalog[step.kind].has_body);
  }

  // The ids with the bodies of the loops among them (a loop goes nowhere without its body).
  function withBodies(doc, ids) {
    ids = ids.slice();
    doc.steps.forEach(function (s) {
      if (s.parent && ids.indexOf(s.parent) >= 0 && ids.indexOf(s.id) < 0) ids.push(s.id);
    });
    return ids;
  }

  // Steps run in the order the edges give; ties keep the list order (as the compiler does).
  function orderedSteps(doc) {
    var ids = doc.steps.map(function (s) { return s.id; });
    var remaining = {};
    ids.forEach(function (id) { remaining[id] = 0; });
    doc.edges.forEach(function (e) {
      if (e[2] in remaining && e[0] !== e[2] && e[0] !== "trigger") remaining[e[2]] += 1;
    });
    var order = [];
    var ready = ids.filter(function (id) { return remaining[id] === 0; });
    while (ready.length) {
      ready.sort(function (a, b) { return ids.indexOf(a) - ids.indexOf(b); });
      var current = ready.shift();
      order.push(current);
      doc.edges.forEach(function (e) {
        if (e[0] === current && e[2] in remaining && e[0] !== e[2]) {
          remaining[e[2]] -= 1;
          if (remaining[e[2]] === 0) ready.push(e[2]);
        }
      });
    }
    ids.forEach(function (id) { if (order.indexOf(id) < 0) order.push(id); });
    return order.map(function (id) { return stepById(doc, id); });
  }

  // A step id not taken yet: "chat", "chat_2", ...
  function uniqueId(doc, base) {
    base = String(base).toLowerCase().replace(/[^a-z0-9_]/g, "_");
    if (!/^[a-z]/.test(base)) base = "step_" + base;
    var id = base, n = 1;
    while (id === "trigger" || stepById(doc, id)) { n += 1; id = base + "_" + n; }
    return id;
  }

  // "llm.chat" -> "chat", "logic.if" -> "if": the start of a new step's id.
  function kindBase(kind) {
    var parts = kind.split(".");
    return parts.length > 1 ? parts.slice(1).join("_") : kind;
  }

  // The node a new step joins after when nothing is selected: the last top-level end.
  function lastNode(doc) {
    var ids = nodeIds(doc);
    var withOut = {};
    doc.edges.forEach(function (e) { withOut[e[0]] = true; });
    var ends = ids.filter(function (id) { return !withOut[id] && !stepById(doc, id).parent; });
    return ends.length ? ends[ends.length - 1] : ids[ids.length - 1];
  }

  // Adds the edge unless it exists or makes no sense; a step reached from a loop's body port
  // runs in that body.
  function addEdge(doc, catalog, from, port, to) {
    if (from === to || to === "trigger") return false;
    if (doc.edges.some(function (e) { return e[0] === from && e[1] === port && e[2] === to; })) return false;
    doc.edges.push([from, port, to]);
    if (port === "body" && hasBody(doc, catalog, from)) stepById(doc, to).parent = from;
    return true;
  }

  function removeSteps(doc, ids) {
    var gone = function (id) { return ids.indexOf(id) >= 0; };
    doc.steps = doc.steps.filter(function (s) { return !gone(s.id); });
    doc.edges = doc.edges.filter(function (e) { return !gone(e[0]) && !gone(e[2]); });
    ids.forEach(function (id) { delete doc.layout[id]; });
  }

  // A piece of the flow to copy: the steps, the edges between them, their places and the
  // connection aliases they use (`aliases` maps a step to those).
  function piece(doc, ids, aliases) {
    ids = withBodies(doc, ids.filter(function (id) { return id !== "trigger" && stepById(doc, id); }));
    if (!ids.length) return null;
    var steps = ids.map(function (id) { return clone(stepById(doc, id)); });
    var connections = {};
    steps.forEach(function (s) {
      aliases(s).forEach(function (alias) { connections[alias] = clone(doc.connections[alias]); });
    });
    return {
      steps: steps,
      edges: doc.edges.filter(function (e) { return ids.indexOf(e[0]) >= 0 && ids.indexOf(e[2]) >= 0; }),
      layout: ids.reduce(function (acc, id) { acc[id] = clone(doc.layout[id] || { x: 40, y: 40 }); return acc; }, {}),
      connections: connections
    };
  }

  // Paste a piece under fresh ids, a little below and right of where it was; returns the ids.
  function paste(doc, p) {
    var renamed = {};
    p.steps.forEach(function (s) {
      renamed[s.id] = uniqueId(doc, s.id || "step");
      doc.steps.push({ id: renamed[s.id] });
    });
    doc.connections = doc.connections || {};
    Object.keys(p.connections || {}).forEach(function (alias) {
      if (!doc.connections[alias]) doc.connections[alias] = p.connections[alias];
    });
    p.steps.forEach(function (s) {
      var copy = clone(s);
      copy.id = renamed[s.id];
      if (copy.parent) copy.parent = renamed[copy.parent] || (stepById(doc, copy.parent) ? copy.parent : undefined);
      if (!copy.parent) delete copy.parent;
      var at = doc.steps.findIndex(function (x) { return x.id === copy.id; });
      doc.steps[at] = copy;
      var place = (p.layout || {})[s.id] || { x: 40, y: 40 };
      doc.layout[copy.id] = { x: place.x + 40, y: place.y + 40 };
    });
    (p.edges || []).forEach(function (e) {
      if (renamed[e[0]] && renamed[e[2]]) doc.edges.push([renamed[e[0]], e[1], renamed[e[2]]]);
    });
    return p.steps.map(function (s) { return renamed[s.id]; });
  }

  // A document as the canvas holds it: every part present, edges as [from, port, to].
  function normalise(doc) {
    doc.trigger = doc.trigger || { kind: "trigger.manual", config: {} };
    doc.steps = doc.steps || [];
    doc.edges = (doc.edges || []).map(function (e) { return e.length === 2 ? [e[0], "out", e[1]] : e; });
    doc.layout = doc.layout || {};
    doc.connections = doc.connections || {};
    return doc;
  }

  window.FlowBuilderGraph = {
    ERROR_PORT: ERROR_PORT,
    nodeIds: nodeIds,
    stepById: stepById,
    portsOf: portsOf,
    hasBody: hasBody,
    withBodies: withBodies,
    orderedSteps: orderedSteps,
    uniqueId: uniqueId,
    kindBase: kindBase,
    lastNode: lastNode,
    addEdge: addEdge,
    removeSteps: removeSteps,
    piece: piece,
    paste: paste,
    normalise: normalise
  };
})();
