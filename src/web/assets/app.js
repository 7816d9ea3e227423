// batchcred pages work without JavaScript; this only makes the
// server-rendered dialogs real modals (focus kept inside, Escape closes)
// and wires the copy buttons.
"use strict";

for (const dialog of document.querySelectorAll("dialog[data-modal]")) {
  if (dialog.open) dialog.close();
  dialog.showModal();
  // Escape or a cancel button: back to the page without the dialog.
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault();
    location.assign(dialog.dataset.return);
  });
}

for (const button of document.querySelectorAll("button[data-copy]")) {
  button.addEventListener("click", async () => {
    const field = document.getElementById(button.dataset.copy);
    const status = document.getElementById("copy-status");
    try {
      await navigator.clipboard.writeText(field.value);
    } catch {
      field.select();
      document.execCommand("copy");
    }
    button.textContent = "Copied";
    if (status) {
      status.textContent = button.dataset.copied || "The public key is on your clipboard.";
    }
  });
}
