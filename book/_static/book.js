// The site's own script (listed in _config.yml, sphinx: config: html_js_files).

// Escape closes an open drawer (the chapter list or the page's contents on a narrow screen)
// wherever the focus is; the theme closes one only while the focus is inside it.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  for (const id of ["pst-primary-sidebar-checkbox", "pst-secondary-sidebar-checkbox"]) {
    const drawer = document.getElementById(id);
    if (drawer && drawer.checked) {
      drawer.checked = false;
      drawer.dispatchEvent(new Event("change"));  // the theme gives the focus back to its button
    }
  }
});

// On a phone a figure is drawn much smaller than it was made and its labels become too small to
// read: a figure drawn at less than 3/4 of its own width opens full size in an overlay when
// tapped (or on Enter or Space), where it scrolls and zooms; the close button, a tap on the
// overlay or Escape closes it and gives the focus back to the figure.
const ENLARGE_BELOW = 0.75;

function closeFigureOverlay() {
  const overlay = document.querySelector(".figure-overlay");
  if (!overlay) return;
  overlay.remove();
  document.body.classList.remove("figure-overlay-open");
  if (overlay.opener) overlay.opener.focus();
}

function openFigureOverlay(img) {
  closeFigureOverlay();
  const overlay = document.createElement("div");
  overlay.className = "figure-overlay";
  overlay.setAttribute("role", "dialog");
  overlay.setAttribute("aria-modal", "true");
  overlay.setAttribute("aria-label", "Figure at full size");
  const close = document.createElement("button");
  close.type = "button";
  close.className = "figure-overlay-close";
  close.textContent = "Close";
  const full = document.createElement("img");
  full.src = img.currentSrc || img.src;
  full.alt = img.alt;
  full.style.width = `${img.naturalWidth}px`;
  overlay.append(close, full);
  overlay.opener = img;
  overlay.addEventListener("click", (event) => { if (event.target !== full) closeFigureOverlay(); });
  document.body.append(overlay);
  document.body.classList.add("figure-overlay-open");
  close.focus();
}

function makeFiguresEnlargeable() {
  for (const img of document.querySelectorAll("main article img")) {
    const small = img.naturalWidth && img.getBoundingClientRect().width < ENLARGE_BELOW * img.naturalWidth;
    img.classList.toggle("enlargeable", Boolean(small));
    if (small && !img.hasAttribute("tabindex")) {
      img.tabIndex = 0;
      img.title = "Tap to see this figure at full size";
    } else if (!small && img.title === "Tap to see this figure at full size") {
      img.removeAttribute("tabindex");
      img.removeAttribute("title");
    }
  }
}

document.addEventListener("click", (event) => {
  const img = event.target.closest && event.target.closest("img.enlargeable");
  if (img) openFigureOverlay(img);
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeFigureOverlay();
  const img = event.target.closest && event.target.closest("img.enlargeable");
  if (img && (event.key === "Enter" || event.key === " ")) {
    event.preventDefault();
    openFigureOverlay(img);
  }
});
window.addEventListener("load", makeFiguresEnlargeable);
document.addEventListener("load", (event) => {  // an image loaded later (lazily) is sized then
  if (event.target.tagName === "IMG") makeFiguresEnlargeable();
}, true);
window.addEventListener("resize", makeFiguresEnlargeable);

// Accessible names that match what a reader sees (WCAG 2.5.3, "label in name"; the axe audit of
// tests/test_site.py), and roles that fit their lists: the theme's search button is labelled "Search" but shows "Search Ctrl+K",
// and the toggles of folded cells are labelled "Toggle hidden content" but show "Show code cell
// source". Without the label their name is their visible text.
function nameControlsByTheirText() {
  for (const control of document.querySelectorAll(
    "button.search-button-field[aria-label], details > summary[aria-label='Toggle hidden content']")) {
    control.removeAttribute("aria-label");
  }
  // The bibliography is a list (role="list") whose entries sphinxcontrib-bibtex marks
  // "doc-biblioentry", a role ARIA has deprecated: as items of the list they are list items.
  for (const entry of document.querySelectorAll(".citation-list > [role='doc-biblioentry']")) {
    entry.setAttribute("role", "listitem");
  }
}
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", nameControlsByTheirText);
} else {
  nameControlsByTheirText();
}

