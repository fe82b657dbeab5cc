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
