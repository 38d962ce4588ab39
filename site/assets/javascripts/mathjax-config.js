// MathJax 3 settings, read by assets/vendor/mathjax/tex-chtml.js, which loads right after.
window.MathJax = {
  tex: {
    // \( \) and \[ \] come from pymdownx.arithmatex on our pages; $ and $$ are what
    // notebook markdown cells (rendered by mkdocs-jupyter) contain.
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    // Typeset only inside these elements, so a stray $ elsewhere is never math.
    ignoreHtmlClass: ".+",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown|jp-RenderedLatex",
  },
};

// Instant navigation swaps the page content without reloading MathJax: typeset the new
// content then. Not on the first page load, which MathJax typesets on its own; clearing its
// cache there leaves the math invisible.
document$.subscribe((function () {
  let firstPage = true;
  return function () {
    if (firstPage) {
      firstPage = false;
      return;
    }
    MathJax.startup.promise.then(function () {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      return MathJax.typesetPromise();
    });
  };
})());
