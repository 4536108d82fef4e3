// SQL and YAML editing of %%raise cells. A notebook cell whose first line starts with %%raise
// gets the SQL language (YAML after "%%raise define", "alert", "live" and "training"). It takes
// precedence over the notebook's Python, and every other cell stays Python.

import { sql, PostgreSQL } from '@codemirror/lang-sql';
import { yaml } from '@codemirror/lang-yaml';
import { Compartment, EditorState, Extension, Prec, StateEffect, StateField, Text } from '@codemirror/state';
import { EditorView, ViewPlugin, ViewUpdate } from '@codemirror/view';

export type CellMode = 'sql' | 'yaml' | null;

/** Return the language that the first line of a cell's text selects. */
export function modeOf(doc: Text | string): CellMode {
  const first = (typeof doc === 'string' ? doc.split('\n', 1)[0] : doc.line(1).text).trim();
  if (!first.startsWith('%%raise')) {
    return null;
  }
  return /^%%raise\s+(define|alert|live|training)\b/.test(first) ? 'yaml' : 'sql';
}

function languageFor(mode: CellMode): Extension {
  if (mode === 'sql') {
    return Prec.highest(sql({ dialect: PostgreSQL }));
  }
  if (mode === 'yaml') {
    return Prec.highest(yaml());
  }
  return [];
}

/**
 * Return the editor extension that switches the language as the first line changes.
 *
 * Edits switch it in the same transaction. A text that arrives without an edit (an editor
 * created with its cell's source) is caught by a view plugin, which switches after the update.
 */
export function raiseCellLanguage(initialText: string): Extension {
  const compartment = new Compartment();
  const initial = modeOf(initialText);
  const setApplied = StateEffect.define<CellMode>();
  const applied = StateField.define<CellMode>({
    create: () => initial,
    update: (value, transaction) => {
      for (const effect of transaction.effects) {
        if (effect.is(setApplied)) {
          value = effect.value;
        }
      }
      return value;
    }
  });
  const reconfigure = (mode: CellMode) => [compartment.reconfigure(languageFor(mode)), setApplied.of(mode)];

  const onEdit = EditorState.transactionExtender.of(transaction => {
    if (!transaction.docChanged) {
      return null;
    }
    const next = modeOf(transaction.newDoc);
    return next === transaction.startState.field(applied) ? null : { effects: reconfigure(next) };
  });

  const catchUp = ViewPlugin.fromClass(
    class {
      private scheduled = false;

      constructor(view: EditorView) {
        this.check(view);
      }

      update(update: ViewUpdate): void {
        this.check(update.view);
      }

      private check(view: EditorView): void {
        if (this.scheduled || modeOf(view.state.doc) === view.state.field(applied)) {
          return;
        }
        // A plugin may not dispatch during an update, so switch right after it.
        this.scheduled = true;
        setTimeout(() => {
          this.scheduled = false;
          const mode = modeOf(view.state.doc);
          if (mode !== view.state.field(applied, false)) {
            view.dispatch({ effects: reconfigure(mode) });
          }
        }, 0);
      }
    }
  );
  return [applied, compartment.of(languageFor(initial)), onEdit, catchUp];
}
