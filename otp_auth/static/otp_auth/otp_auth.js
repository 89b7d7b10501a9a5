/* otp_auth pages: small progressive enhancements, loaded from a file (no inline script,
   so a strict Content-Security-Policy needs no exception). Everything works without it. */
(function () {
  "use strict";

  /* "Send a new code" becomes available when the cooldown ends; the text comes from the
     page (data-template, translated on the server), with %(s)s for the seconds left. */
  function countdown() {
    var button = document.getElementById("resend");
    var wait = document.getElementById("resend-wait");
    if (!button) return;
    var seconds = parseInt(button.getAttribute("data-wait"), 10) || 0;
    if (!seconds) return;
    var template = wait ? wait.getAttribute("data-template") || "" : "";
    var timer = setInterval(function () {
      seconds -= 1;
      if (seconds <= 0) {
        clearInterval(timer);
        button.disabled = false;
        if (wait) wait.parentNode.removeChild(wait);
      } else if (wait && template) {
        wait.textContent = template.replace("%(s)s", String(seconds));
      }
    }, 1000);
  }

  /* Adding a device: show the phone field for SMS and voice, the email field for email. */
  function channelFields() {
    var form = document.querySelector("form[data-channel-fields]");
    if (!form) return;
    var select = form.querySelector("[name=channel]");
    if (!select) return;
    function update() {
      var email = select.value === "email";
      var phone = form.querySelector("[data-field=phone]");
      var mail = form.querySelector("[data-field=email]");
      if (phone) phone.classList.toggle("otp-hidden", email);
      if (mail) mail.classList.toggle("otp-hidden", !email);
    }
    select.addEventListener("change", update);
    update();
  }

  function ready() {
    countdown();
    channelFields();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
