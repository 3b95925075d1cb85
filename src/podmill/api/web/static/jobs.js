// podmill viewer: the jobs pages. The upload form refuses a file over the server's cap
// before sending it; a job page follows its stages by polling /view/jobs/{id}/status
// (every data-poll-ms, ≤ 2 s) until the job is done, failed or cancelled.
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";

  function bytes(n) {
    if (n >= 1048576) return (n / 1048576).toFixed(1) + " MB";
    if (n >= 1024) return (n / 1024).toFixed(0) + " kB";
    return n + " bytes";
  }

  function guardUpload(form) {
    var max = parseInt(form.getAttribute("data-max-bytes"), 10);
    var input = form.querySelector("input[type=file]");
    var message = form.querySelector("#upload-error");
    if (!input || !message || !max) return;
    function check() {
      var file = input.files && input.files[0];
      if (file && file.size > max) {
        message.textContent = file.name + " is " + bytes(file.size) + ", larger than this server's limit of " +
          bytes(max) + " (server.max_upload_bytes): give a URL instead or ask an admin to raise the limit.";
        message.hidden = false;
        input.setAttribute("aria-invalid", "true");
        return false;
      }
      message.hidden = true;
      message.textContent = "";
      input.removeAttribute("aria-invalid");
      return true;
    }
    input.addEventListener("change", check);
    form.addEventListener("submit", function (event) {
      if (!check()) { event.preventDefault(); input.focus(); }
    });
  }

  function seconds(value) {
    return value === null || value === undefined ? "" : value.toFixed(2) + " s";
  }

  function setBadge(el, status) {
    el.textContent = status;
    el.className = "badge status-" + status;
  }

  function drawWaterfall(holder, stages, label) {
    var ran = stages.filter(function (s) { return s.offset !== null; });
    holder.textContent = "";
    if (!ran.length) {
      var none = document.createElement("span");
      none.className = "muted";
      none.textContent = "not started";
      holder.appendChild(none);
      return;
    }
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "waterfall");
    svg.setAttribute("viewBox", "0 0 1000 " + ran.length * 10);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label + ": " + ran.map(function (s) {
      return s.stage + " " + (s.seconds || 0).toFixed(2) + "s";
    }).join(", "));
    ran.forEach(function (s, i) {
      var rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("class", "wf-" + s.status);
      rect.setAttribute("x", (s.offset * 1000).toFixed(1));
      rect.setAttribute("y", String(i * 10 + 1));
      rect.setAttribute("width", Math.max(s.width * 1000, 3).toFixed(1));
      rect.setAttribute("height", "8");
      var title = document.createElementNS(SVG, "title");
      title.textContent = s.stage + ": " + s.status + ", " + (s.seconds || 0).toFixed(2) + "s";
      rect.appendChild(title);
      svg.appendChild(rect);
    });
    holder.appendChild(svg);
  }

  function show(section, job) {
    setBadge(document.getElementById("job-status"), job.status);
    document.getElementById("job-seconds").textContent = seconds(job.seconds);
    document.getElementById("job-done").hidden = job.status !== "done";
    var error = document.getElementById("job-error");
    error.textContent = job.error || "";
    error.hidden = !job.error;
    var paused = document.getElementById("job-paused");
    paused.querySelector("span").textContent = job.paused.join(", ");
    paused.hidden = !job.paused.length;
    job.stages.forEach(function (s) {
      var row = section.querySelector('tr[data-stage="' + s.stage + '"]');
      if (!row) return;
      setBadge(row.querySelector('[data-field="status"]'), s.status);
      row.querySelector('[data-field="attempts"]').textContent = s.attempts + "/" + s.max_attempts;
      row.querySelector('[data-field="seconds"]').textContent = seconds(s.seconds);
      row.querySelector('[data-field="error"]').textContent = s.error || "";
    });
    drawWaterfall(document.getElementById("job-waterfall"), job.stages, "Job " + job.id + " stages");
    section.setAttribute("data-terminal", job.terminal ? "true" : "false");
  }

  function follow(section) {
    var url = section.getAttribute("data-status-url");
    var every = Math.min(parseInt(section.getAttribute("data-poll-ms"), 10) || 1000, 2000);
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (!r.ok) throw new Error("status " + r.status);
          return r.json();
        })
        .then(function (job) {
          show(section, job);
          if (!job.terminal) setTimeout(tick, every);
        })
        .catch(function () { setTimeout(tick, every * 2); });  // server restarting: keep trying
    }
    if (section.getAttribute("data-terminal") !== "true") setTimeout(tick, every);
  }

  var upload = document.getElementById("submit-upload");
  if (upload) guardUpload(upload);
  var job = document.getElementById("job");
  if (job) follow(job);
})();
