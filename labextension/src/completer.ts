// Completion of group and feature names in %%raise cells, from the server extension.

import {
  CompletionHandler,
  ICompletionContext,
  ICompletionProvider
} from '@jupyterlab/completer';

import { GroupCache, IGroupInfo } from './api';
import { modeOf } from './language';

/** Offers `"group"` names and feature names while the cursor is in a %%raise SQL cell. */
export class RaiseCompletionProvider implements ICompletionProvider {
  readonly identifier = 'raise:feature-store';
  readonly rank = 1000;

  constructor(private readonly cache: GroupCache) {}

  async isApplicable(context: ICompletionContext): Promise<boolean> {
    const editor = context.editor;
    return !!editor && modeOf(editor.model.sharedModel.getSource()) === 'sql';
  }

  async fetch(request: CompletionHandler.IRequest): Promise<CompletionHandler.ICompletionItemsReply> {
    const before = request.text.slice(0, request.offset);
    const groups = await this.cache.get();

    // After `"group".` or `group.`: the features of that group.
    const qualified = /(?:"((?:[^"]|"")+)"|([A-Za-z_][\w-]*))\.([A-Za-z_]\w*)?$/.exec(before);
    if (qualified) {
      const groupName = (qualified[1] ?? qualified[2]).replace(/""/g, '"');
      const prefix = qualified[3] ?? '';
      const items = featuresOf(groups.filter(g => g.name === groupName), prefix);
      return { start: request.offset - prefix.length, end: request.offset, items };
    }

    // A bare word: group names (quoted) and features of every group.
    const word = /"?[A-Za-z_][\w-]*$/.exec(before);
    const prefix = word ? word[0] : '';
    const bare = prefix.replace(/^"/, '');
    // Groups of the same name in several namespaces are offered once.
    const names = new Set<string>();
    const groupItems = groups
      .filter(g => g.name.startsWith(bare) && !names.has(g.name) && names.add(g.name))
      .map(g => ({ label: `"${g.name}"`, insertText: `"${g.name}"`, type: 'group', documentation: g.description || undefined }));
    // After an opening quote only group names fit.
    const features = prefix.startsWith('"') ? [] : featuresOf(groups, bare);
    return { start: request.offset - prefix.length, end: request.offset, items: [...groupItems, ...features] };
  }
}

function featuresOf(groups: IGroupInfo[], prefix: string): CompletionHandler.ICompletionItem[] {
  const seen = new Set<string>();
  const items: CompletionHandler.ICompletionItem[] = [];
  for (const group of groups) {
    for (const feature of group.features) {
      if (!feature.name.startsWith(prefix) || seen.has(feature.name)) {
        continue;
      }
      seen.add(feature.name);
      const detail = feature.derived ? ` = ${feature.derived}` : '';
      items.push({
        label: feature.name,
        insertText: feature.name,
        type: 'feature',
        documentation: `${group.name}.${feature.name}: ${feature.dtype}${detail}${feature.description ? '\n' + feature.description : ''}`
      });
    }
  }
  return items;
}
