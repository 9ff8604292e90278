// Tell the server the browser's timezone once, so times render in the user's zone.
(function () {
  try {
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz && document.cookie.indexOf("tz=" + tz) === -1) {
      document.cookie = "tz=" + tz + ";path=/;max-age=31536000;samesite=lax";
    }
  } catch (e) { /* old browser: server default zone */ }
})();
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
