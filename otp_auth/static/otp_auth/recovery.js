/* Copy and print buttons of the recovery codes page (no inline script). */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var list = document.getElementById("recovery-codes");
    document.querySelectorAll("[data-recovery]").forEach(function (button) {
      button.addEventListener("click", function () {
        if (button.dataset.recovery === "print") { window.print(); return; }
        var codes = Array.prototype.map.call(list.querySelectorAll("code"), function (c) {
          return c.textContent;
        }).join("\n");
        navigator.clipboard.writeText(codes + "\n").then(function () {
          button.textContent = button.dataset.done || button.textContent;
        });
      });
    });
  });
})();
