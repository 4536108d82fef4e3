// JupyterLab side of Raise: the Feature Store sidebar, SQL/YAML editing of %%raise cells and
// completion of group and feature names served by the Raise server extension.

import { JupyterFrontEnd, JupyterFrontEndPlugin, ILayoutRestorer } from '@jupyterlab/application';
import { EditorExtensionRegistry, IEditorExtensionRegistry } from '@jupyterlab/codemirror';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import { INotebookTracker } from '@jupyterlab/notebook';

import { GroupCache } from './api';
import { RaiseCompletionProvider } from './completer';
import { raiseCellLanguage } from './language';
import { FeatureStorePanel } from './sidebar';

const sidebarGroups = new GroupCache(true);
const completionGroups = new GroupCache(false);

const sidebar: JupyterFrontEndPlugin<void> = {
  id: 'raise-jupyter:sidebar',
  description: 'A Feature Store panel in the left sidebar.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, restorer: ILayoutRestorer | null) => {
    const panel = new FeatureStorePanel(tracker, sidebarGroups);
    app.shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, panel.id);
    }
    app.commands.addCommand('raise:refresh-sidebar', {
      label: 'Refresh the Feature Store sidebar',
      execute: () => panel.refresh()
    });
  }
};

const language: JupyterFrontEndPlugin<void> = {
  id: 'raise-jupyter:cell-language',
  description: 'SQL highlighting in %%raise cells and YAML in %%raise define, alert, live and training cells.',
  autoStart: true,
  requires: [IEditorExtensionRegistry],
  activate: (app: JupyterFrontEnd, registry: IEditorExtensionRegistry) => {
    registry.addExtension({
      name: 'raise-jupyter:cell-language',
      factory: options => {
        // Cell editors are inline; file editors are not. The cell's MIME type is not known
        // yet when its editor is made, so every cell gets the extension, and it acts only on
        // cells whose first line starts with %%raise.
        if (!options.inline) {
          return null;
        }
        return EditorExtensionRegistry.createImmutableExtension(raiseCellLanguage(options.model.sharedModel.getSource()));
      }
    });
  }
};

const completion: JupyterFrontEndPlugin<void> = {
  id: 'raise-jupyter:completion',
  description: 'Completion of feature group and feature names in %%raise cells.',
  autoStart: true,
  requires: [ICompletionProviderManager],
  activate: (app: JupyterFrontEnd, manager: ICompletionProviderManager) => {
    manager.registerProvider(new RaiseCompletionProvider(completionGroups));
  }
};

export default [sidebar, language, completion];
