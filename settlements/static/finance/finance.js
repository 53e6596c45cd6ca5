// PGI finance UI: "select all" for the exceptions table (the page works without it).
document.addEventListener("DOMContentLoaded", () => {
  for (const all of document.querySelectorAll("input[data-select-all]")) {
    const boxes = () => [...document.querySelectorAll(`input[type=checkbox][name="${all.dataset.selectAll}"]`)];
    all.addEventListener("change", () => boxes().forEach((box) => { box.checked = all.checked; }));
    document.addEventListener("change", (event) => {
      if (event.target.name === all.dataset.selectAll) {
        const list = boxes();
        all.checked = list.length > 0 && list.every((box) => box.checked);
        all.indeterminate = !all.checked && list.some((box) => box.checked);
      }
    });
  }
});
