// Requests from inside an element marked `data-flow-document` send the builder's document as it
// is at that moment (what hx-vals="js:..." did, without the eval a strict CSP forbids).
// "payload": what Save, Deploy and Run send (the document and its draft revision);
// "optional": the document alone, empty while the canvas is still loading.
document.addEventListener("htmx:configRequest", (event) => {
  const source = event.detail.elt.closest("[data-flow-document]");
  if (!source) return;
  const parameters = event.detail.parameters;
  if (source.dataset.flowDocument === "optional") {
    try {
      parameters.document = window.FlowBuilder.serialize();
    } catch (error) {
      parameters.document = "";
    }
    return;
  }
  Object.assign(parameters, window.FlowBuilder.payload());
});
