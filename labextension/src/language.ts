// SQL and YAML editing of %%raise cells. A notebook cell whose first line starts with %%raise
// gets the SQL language (YAML after "%%raise define"), with a higher precedence than the
// notebook's Python; every other cell stays Python.

import { sql, PostgreSQL } from '@codemirror/lang-sql';
import { yaml } from '@codemirror/lang-yaml';
import { Compartment, EditorState, Extension, Prec, StateField, Text } from '@codemirror/state';

export type CellMode = 'sql' | 'yaml' | null;

/** Return the language a cell's text asks for through its first line. */
export function modeOf(doc: Text | string): CellMode {
  const first = (typeof doc === 'string' ? doc.split('\n', 1)[0] : doc.line(1).text).trim();
  if (!first.startsWith('%%raise')) {
    return null;
  }
  return /^%%raise\s+define\b/.test(first) ? 'yaml' : 'sql';
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

/** Return the editor extension that switches the language as the first line changes. */
export function raiseCellLanguage(initialText: string): Extension {
  const compartment = new Compartment();
  const initial = modeOf(initialText);
  const mode = StateField.define<CellMode>({
    create: state => modeOf(state.doc),
    update: (value, transaction) => (transaction.docChanged ? modeOf(transaction.newDoc) : value)
  });
  const switcher = EditorState.transactionExtender.of(transaction => {
    if (!transaction.docChanged) {
      return null;
    }
    const next = modeOf(transaction.newDoc);
    if (next === transaction.startState.field(mode)) {
      return null;
    }
    return { effects: compartment.reconfigure(languageFor(next)) };
  });
  return [mode, compartment.of(languageFor(initial)), switcher];
}
