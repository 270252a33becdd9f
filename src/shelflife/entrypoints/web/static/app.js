// Only what a page needs: a live character counter for inputs that declare one.
document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll("[data-counter]")) {
    const out = document.getElementById(input.dataset.counter);
    const max = Number(input.getAttribute("maxlength"));
    const update = () => { out.textContent = `${input.value.length} / ${max}`; };
    input.addEventListener("input", update);
    update();
  }
});
