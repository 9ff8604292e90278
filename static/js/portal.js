// Tell the server the browser's timezone once, so times render in the user's zone.
(function () {
  try {
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz && document.cookie.indexOf("tz=" + tz) === -1) {
      document.cookie = "tz=" + tz + ";path=/;max-age=31536000;samesite=lax";
    }
  } catch (e) { /* old browser: server default zone */ }
})();
// Charts arrive as data (<div class="q2c-chart" data-plotly="…">, no inline script: the page's
// Content-Security-Policy allows none); draw each once, on load and after every htmx swap.
var Q2C_CHART_CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };
function q2cDrawCharts(root) {
  if (!window.Plotly) return;
  (root || document).querySelectorAll(".q2c-chart[data-plotly]:not([data-drawn])").forEach(function (el) {
    el.setAttribute("data-drawn", "1");
    try {
      var figure = JSON.parse(el.getAttribute("data-plotly"));
      window.Plotly.newPlot(el, figure.data || [], figure.layout || {}, Q2C_CHART_CONFIG);
    } catch (e) {
      el.textContent = "This chart could not be drawn; the numbers below it are complete.";
    }
  });
}
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", function () { q2cDrawCharts(); });
} else {
  q2cDrawCharts();
}
document.addEventListener("htmx:afterSettle", function () { q2cDrawCharts(); });  // the whole page: an outerHTML swap leaves evt.target detached
// Plotly figures resize with their cards.
window.addEventListener("resize", function () {
  if (!window.Plotly) return;
  document.querySelectorAll(".js-plotly-plot").forEach(function (el) { window.Plotly.Plots.resize(el); });
});
// Charts drawn while the page was still being parsed measured a half-built grid: size them
// again once the layout is final, and after htmx swaps in new dashboard regions.
function q2cResizeCharts(root) {
  if (!window.Plotly) return;
  (root || document).querySelectorAll(".js-plotly-plot").forEach(function (el) { window.Plotly.Plots.resize(el); });
}
window.addEventListener("load", function () { q2cResizeCharts(); });
document.addEventListener("htmx:afterSettle", function (evt) { q2cResizeCharts(evt.target); });
// A region that fails to load or an action the server refuses must say so: htmx does not
// swap 4xx/5xx answers, which would otherwise leave a spinner, or a click that did nothing.
var Q2C_STATUS_TEXT = {
  401: "Your session has ended: log in again.",
  403: "Your role does not allow this.",
  404: "Not found: it may have been removed meanwhile.",
  409: "Someone else changed this meanwhile: reload to see the current state.",
  429: "Too many requests: wait a moment, then retry."
};
function q2cRequestFailed(evt, text) {
  var target = evt.detail.target || evt.target;
  var verb = ((evt.detail.requestConfig || {}).verb || "get").toLowerCase();
  var box = document.createElement("div");
  box.className = "msg msg-error htmx-error";
  box.setAttribute("role", "alert");
  box.textContent = text + " ";
  if (verb === "get" && target && target.getAttribute && target.getAttribute("hx-get")) {
    var retry = document.createElement("button");
    retry.type = "button";
    retry.className = "btn small";
    retry.textContent = "Retry";
    retry.addEventListener("click", function () {
      box.remove();
      window.htmx.ajax("GET", target.getAttribute("hx-get"), { target: target, swap: target.getAttribute("hx-swap") || "innerHTML" });
    });
    box.appendChild(retry);
  }
  if (target && target.getAttribute && target.getAttribute("aria-busy") === "true") {
    target.setAttribute("aria-busy", "false");
    target.classList.add("load-failed");  // stop the skeleton's shimmer and "loading…"
  }
  var old = target && target.previousElementSibling;
  if (old && old.classList && old.classList.contains("htmx-error")) old.remove();
  if (target && target.parentNode && target !== document.body) target.parentNode.insertBefore(box, target);
  else document.getElementById("main").prepend(box);
}
document.addEventListener("htmx:responseError", function (evt) {
  var status = evt.detail.xhr ? evt.detail.xhr.status : 0;
  var text = Q2C_STATUS_TEXT[status] || ("The server could not answer (HTTP " + status + "). Retry; if it persists, see /healthz.");
  q2cRequestFailed(evt, text);
});
document.addEventListener("htmx:sendError", function (evt) {
  q2cRequestFailed(evt, "No connection to the server. Check the network, then retry.");
});
document.addEventListener("htmx:beforeRequest", function (evt) {
  var prev = evt.detail.target && evt.detail.target.previousElementSibling;
  if (prev && prev.classList && prev.classList.contains("htmx-error")) prev.remove();
});
// Click behaviour declared in the markup (data-* attributes), so templates carry no inline handlers.
document.addEventListener("click", function (evt) {
  var toggle = evt.target.closest && evt.target.closest("[data-toggles-nav]");
  if (toggle) {
    document.body.classList.toggle("nav-open");
    toggle.setAttribute("aria-expanded", String(document.body.classList.contains("nav-open")));
    return;
  }
  // a "Cancel" that empties the region it was loaded into (e.g. the bulk-retry dry run in the
  // queue); where that region is absent (the dry run as a page of its own) the link navigates
  var clears = evt.target.closest && evt.target.closest("[data-clears]");
  var region = clears && document.getElementById(clears.getAttribute("data-clears"));
  if (region) {
    evt.preventDefault();
    region.innerHTML = "";
  }
});
