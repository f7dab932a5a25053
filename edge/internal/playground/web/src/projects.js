// The list of the user's projects: open, rename in place, delete after a second click.

import { call } from './api.js';

export class Projects {
  constructor({ list, onOpen, onChange, onError }) {
    this.list = list;
    this.onOpen = onOpen;
    this.onChange = onChange;
    this.onError = onError;
  }

  clear() {
    this.list.replaceChildren();
  }

  async refresh() {
    const r = await call('GET', '/api/projects');
    this.list.replaceChildren(...r.projects.map((p) => this.item(p)));
  }

  item(p) {
    const li = document.createElement('li');
    li.dataset.projectId = p.id;
    const open = button(p.name, 'open', () => this.onOpen(p.id));
    open.title = `${p.language}, saved ${new Date(p.updatedAt).toLocaleString()}${p.shareId ? ', shared' : ''}`;
    const lang = document.createElement('small');
    lang.textContent = p.language + (p.shareId ? ' · shared' : '');
    const rename = button('rename', 'rename', () => this.renaming(li, p));
    const del = button('delete', 'delete', async () => {
      if (!del.classList.contains('confirm')) {
        del.classList.add('confirm');
        del.textContent = 'really delete?';
        return;
      }
      try {
        await call('DELETE', `/api/projects/${encodeURIComponent(p.id)}`);
        this.onChange({ id: p.id, deleted: true });
        await this.refresh();
      } catch (err) {
        this.onError(err);
      }
    });
    li.append(open, lang, rename, del);
    return li;
  }

  renaming(li, p) {
    const input = document.createElement('input');
    input.value = p.name;
    input.maxLength = 100;
    input.dataset.testid = 'rename-name';
    const ok = button('OK', 'rename-ok', async () => {
      try {
        const name = input.value.trim();
        // A rename keeps the saved files: it sends them back as they are stored.
        const cur = await call('GET', `/api/projects/${encodeURIComponent(p.id)}`);
        const upd = await call('PUT', `/api/projects/${encodeURIComponent(p.id)}`,
          { name, language: cur.language, files: cur.files || [] });
        this.onChange({ id: upd.id, name: upd.name });
        await this.refresh();
      } catch (err) {
        this.onError(err);
      }
    });
    const cancel = button('cancel', 'rename-cancel', () => this.refresh().catch(this.onError));
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') ok.click();
      if (e.key === 'Escape') cancel.click();
    });
    li.replaceChildren(input, ok, cancel);
    input.focus();
  }
}

function button(text, testid, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.className = testid;
  b.dataset.testid = `project-${testid}`;
  b.addEventListener('click', onClick);
  return b;
}
