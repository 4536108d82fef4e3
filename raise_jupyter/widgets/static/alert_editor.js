// Alert editor. The form is kept in the "form" trait. Save and Test send the form to the kernel,
// which validates it with the Python API and sets "errors", "message" and "current" in reply.

function select(name, choices, value, onchange) {
  const node = h("select", { name, onchange });
  for (const choice of choices) {
    const [key, label] = Array.isArray(choice) ? choice : [choice, choice];
    const option = h("option", { value: key, text: label });
    if (key === value) option.selected = true;
    node.append(option);
  }
  return node;
}

function formatValue(value) {
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? value.toLocaleString() : value.toPrecision(6).replace(/\.?0+$/, "");
}

function render({ model, el }) {
  const root = h("div", { class: "raise-widget raise-alert-editor" });
  el.append(root);
  let form = { ...(model.get("form") || {}) };

  const update = (field, value, redraw = false) => {
    form[field] = value;
    if (redraw) draw();
  };
  const send = (type) => model.send({ type, form });

  function row(label, field, control) {
    const errors = model.get("errors") || {};
    if (errors[field]) {
      control.classList.add("raise-invalid");
      for (const input of control.querySelectorAll("input, select")) input.classList.add("raise-invalid");
    }
    return [
      h("label", { text: label }),
      control,
      h("span", { class: "raise-field-error", "data-error": field, text: errors[field] || "" }),
    ];
  }

  function draw() {
    const options = model.get("options") || {};
    const groups = options.groups || {};
    const features = (groups[form.group] || []).map((f) => [f.name, `${f.name} (${f.dtype})`]);
    const conditions = options.conditions || [];
    const arity = (conditions.find((c) => c.key === form.condition) || { arity: 1 }).arity;
    const errors = model.get("errors") || {};

    const existing = select("existing", [["", "New alert"], ...(options.alerts || []).map((a) => [a, a])],
      form.editing || "", (e) => { if (e.target.value) model.send({ type: "load", name: e.target.value }); });
    const name = h("input", { name: "name", value: form.name || "", placeholder: "delay-spike",
      oninput: (e) => update("name", e.target.value) });
    const group = select("group", Object.keys(groups), form.group, (e) => {
      update("group", e.target.value);
      // The kernel sends the features of the chosen group and picks a default feature.
      send("group");
    });
    const feature = select("feature", features, form.feature, (e) => update("feature", e.target.value));
    const metricList = "raise-metrics-" + Math.random().toString(36).slice(2);
    const metric = h("span", {},
      h("input", { name: "metric", value: form.metric || "", list: metricList, placeholder: "avg, or several: p50, p99",
        oninput: (e) => update("metric", e.target.value) }),
      h("datalist", { id: metricList }, ...(options.metrics || []).map((m) => h("option", { value: m }))));
    const groupBy = h("input", { name: "group_by", value: form.group_by || "", placeholder: "optional: carrier, date",
      oninput: (e) => update("group_by", e.target.value) });
    const where = h("input", { name: "where", value: form.where || "", placeholder: "optional SQL filter: origin = 'JFK'",
      oninput: (e) => update("where", e.target.value) });
    const condition = select("condition", conditions.map((c) => [c.key, c.label]), form.condition,
      (e) => update("condition", e.target.value, true));
    const low = h("input", { name: "low", value: form.low ?? "", placeholder: arity === 2 ? "lower bound" : "threshold",
      inputmode: "decimal", oninput: (e) => update("low", e.target.value) });
    const high = arity === 2 ? h("input", { name: "high", value: form.high ?? "", placeholder: "upper bound",
      inputmode: "decimal", oninput: (e) => update("high", e.target.value) }) : null;
    const notify = h("input", { name: "notify", value: form.notify || "", placeholder: "log, team@example.com, https://hooks.example.com/...",
      oninput: (e) => update("notify", e.target.value) });
    const schedule = h("input", { name: "schedule", value: form.schedule || "", placeholder: "hourly, daily, every 10m or cron",
      oninput: (e) => update("schedule", e.target.value) });
    const onIngest = h("input", { type: "checkbox", name: "on_ingest", onchange: (e) => update("on_ingest", e.target.checked) });
    onIngest.checked = form.on_ingest !== false;

    const fields = h("div", { class: "raise-form" },
      ...row("edit existing", "existing", existing),
      ...row("name", "name", name),
      ...row("group", "group", group),
      ...row("feature", "feature", feature),
      ...row("metrics", "metric", metric),
      ...row("group by", "group_by", groupBy),
      ...row("where", "where", where),
      ...row("fires when", "condition", condition),
      ...row("threshold", "low", h("span", { class: "raise-bounds" }, low, high ? h("span", { text: "and" }) : null, high)),
      ...row("notify", "notify", notify),
      ...row("schedule", "schedule", schedule),
      ...row("on ingest", "on_ingest", h("span", {}, onIngest, h("span", { class: "raise-muted", text: " also evaluate after each ingest" }))));

    const actions = h("div", { class: "raise-actions" },
      h("button", { class: "raise-primary raise-save", text: "Save", onclick: () => send("save") }),
      h("button", { class: "raise-test", text: "Send test notification", onclick: () => send("test") }),
      h("span", { class: "raise-message", text: model.get("message") || "" }));

    const children = [h("div", { class: "raise-title", text: "Alert" }), fields, actions];
    if (errors.form) children.push(h("div", { class: "raise-error", "data-error": "form", text: errors.form }));
    const tested = model.get("test_result") || {};
    if (Object.keys(tested).length) {
      children.push(h("div", { class: "raise-test-result" },
        ...Object.entries(tested).map(([target, outcome]) => h("div", { text: `${target}: ${outcome}` }))));
    }
    children.push(current());
    root.replaceChildren(...children);
    root.dataset.ready = "true";
  }

  function current() {
    const info = model.get("current") || {};
    if (!info.alert) return h("div", { class: "raise-current raise-muted", text: "Save to see the current value and history." });
    const values = Object.entries(info.values || {}).map(([key, value]) => `${key === "" ? "value" : key}: ${formatValue(value)}`).join(", ");
    const rows = (info.history || []).map((e) => h("tr", {},
      h("td", { text: e.evaluated_at }),
      h("td", {}, h("span", { class: "raise-badge raise-" + e.state, text: e.state })),
      h("td", { class: "raise-code", text: Object.entries(e.values || {}).map(([k, v]) => `${k || "value"}=${formatValue(v)}`).join(", ") }),
      h("td", { class: "raise-muted", text: e.message })));
    return h("div", { class: "raise-current" },
      h("div", {}, h("span", { class: "raise-title", text: info.alert + " " }),
        h("span", { class: "raise-badge raise-" + info.state, text: info.state }),
        h("span", { class: "raise-muted", text: values ? "  current " + values : "" })),
      rows.length ? h("table", {}, h("thead", {}, h("tr", {}, ...["evaluated (UTC)", "state", "values", "message"].map((t) => h("th", { text: t })))),
        h("tbody", {}, ...rows)) : null);
  }

  draw();
  model.on("change:form", () => { form = { ...(model.get("form") || {}) }; draw(); });
  for (const name of ["options", "errors", "message", "current", "test_result"]) model.on("change:" + name, draw);
}

export default { render };
