// Copy buttons on command examples. Optional: without this script the text stays selectable.
"use strict";

function selectText(element) {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

function addCopyButton(pre) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = "Copy";
  button.addEventListener("click", async () => {
    try {
      // The clipboard API exists only on secure origins (https, localhost).
      await navigator.clipboard.writeText(pre.textContent);
      button.dataset.state = "copied";
      button.textContent = "Copied";
    } catch {
      selectText(pre);
      button.dataset.state = "selected";
      button.textContent = "Selected: press Ctrl+C";
    }
    window.setTimeout(() => { button.textContent = "Copy"; }, 2500);
  });
  pre.parentElement.append(button);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("pre[data-copy]").forEach(addCopyButton);
});
