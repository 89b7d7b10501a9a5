/* Security keys and passkeys (WebAuthn) for otp_auth's pages. No inline script needed:
 * include this file and mark a form with data-webauthn="<purpose>" (register,
 * register_passkey, login, step_up, passkey) and data-options="<options URL>". On submit
 * the form asks the server for the ceremony's options, runs the browser's WebAuthn call,
 * puts the authenticator's JSON answer in its hidden "credential" field and is posted.
 * A passkey form with data-conditional also offers passkeys in the username autofill
 * (conditional mediation), when the browser supports it. */
(function () {
  "use strict";

  function fromB64url(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer), text = "";
    for (var i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeOptions(options) {
    var o = Object.assign({}, options);
    o.challenge = fromB64url(o.challenge);
    if (o.user) { o.user = Object.assign({}, o.user, { id: fromB64url(o.user.id) }); }
    ["excludeCredentials", "allowCredentials"].forEach(function (name) {
      if (o[name]) {
        o[name] = o[name].map(function (c) { return Object.assign({}, c, { id: fromB64url(c.id) }); });
      }
    });
    return o;
  }

  function encodeCredential(cred) {
    var r = cred.response, response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) { response.userHandle = toB64url(r.userHandle); }
    }
    return JSON.stringify({
      id: cred.id, rawId: toB64url(cred.rawId), type: cred.type, response: response,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    });
  }

  function showError(form, text) {
    var box = form.querySelector("[data-webauthn-error]");
    if (box) { box.textContent = text; box.hidden = false; }
  }

  function fetchOptions(form) {
    var body = new URLSearchParams();
    body.set("purpose", form.dataset.webauthn);
    var token = form.querySelector("input[name=csrfmiddlewaretoken]");
    return fetch(form.dataset.options, {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "X-CSRFToken": token ? token.value : "" }
    }).then(function (answer) {
      return answer.json().then(function (data) {
        if (!answer.ok) { throw new Error(data.detail || "error"); }
        return decodeOptions(data.publicKey);
      });
    });
  }

  function ceremony(form, publicKey, extra) {
    var purpose = form.dataset.webauthn, call;
    if (purpose.indexOf("register") === 0) {
      call = navigator.credentials.create({ publicKey: publicKey });
    } else {
      call = navigator.credentials.get(Object.assign({ publicKey: publicKey }, extra || {}));
    }
    return call.then(function (cred) {
      if (!cred) { throw new Error("cancelled"); }
      form.querySelector("input[name=credential]").value = encodeCredential(cred);
      HTMLFormElement.prototype.submit.call(form);
    });
  }

  function run(form) {
    if (!window.PublicKeyCredential) {
      showError(form, form.dataset.unsupported || "This browser does not support security keys.");
      return;
    }
    fetchOptions(form).then(function (publicKey) { return ceremony(form, publicKey); })
      .catch(function (err) { showError(form, form.dataset.failed || String(err.message || err)); });
  }

  function conditional(form) {
    if (!window.PublicKeyCredential || !PublicKeyCredential.isConditionalMediationAvailable) { return; }
    PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
      if (!ok) { return; }
      return fetchOptions(form).then(function (publicKey) {
        return ceremony(form, publicKey, { mediation: "conditional" });
      });
    }).catch(function () { /* the user can still sign in with the password */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-webauthn]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (form.querySelector("input[name=credential]").value) { return; }
        event.preventDefault();
        run(form);
      });
      if (form.hasAttribute("data-conditional")) { conditional(form); }
      if (form.hasAttribute("data-autostart")) { run(form); }
    });
  });
})();
