// Which connection aliases of the flow a step goes through, and binding a step to one of the
// owner's connections. The flow's `connections` are derived from the nodes: the server drops the
// aliases no step needs on every save (web/views/builder.py, prune_connections).
(function () {
  "use strict";

  // The services a step needs: its block's (and its tools', for an agent), or those of a code
  // step's grants.
  function servicesOf(catalog, capServices, step) {
    var info = catalog[step.kind] || {};
    if (info.service && !info.tools) return [info.service];
    var names = (info.capabilities || []).concat(info.category === "code" ? step.grants || [] : [])
      .concat(info.tools ? window.FlowBuilderTools.capabilities(step) : []);
    var services = info.service ? [info.service] : [];
    names.forEach(function (name) {
      var service = capServices[name];
      if (service && services.indexOf(service) < 0) services.push(service);
    });
    return services;
  }

  function aliasesOf(doc, service) {
    var all = doc.connections || {};
    return Object.keys(all).filter(function (a) { return all[a] && all[a].service === service; }).sort();
  }

  // The alias a step goes through for a service: the one it names, or the flow's only one.
  function aliasUsed(doc, step, service) {
    var of = aliasesOf(doc, service);
    if (step.connection && of.indexOf(step.connection) >= 0) return step.connection;
    return of.length === 1 ? of[0] : null;
  }

  function Connections(catalog, capServices) {
    this.catalog = catalog;
    this.capServices = capServices;
  }

  Connections.prototype.servicesOf = function (step) {
    return servicesOf(this.catalog, this.capServices, step);
  };

  // Every alias a step uses (for copying it with its connections).
  Connections.prototype.aliasesUsed = function (doc, step) {
    return this.servicesOf(step).map(function (service) { return aliasUsed(doc, step, service); })
      .filter(Boolean);
  };

  // Bind a step to one of the owner's connections: reuse the alias already bound to it, or the
  // step's own alias when no other step shares it, or make a new alias named after the service
  // ("llm", "llm_2", ...). A step names its alias in "connection" for its first service.
  Connections.prototype.bind = function (doc, step, service, connectionId, primary) {
    var self = this;
    doc.connections = doc.connections || {};
    var all = doc.connections;
    var of = aliasesOf(doc, service);
    var alias = of.find(function (a) { return all[a].connection === connectionId; });
    var current = aliasUsed(doc, step, service);
    var sharing = doc.steps.filter(function (s) {
      return s !== step && self.servicesOf(s).indexOf(service) >= 0 && aliasUsed(doc, s, service) === current;
    });
    if (!alias && current && !sharing.length) {
      alias = current;
      all[alias].connection = connectionId;
    }
    if (!alias) {
      // Steps that relied on the flow having one alias of this service keep the one they had.
      if (of.length === 1) {
        doc.steps.forEach(function (s) {
          if (s !== step && self.servicesOf(s)[0] === service && !s.connection) s.connection = of[0];
        });
      }
      alias = service;
      var n = 1;
      while (all[alias]) { n += 1; alias = service + "_" + n; }
      all[alias] = { service: service, connection: connectionId };
    }
    if (primary) step.connection = alias;
    return alias;
  };

  window.FlowBuilderConnections = { Connections: Connections };
})();
