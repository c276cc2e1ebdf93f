// Draws every chart on the page from its data-chart attribute (JSON the server wrote; no inline script).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("div.chart[data-chart]").forEach(function (el) {
    var spec = JSON.parse(el.getAttribute("data-chart"));
    Plotly.newPlot(el, spec.data, spec.layout, { displaylogo: false, responsive: true });
  });
});
