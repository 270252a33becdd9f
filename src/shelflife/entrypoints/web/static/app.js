// Only what a page needs: a live character counter for inputs that declare one.
function bindCounters(root) {
  for (const input of root.querySelectorAll("[data-counter]")) {
    const out = document.getElementById(input.dataset.counter);
    const max = Number(input.getAttribute("maxlength"));
    const update = () => { out.textContent = `${input.value.length} / ${max}`; };
    input.addEventListener("input", update);
    update();
  }
}

document.addEventListener("DOMContentLoaded", () => bindCounters(document));

// Orders: a form marked data-swap="ID" posts with fetch; the server answers with the element
// ID re-rendered (header X-Fragment), which replaces the old one in place, so the page shows
// the result at once without a reload. Any other answer (an expired session or form) falls
// back to the plain form post, whose page says what happened.
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.swap) return;
  event.preventDefault();
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  let response;
  try {
    response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-Fragment": "1" },
      credentials: "same-origin",
    });
  } catch {
    if (button) button.disabled = false;
    HTMLFormElement.prototype.submit.call(form);
    return;
  }
  if (!response.headers.get("X-Fragment")) {
    HTMLFormElement.prototype.submit.call(form);
    return;
  }
  const old = document.getElementById(form.dataset.swap);
  const holder = document.createElement("div");
  holder.innerHTML = await response.text();
  const fresh = holder.firstElementChild;
  old.replaceWith(fresh);
  bindCounters(fresh);
  const focus = fresh.querySelector("[autofocus], [data-focus]");
  if (focus) {
    focus.focus();
    if (focus.setSelectionRange && focus.value) focus.setSelectionRange(focus.value.length, focus.value.length);
  }
});

// Opening the retrieval form puts the cursor in its first field: one Enter, then type.
document.addEventListener("toggle", (event) => {
  const details = event.target;
  if (!(details instanceof HTMLDetailsElement) || !details.open) return;
  const field = details.querySelector("input:not([type=hidden]), textarea");
  if (field) field.focus();
}, true);
