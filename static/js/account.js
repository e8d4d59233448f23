// API keys and credentials pages: the copy button of a once-shown key, and the credential form
// showing only the fields its kind uses (without JavaScript every field stays visible).

function copyButtons() {
  for (const button of document.querySelectorAll("[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) {
      button.hidden = true; // no clipboard outside secure contexts: the key stays selectable
      continue;
    }
    const label = button.textContent;
    button.addEventListener("click", async () => {
      await navigator.clipboard.writeText(source.textContent.trim());
      button.textContent = button.dataset.copiedLabel || label;
      button.setAttribute("aria-live", "polite");
    });
  }
}

function kindFields() {
  const kind = document.querySelector("[data-credential-kind]");
  if (!kind) return;
  const fields = document.querySelectorAll("[data-kinds]");
  const show = () => {
    for (const field of fields) {
      const wrapper = field.closest(".field") || field;
      const wanted = field.dataset.kinds.split(" ").includes(kind.value);
      // A field the server flagged keeps showing, so its error stays readable.
      const hidden = !wanted && field.getAttribute("aria-invalid") !== "true";
      wrapper.classList.toggle("is-hidden-kind", hidden);
      field.disabled = hidden; // a hidden field is not sent
    }
  };
  kind.addEventListener("change", show);
  show();
}

copyButtons();
kindFields();
