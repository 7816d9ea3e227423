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

// Changesets: while a job waits or runs, refresh the table every few
// seconds (without JavaScript the page shows the state when loaded).
const live = document.querySelector("main[data-live-refresh]");
if (live) {
  const refresh = async () => {
    try {
      const response = await fetch(location.href, { headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const next = new DOMParser().parseFromString(await response.text(), "text/html");
      const table = next.getElementById("changesets-table");
      if (table) document.getElementById("changesets-table").replaceWith(table);
      if (next.querySelector("main[data-live-refresh]")) setTimeout(refresh, 3000);
    } catch {
      setTimeout(refresh, 10000);
    }
  };
  setTimeout(refresh, 3000);
}

// The GitHub App manifest page: its form posts itself on to GitHub.
document.querySelectorAll("form[data-autosubmit]").forEach((form) => form.submit());
