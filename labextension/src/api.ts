// Requests to the Raise server extension (read-only REST handlers under /raise/api/).

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IFeatureInfo {
  name: string;
  dtype: string;
  derived: string;
  description: string;
  role: string;
}

export interface IGroupInfo {
  namespace: string;
  name: string;
  description: string;
  keys: string[];
  event_time: string | null;
  online: boolean;
  rows?: number | null;
  version?: number | null;
  features: IFeatureInfo[];
}

/**
 * Send a GET request to the server extension and return the parsed JSON body.
 *
 * Errors carry the server's reason, such as a missing store.
 */
export async function requestAPI<T>(endpoint: string): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'raise', 'api', endpoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, {}, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  if (!response.ok) {
    // The server puts its explanation (a missing store, an old catalog) in the JSON body.
    let message = response.statusText;
    try {
      message = (JSON.parse(text) as { message?: string }).message || message;
    } catch {
      // Not JSON: keep the status text.
    }
    if (response.status === 404 && !message.includes('store')) {
      message += ' (is the raise_jupyter server extension enabled? See jupyter server extension list.)';
    }
    throw new Error(`Raise server extension: ${response.status} ${message}`);
  }
  return JSON.parse(text) as T;
}

/**
 * The groups of the store, as the sidebar (with row counts) or the completer (without) needs them.
 *
 * After the first load, `get` returns at once from memory and reloads in the background when the
 * data is older than `maxAgeMs`, because JupyterLab drops completion sources that take over 1 s.
 */
export class GroupCache {
  private groups: IGroupInfo[] = [];
  private loadedAt = 0;
  private pending: Promise<IGroupInfo[]> | null = null;

  constructor(private readonly withRows: boolean) {}

  async get(maxAgeMs = 10000): Promise<IGroupInfo[]> {
    if (this.loadedAt === 0) {
      return this.reload();
    }
    if (Date.now() - this.loadedAt > maxAgeMs) {
      this.reload().catch(() => undefined);
    }
    return this.groups;
  }

  reload(): Promise<IGroupInfo[]> {
    if (!this.pending) {
      this.pending = requestAPI<IGroupInfo[]>(this.withRows ? 'groups?rows=1' : 'groups?rows=0')
        .then(groups => {
          this.groups = groups;
          this.loadedAt = Date.now();
          return groups;
        })
        .finally(() => {
          this.pending = null;
        });
    }
    return this.pending;
  }
}

/** Return the SQL reference of a feature, as `"group".feature`. */
export function featureReference(group: string, feature: string): string {
  const column = /^[A-Za-z_][A-Za-z0-9_]*$/.test(feature) ? feature : `"${feature.replace(/"/g, '""')}"`;
  return `"${group.replace(/"/g, '""')}".${column}`;
}
