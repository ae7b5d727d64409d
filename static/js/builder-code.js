// The code editor of a Python node: CodeMirror over the form's textarea, Tab indents, Esc then
// Tab leaves the editor (so that keyboard users are not trapped in it).
(function () {
  "use strict";

  function setUp(container) {
    var textarea = container.querySelector("textarea[data-code]");
    // Once per textarea: a second editor on the same one would show the code twice.
    if (!textarea || !window.CodeMirror || textarea.dataset.editor) return null;
    textarea.dataset.editor = "codemirror";
    var escaped = false;
    var editor = CodeMirror.fromTextArea(textarea, {
      mode: "python",
      lineNumbers: true,
      indentUnit: 4,
      viewportMargin: Infinity,
      extraKeys: {
        Esc: function () { escaped = true; },
        Tab: function (cm) {
          if (escaped) return CodeMirror.Pass;
          if (cm.somethingSelected()) cm.indentSelection("add");
          else cm.replaceSelection("    ", "end");
        },
        "Shift-Tab": function (cm) {
          if (escaped) return CodeMirror.Pass;
          cm.indentSelection("subtract");
        }
      }
    });
    var input = editor.getInputField();
    input.setAttribute("aria-labelledby", textarea.id + "-label");
    var label = container.querySelector('label[for="' + textarea.id + '"]');
    if (label) { label.id = textarea.id + "-label"; label.addEventListener("click", function () { editor.focus(); }); }
    input.addEventListener("keydown", function (e) { if (e.key !== "Escape" && e.key !== "Tab") escaped = false; });
    editor.on("focus", function () { escaped = false; });
    editor.on("change", function () {
      editor.save();
      textarea.dispatchEvent(new Event("input", { bubbles: true }));
    });
    return editor;
  }

  window.FlowBuilderCode = { setUp: setUp };
})();
