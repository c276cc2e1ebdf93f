// Draws every chart on the page: from its data-chart attribute (JSON the server wrote; no inline script),
// or, for the campaign's charts, from one JSON document fetched once the page has loaded.
"use strict";
var CONFIG = { displaylogo: false, responsive: true };
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("div.chart[data-chart]").forEach(function (el) {
    var spec = JSON.parse(el.getAttribute("data-chart"));
    Plotly.newPlot(el, spec.data, spec.layout, CONFIG);
  });
  var holder = document.querySelector("[data-charts]");
  if (!holder) {
    return;
  }
  fetch(holder.getAttribute("data-charts"), { credentials: "same-origin" })
    .then(function (r) {
      if (!r.ok) {
        throw new Error("charts: HTTP " + r.status);
      }
      return r.json();
    })
    .then(function (charts) {
      Object.keys(charts).forEach(function (id) {
        var el = document.getElementById(id);
        if (el) {
          Plotly.newPlot(el, charts[id].data, charts[id].layout, CONFIG);
        }
      });
    });
});
