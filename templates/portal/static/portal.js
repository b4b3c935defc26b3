// Portal enhancements (the pages work without them): live checks of the request form by
// the server's own validators, the 24-hour APR countdown, and the 3 MB file check.
(function () {
  "use strict";
  function show(id, message) {
    var input = document.getElementById(id), box = document.getElementById(id + "-erro");
    if (!input || !box) { return; }
    if (message) { box.textContent = message; box.hidden = false; input.setAttribute("aria-invalid", "true"); }
    else { box.textContent = ""; box.hidden = true; input.removeAttribute("aria-invalid"); }
  }
  var form = document.querySelector("form[data-validar]");
  if (form) {
    var touched = {}, timer = null, sent = 0;
    var check = function () {
      var body = new FormData();
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name && el.type !== "file") { body.append(el.name, el.value); }
      });
      body.append("tipo", form.getAttribute("data-tipo"));
      var mine = ++sent;
      fetch(form.getAttribute("data-validar"), { method: "POST", body: body, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (answer) {
          if (!answer || mine !== sent) { return; }  // a later check is on its way
          Object.keys(touched).forEach(function (id) { show(id, answer.erros[id] || ""); });
        }).catch(function () {});
    };
    form.addEventListener("input", function (e) {
      if (!e.target.id || e.target.type === "file") { return; }
      touched[e.target.id] = true;
      clearTimeout(timer);
      timer = setTimeout(check, 350);
    });
    form.addEventListener("change", function (e) {
      if (e.target.id && e.target.type !== "file") { touched[e.target.id] = true; check(); }
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("input[type=file][data-max]"), function (input) {
    input.addEventListener("change", function () {
      var max = parseInt(input.getAttribute("data-max"), 10), big = null;
      Array.prototype.forEach.call(input.files, function (f) { if (f.size > max) { big = f.name; } });
      show(input.id, big ? big + ": arquivo maior que 3 MB" : "");
    });
  });
  var clock = document.getElementById("contagem-apr");
  if (clock && clock.getAttribute("data-prazo")) {
    var due = new Date(clock.getAttribute("data-prazo"));
    var until = clock.textContent.replace(/^.*\(/, "(");
    var tick = function () {
      var s = Math.floor((due - new Date()) / 1000);
      if (isNaN(s)) { return; }
      if (s <= 0) { clock.textContent = "prazo de 24 horas encerrado " + until; clock.classList.add("urgente"); return; }
      var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
      clock.textContent = "restam " + h + " h " + (m < 10 ? "0" : "") + m + " min " + until;
      if (h < 2) { clock.classList.add("urgente"); }
    };
    tick();
    setInterval(tick, 30000);
  }
}());
