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