// A table wider than the column scrolls sideways in its own box; a keyboard reader scrolls it
// once it can take the focus. The theme gives that focus to the outputs it knows
// (".cell_output > .output"); a numbered table's output sits one level deeper, in its
// ".table-output" box (book/_ext/output_tables.py), so this does the same for it.
function focusScrollableTables() {
  for (const box of document.querySelectorAll(".table-output > .output")) {
    if (box.scrollWidth > box.clientWidth) box.tabIndex = 0;
    else if (box.tabIndex === 0) box.removeAttribute("tabindex");
  }
}
window.addEventListener("resize", focusScrollableTables);
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", focusScrollableTables);
} else {
  focusScrollableTables();
}

// A table's cell breaks only where the reader expects it to: a cell of one token (a date such as
// 2026-12-06, a variant name such as fast-channels-last, a number such as 9.5e-07) does not break
// at its hyphen or minus, and a short header ("train s", "test acc", "p (paired t)") stays on one
// line instead of one word per line. Longer text wraps as before. A table that fitted its column
// is kept fitting: where keeping every such cell whole would make it scroll sideways, fewer are
// kept whole (first the short headers and cells are let go, then the longer tokens), so that a
// laptop never has to scroll a table that it showed whole before.
const ONE_LINE_LEVELS = [  // the longest text kept on one line: [one token, several words]
  [32, 16], [32, 0], [20, 0], [0, 0]];

function oneLineLevel(text, [token, words]) {
  return text.length > 0 && (/\s/.test(text) ? text.length <= words : text.length <= token);
}

let tablesLaidOutAt = null;  // the width they were last laid out for: a phone fires "resize" as it scrolls

function keepShortCellsOnOneLine() {
  if (window.innerWidth === tablesLaidOutAt) return;
  tablesLaidOutAt = window.innerWidth;
  for (const table of document.querySelectorAll("main article table")) {
    const box = table.closest(".output, .pst-scrollable-table-container") || table.parentElement;
    const cells = Array.from(table.querySelectorAll("td, th"));
    const texts = cells.map((cell) => cell.textContent.trim());
    cells.forEach((cell) => cell.classList.remove("one-line"));
    const fitted = box.scrollWidth <= box.clientWidth + 1;
    for (const level of ONE_LINE_LEVELS) {
      cells.forEach((cell, i) => cell.classList.toggle("one-line", oneLineLevel(texts[i], level)));
      if (!fitted || box.scrollWidth <= box.clientWidth + 1) break;
    }
  }
  focusScrollableTables();  // a table wider than the column scrolls with the keyboard
}
window.addEventListener("resize", keepShortCellsOnOneLine);
function layOutTablesAgain() {
  tablesLaidOutAt = null;
  keepShortCellsOnOneLine();
}
document.addEventListener("toggle", layOutTablesAgain, true);  // a table in a folded cell, once shown
window.addEventListener("load", () => {  // and once the fonts and the formulas have their final size
  layOutTablesAgain();
  const typeset = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
  Promise.all([document.fonts && document.fonts.ready, typeset]).then(layOutTablesAgain, layOutTablesAgain);
});
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", keepShortCellsOnOneLine);
} else {
  keepShortCellsOnOneLine();
}

// A date in the text (2026-11-26) is not split at a hyphen across two lines.
const DATE = /\b\d{4}-\d{2}-\d{2}\b/;

function keepDatesWhole() {
  const main = document.querySelector("main article");
  if (!main) return;
  const skip = "pre, code, kbd, samp, script, style, textarea, mjx-container, .one-line, .date";
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => (!node.parentElement.closest(skip) && DATE.test(node.nodeValue)
      ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT),
  });
  const found = [];
  while (walker.nextNode()) found.push(walker.currentNode);
  for (const node of found) {
    const parts = node.nodeValue.split(/(\b\d{4}-\d{2}-\d{2}\b)/);
    const pieces = parts.map((part, i) => {
      if (i % 2 === 0) return document.createTextNode(part);
      const date = document.createElement("span");
      date.className = "date";
      date.textContent = part;
      return date;
    });
    node.replaceWith(...pieces);
  }
}
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", keepDatesWhole);
} else {
  keepDatesWhole();
}
