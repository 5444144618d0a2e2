// The portal works without this file; it only adds comfort: local times, a character counter near the
// limit, the newest message in view, and no double submits.
(function () {
  "use strict";
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var at = new Date(el.getAttribute("datetime"));
    if (!isNaN(at.getTime())) {
      el.textContent = at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    }
  });

  var box = document.getElementById("body");
  var counter = document.querySelector("[data-counter-for='body']");
  if (box && counter) {
    var update = function () {
      var left = box.maxLength - box.value.length;
      counter.textContent = left <= 500 ? left + " characters left" : "";
    };
    box.addEventListener("input", update);
    update();
  }

  var messages = document.querySelectorAll(".thread .message");
  if (messages.length && !window.location.hash) {
    messages[messages.length - 1].scrollIntoView({ block: "nearest" });
  }

  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type='submit']");
      if (button) {
        window.setTimeout(function () { button.disabled = true; }, 0);
      }
    });
  });
})();
