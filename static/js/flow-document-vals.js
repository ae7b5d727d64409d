// Requests from inside an element marked `data-flow-document` send the builder's document as it
// is at that moment (what hx-vals="js:..." did, without the eval a strict CSP forbids).
// data-flow-document="optional": an empty document while the canvas is still loading.
document.addEventListener("htmx:configRequest", (event) => {
  const source = event.detail.elt.closest("[data-flow-document]");
  if (!source) return;
  try {
    event.detail.parameters.document = window.FlowBuilder.serialize();
  } catch (error) {
    if (source.dataset.flowDocument !== "optional") throw error;
    event.detail.parameters.document = "";
  }
});
