// Live updates over WebSockets. The server sends JSON events ({"type", "html", ...}); "html" holds
// fragments swapped in by id (out of band). Log lines and agent trace entries the page already
// shows are dropped; a finished step or run is fetched again as the server renders it, with its
// outputs.
(function () {
  "use strict";
  var FINISHED = ["succeeded", "failed", "skipped", "cancelled", "succeeded_with_errors"];
  // A run that parks (a wait, a long retry backoff) is shown again as the server renders it.
  var SETTLED = FINISHED.concat(["waiting"]);

  function refetch(url, target) {
    if (document.querySelector(target)) htmx.ajax("GET", url, { target: target, swap: "outerHTML" });
  }

  function onRunPage(event, live) {
    if (event.type === "step" && SETTLED.indexOf(event.status) >= 0) {
      var id = "#run-" + event.run + "-item-" + event.step;
      setTimeout(function () { refetch(live.dataset.stepUrl + event.step + "/", id); }, 0);
    } else if (event.type === "run") {
      var badge = document.getElementById("run-" + event.run + "-status");
      if (badge) {
        badge.className = "badge " + event.status;
        var words = event.status.replace(/_/g, " ");
        badge.textContent = words.charAt(0).toUpperCase() + words.slice(1);
      }
      if (SETTLED.indexOf(event.status) >= 0) {
        setTimeout(function () { refetch(live.dataset.liveUrl, "#run-live-" + event.run); }, 0);
      }
    }
  }

  htmx.defineExtension("ws-json", {
    transformResponse: function (text, xhr, elt) {
      var event;
      try {
        event = JSON.parse(text);
      } catch (e) {
        return text;
      }
      if (!event || typeof event !== "object") return "";
      if (elt && elt.dataset.liveFlow !== undefined) {
        // A flow page only refreshes its list of runs when one starts or ends.
        if (event.type === "run") htmx.trigger(elt, "runs-changed");
        return "";
      }
      if (elt && elt.dataset.run) onRunPage(event, elt);
      var template = document.createElement("template");
      template.innerHTML = typeof event.html === "string" ? event.html : "";
      template.content.querySelectorAll(".log-line[id], .trace-entry[id]").forEach(function (line) {
        if (document.getElementById(line.id)) line.remove();
      });
      return template.innerHTML;
    }
  });
})();
