// Store browser: namespaces and their groups. Clicking a group sends a message that makes the
// kernel open the group's panel.

function render({ model, el }) {
  const root = h("div", { class: "raise-widget raise-browser" });
  el.append(root);
  let filter = "";

  function list() {
    const needle = filter.toLowerCase();
    const opened = model.get("opened");
    const blocks = [];
    for (const entry of model.get("namespaces") || []) {
      const groups = entry.groups.filter((g) => (entry.namespace + "/" + g.name).toLowerCase().includes(needle));
      if (!groups.length) continue;
      blocks.push(h("div", { class: "raise-namespace" + (entry.namespace === model.get("current") ? " raise-current" : ""),
        text: entry.namespace }));
      for (const g of groups) {
        const path = entry.namespace + "/" + g.name;
        blocks.push(h("div", { class: "raise-group" + (path === opened ? " raise-open" : ""), "data-group": path, title: g.description,
          onclick: () => model.send({ type: "open", namespace: entry.namespace, name: g.name }) },
          h("span", { class: "raise-code", text: g.name }),
          h("span", { class: "raise-muted", text: `${g.features} features${g.online ? ", online" : ""}` }),
          g.description ? h("span", { class: "raise-muted", text: g.description }) : null));
      }
    }
    if (!blocks.length) blocks.push(h("div", { class: "raise-muted", text: "No feature groups yet." }));
    if (model.get("hidden")) blocks.push(h("div", { class: "raise-muted", text: `${model.get("hidden")} more groups not listed.` }));
    return h("div", { class: "raise-scroll" }, ...blocks);
  }

  function draw() {
    const search = h("input", { type: "search", placeholder: "Filter groups", value: filter });
    const holder = h("div", {}, list());
    search.addEventListener("input", () => { filter = search.value; holder.replaceChildren(list()); });
    const parts = [
      h("div", { class: "raise-toolbar" },
        h("span", { class: "raise-title", text: "Feature store" }),
        h("span", { class: "raise-muted raise-code", text: model.get("root") }),
        search,
        h("button", { text: "Refresh", onclick: () => model.send({ type: "refresh" }) })),
      model.get("error") ? h("div", { class: "raise-error", text: model.get("error") }) : null,
      holder];
    root.replaceChildren(...parts.filter(Boolean));
    root.dataset.ready = "true";
  }

  draw();
  for (const name of ["namespaces", "opened", "error", "hidden"]) model.on("change:" + name, draw);
}

export default { render };
