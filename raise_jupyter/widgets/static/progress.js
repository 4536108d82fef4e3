// Progress of one job run. The kernel pushes the run's state every half second; Cancel sends
// a message that calls run.cancel() in the kernel.

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
}

function render({ model, el }) {
  const root = h("div", { class: "raise-widget raise-progress" });
  el.append(root);

  function draw() {
    const status = model.get("status");
    const done = model.get("rows_done");
    const total = model.get("rows_total");
    const running = status === "running";
    const share = total ? Math.min(done / total, 1) : (running ? 0 : 1);
    const fill = h("div", { class: "raise-fill", style: `width: ${(share * 100).toFixed(1)}%` });
    const track = h("div", { class: "raise-track" + (running && !total ? " raise-indeterminate" : ""), role: "progressbar",
      "aria-valuenow": String(Math.round(share * 100)), "aria-valuemin": "0", "aria-valuemax": "100" }, fill);
    const cancel = h("button", { class: "raise-cancel", text: running && model.get("cancel_requested") ? "Cancelling\u2026" : "Cancel",
      onclick: () => model.send({ type: "cancel" }) });
    cancel.disabled = !running || model.get("cancel_requested");

    const facts = [
      ["state", status + (running && model.get("phase") ? ` (${model.get("phase")})` : "")],
      ["rows", done.toLocaleString() + (total !== null && total !== undefined ? " / " + total.toLocaleString() : "")],
      ["rows/s", model.get("rows_per_second") ? Math.round(model.get("rows_per_second")).toLocaleString() : ""],
      ["ETA", running ? duration(model.get("eta_seconds")) : ""],
      ["elapsed", duration(model.get("elapsed_seconds"))],
      ["device", model.get("device")],
    ].filter(([, value]) => value);

    root.className = "raise-widget raise-progress raise-" + status;
    root.dataset.status = status;
    const parts = [
      h("div", { class: "raise-line" },
        h("span", { class: "raise-title", text: `${model.get("job")} #${model.get("run_id")}` }), track, cancel),
      h("div", { class: "raise-facts" },
        ...facts.map(([label, value]) => h("span", { "data-fact": label }, h("span", { class: "raise-muted", text: label + " " }), value))),
      model.get("summary") ? h("div", { class: "raise-summary", text: model.get("summary") }) : null,
      model.get("error") && status === "failed" ? h("div", { class: "raise-error", text: model.get("error") }) : null];
    root.replaceChildren(...parts.filter(Boolean));
  }

  draw();
  for (const name of ["status", "phase", "rows_done", "rows_total", "rows_per_second", "eta_seconds",
    "elapsed_seconds", "device", "error", "summary", "cancel_requested"]) model.on("change:" + name, draw);
}

export default { render };
