// The tool picker of an agent node: the ticked tools (each box carries its tool's JSON), "ask
// first" on those that write, and the Python code tools typed as JSON, read into the step's
// config.tools. Server side: web/views/agent_tools.py and templates/web/_agent_tools.html.
(function () {
  "use strict";

  function $all(sel, el) { return Array.prototype.slice.call(el.querySelectorAll(sel)); }

  // The tools the form says, or null when the code tools are not valid JSON yet (the box says
  // why, and the step keeps its code tools until they are).
  function read(form, previous) {
    var tools = [];
    $all("[data-tool]", form).forEach(function (box) {
      if (!box.checked) return;
      var spec = JSON.parse(box.dataset.spec);
      if (spec.capability) {
        var ask = form.querySelector('[data-tool-ask="' + spec.capability + '"]');
        if (ask && ask.checked) spec.ask_first = true; else delete spec.ask_first;
      }
      tools.push(spec);
    });
    var code = form.querySelector("[data-code-tools]");
    var typed = code ? code.value.trim() : "";
    var codeTools = [];
    if (typed) {
      try {
        codeTools = JSON.parse(typed);
        if (!Array.isArray(codeTools)) throw new Error("a list [...] of code tools is expected");
        code.setCustomValidity("");
      } catch (e) {
        code.setCustomValidity("Not valid yet: " + e.message);
        codeTools = (previous || []).filter(function (t) { return t && t.code !== undefined; });
      }
    } else if (code) {
      code.setCustomValidity("");
    }
    return tools.concat(codeTools);
  }

  // The capabilities a step's tools bring (for its connection pickers).
  function capabilities(step) {
    var names = [];
    ((step.config || {}).tools || []).forEach(function (t) {
      if (!t || typeof t !== "object") return;
      if (t.capability) names.push(t.capability);
      if (t.code !== undefined) names = names.concat(t.grants || []);
    });
    return names;
  }

  window.FlowBuilderTools = { read: read, capabilities: capabilities };
})();
