// The "Feature Store" sidebar: namespaces, groups and features of the store as a tree, with a
// search box and a refresh button. Clicking a feature inserts its reference at the cursor of
// the active cell; a group's "show" button inserts a `%raise show GROUP` cell below.

import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { featureReference, GroupCache, IGroupInfo } from './api';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
  '<g class="jp-icon3" fill="#616161"><ellipse cx="12" cy="5" rx="8" ry="3"/>' +
  '<path d="M4 7v4c0 1.7 3.6 3 8 3s8-1.3 8-3V7c0 1.7-3.6 3-8 3S4 8.7 4 7z"/>' +
  '<path d="M4 13v4c0 1.7 3.6 3 8 3s8-1.3 8-3v-4c0 1.7-3.6 3-8 3s-8-1.3-8-3z"/></g></svg>';

export const storeIcon = new LabIcon({ name: 'raise:feature-store', svgstr: ICON_SVG });

function element(tag: string, className: string, text = ''): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

export class FeatureStorePanel extends Widget {
  private readonly search: HTMLInputElement;
  private readonly status: HTMLElement;
  private readonly tree: HTMLElement;
  private groups: IGroupInfo[] = [];

  constructor(
    private readonly tracker: INotebookTracker,
    private readonly cache: GroupCache
  ) {
    super();
    this.id = 'raise-feature-store';
    this.title.icon = storeIcon;
    this.title.caption = 'Feature Store';
    this.addClass('raise-sidebar');

    const header = element('div', 'raise-sidebar-header');
    header.append(element('span', 'raise-sidebar-title', 'Feature Store'));
    const refresh = element('button', 'jp-Button raise-sidebar-refresh', 'Refresh') as HTMLButtonElement;
    refresh.title = 'Read the store again';
    refresh.addEventListener('click', () => void this.refresh());
    header.append(refresh);

    this.search = document.createElement('input');
    this.search.type = 'search';
    this.search.placeholder = 'Search groups and features';
    this.search.className = 'jp-mod-styled raise-sidebar-search';
    this.search.addEventListener('input', () => this.render());

    this.status = element('div', 'raise-sidebar-status');
    this.tree = element('div', 'raise-sidebar-tree');
    this.node.append(header, this.search, this.status, this.tree);
  }

  /** Read the groups from the server extension and redraw the tree. */
  async refresh(): Promise<void> {
    this.status.textContent = 'Loading\u2026';
    try {
      this.groups = await this.cache.reload();
      this.status.textContent = this.groups.length ? '' : 'No feature groups in this store yet.';
    } catch (error) {
      this.groups = [];
      this.status.textContent = String((error as Error).message ?? error);
    }
    this.render();
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  private render(): void {
    const needle = this.search.value.trim().toLowerCase();
    const byNamespace = new Map<string, IGroupInfo[]>();
    for (const group of this.groups) {
      const groupMatches = group.name.toLowerCase().includes(needle);
      const features = groupMatches ? group.features : group.features.filter(f => f.name.toLowerCase().includes(needle));
      if (!groupMatches && !features.length && !group.namespace.toLowerCase().includes(needle)) {
        continue;
      }
      const list = byNamespace.get(group.namespace) ?? [];
      list.push({ ...group, features: needle && !groupMatches ? features : group.features });
      byNamespace.set(group.namespace, list);
    }

    const nodes: HTMLElement[] = [];
    for (const [namespace, groups] of byNamespace) {
      const block = element('details', 'raise-tree-namespace');
      (block as HTMLDetailsElement).open = true;
      block.append(element('summary', 'raise-tree-namespace-name', namespace));
      for (const group of groups) {
        block.append(this.groupNode(group, !!needle));
      }
      nodes.push(block);
    }
    this.tree.replaceChildren(...nodes);
  }

  private groupNode(group: IGroupInfo, expanded: boolean): HTMLElement {
    const block = element('details', 'raise-tree-group');
    (block as HTMLDetailsElement).open = expanded;
    block.dataset.group = group.name;
    block.dataset.namespace = group.namespace;

    const summary = element('summary', 'raise-tree-group-summary');
    summary.append(element('span', 'raise-tree-group-name', group.name));
    const rows = typeof group.rows === 'number' ? `${group.rows.toLocaleString()} rows` : '';
    summary.append(element('span', 'raise-tree-group-rows', rows));
    const show = element('button', 'raise-tree-group-show', 'show') as HTMLButtonElement;
    show.title = `Insert a "%raise show ${group.name}" cell below the active cell`;
    show.addEventListener('click', event => {
      event.preventDefault();
      event.stopPropagation();
      this.insertShowCell(group.name);
    });
    summary.append(show);
    summary.title = [group.description, `keys: ${group.keys.join(', ') || '(none)'}`, `event time: ${group.event_time ?? '(none)'}`]
      .filter(Boolean)
      .join('\n');
    block.append(summary);

    for (const feature of group.features) {
      const item = element('div', 'raise-tree-feature');
      item.dataset.feature = feature.name;
      item.append(element('span', 'raise-tree-feature-name', feature.name), element('span', 'raise-tree-feature-dtype', feature.dtype));
      const hover = [feature.derived ? `derived: ${feature.derived}` : '', feature.description, `role: ${feature.role}`];
      item.title = hover.filter(Boolean).join('\n');
      item.addEventListener('click', () => this.insertReference(group.name, feature.name));
      block.append(item);
    }
    return block;
  }

  /** Insert `"group".feature` at the cursor of the active notebook cell. */
  insertReference(group: string, feature: string): void {
    const cell = this.tracker.activeCell;
    const editor = cell?.editor;
    if (!editor) {
      this.status.textContent = 'Open a notebook and select a cell to insert feature references.';
      return;
    }
    const text = featureReference(group, feature);
    if (editor.replaceSelection) {
      editor.replaceSelection(text);
    } else {
      const offset = editor.getOffsetAt(editor.getCursorPosition());
      editor.model.sharedModel.updateSource(offset, offset, text);
    }
    editor.focus();
  }

  /** Insert a `%raise show GROUP` cell below the active cell of the current notebook. */
  insertShowCell(group: string): void {
    const panel = this.tracker.currentWidget;
    if (!panel) {
      this.status.textContent = 'Open a notebook to insert a %raise show cell.';
      return;
    }
    NotebookActions.insertBelow(panel.content);
    const cell = panel.content.activeCell;
    if (cell) {
      cell.model.sharedModel.setSource(`%raise show ${group}`);
    }
  }
}
