// The workspace: a project's files as tabs over one CodeMirror editor, each file keeping
// its own editor state (text, selection, undo history).

import { basicSetup } from 'codemirror';
import { EditorView, keymap } from '@codemirror/view';
import { Compartment, EditorState, Prec } from '@codemirror/state';
import { StreamLanguage } from '@codemirror/language';
import { python } from '@codemirror/lang-python';
import { javascript } from '@codemirror/lang-javascript';
import { java } from '@codemirror/lang-java';
import { cpp } from '@codemirror/lang-cpp';
import { go } from '@codemirror/lang-go';
import { ruby } from '@codemirror/legacy-modes/mode/ruby';

// Each language's highlighting, first file and hello world. A language the catalog adds
// later works as plain text until it gets a line here.
const known = {
  python: { mode: () => python(), file: 'main.py', hello: 'print("Hello, world!")\n' },
  javascript: { mode: () => javascript(), file: 'main.js', hello: 'console.log("Hello, world!");\n' },
  java: {
    mode: () => java(), file: 'Main.java',
    hello: 'public class Main {\n    public static void main(String[] args) {\n        System.out.println("Hello, world!");\n    }\n}\n',
  },
  go: {
    mode: () => go(), file: 'main.go',
    hello: 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("Hello, world!")\n}\n',
  },
  cpp: {
    mode: () => cpp(), file: 'main.cpp',
    hello: '#include <iostream>\n\nint main() {\n    std::cout << "Hello, world!" << std::endl;\n}\n',
  },
  ruby: { mode: () => StreamLanguage.define(ruby), file: 'main.rb', hello: 'puts "Hello, world!"\n' },
};

export function firstFile(language) {
  const k = known[language];
  return { filename: k ? k.file : 'main.txt', code: k ? k.hello : '', isEntryPoint: true };
}

export class Workspace {
  // parent holds the editor, tabs the tab buttons; onRun is called on Ctrl/Cmd+Enter.
  constructor({ parent, tabs, nonce, onRun }) {
    this.tabs = tabs;
    this.nonce = nonce;
    this.onRun = onRun;
    this.language = '';
    this.readOnly = false;
    this.mode = new Compartment();
    this.files = []; // {filename, isEntryPoint, state}
    this.active = 0;
    this.view = new EditorView({ parent, state: this.newState('', '') });
  }

  newState(doc, language) {
    const k = known[language];
    return EditorState.create({
      doc,
      extensions: [
        Prec.highest(keymap.of([{ key: 'Mod-Enter', run: () => { this.onRun(); return true; } }])),
        basicSetup,
        EditorView.cspNonce.of(this.nonce),
        EditorState.readOnly.of(this.readOnly),
        EditorView.editable.of(!this.readOnly),
        this.mode.of(k ? k.mode() : []),
      ],
    });
  }

  // load replaces the files (each {filename, code, isEntryPoint}).
  load(language, files, readOnly = false) {
    this.language = language;
    this.readOnly = readOnly;
    const list = files.length ? files : [firstFile(language)];
    this.files = list.map((f) => ({
      filename: f.filename, isEntryPoint: !!f.isEntryPoint, state: this.newState(f.code, language),
    }));
    if (!this.files.some((f) => f.isEntryPoint)) this.files[0].isEntryPoint = true;
    this.active = 0;
    this.view.setState(this.files[0].state);
    this.renderTabs();
  }

  // pristine: the files are the hello world of the current language, untouched.
  pristine() {
    const first = firstFile(this.language);
    const files = this.snapshot();
    return files.length === 1 && files[0].filename === first.filename && files[0].code === first.code;
  }

  // setLanguage changes the highlighting; untouched starter code becomes the new
  // language's, and a lone file with the old language's default name is renamed.
  setLanguage(language) {
    if (this.pristine()) {
      this.load(language, []);
      return;
    }
    const old = firstFile(this.language).filename;
    const files = this.snapshot();
    if (files.length === 1 && files[0].filename === old) files[0].filename = firstFile(language).filename;
    const active = this.active;
    this.load(language, files, this.readOnly);
    this.show(Math.min(active, this.files.length - 1));
  }

  snapshot() {
    this.files[this.active].state = this.view.state;
    return this.files.map((f) => ({ filename: f.filename, code: f.state.doc.toString(), isEntryPoint: f.isEntryPoint }));
  }

  show(i) {
    if (this.files[this.active] && this.view.state && i !== this.active) {
      this.files[this.active].state = this.view.state;
    }
    this.active = i;
    this.view.setState(this.files[i].state);
    this.renderTabs();
  }

  getCode() {
    return this.view.state.doc.toString();
  }

  setCode(text) {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: String(text) } });
  }

  addFile(name) {
    if (this.files.some((f) => f.filename === name)) {
      throw new Error(`a file named ${name} exists already`);
    }
    this.files[this.active].state = this.view.state;
    this.files.push({ filename: name, isEntryPoint: false, state: this.newState('', this.language) });
    this.show(this.files.length - 1);
  }

  removeActive() {
    if (this.files.length < 2) throw new Error('a project keeps at least one file');
    const wasEntry = this.files[this.active].isEntryPoint;
    this.files.splice(this.active, 1);
    if (wasEntry) this.files[0].isEntryPoint = true;
    this.active = Math.min(this.active, this.files.length - 1);
    this.view.setState(this.files[this.active].state);
    this.renderTabs();
  }

  makeActiveEntry() {
    this.files.forEach((f, i) => { f.isEntryPoint = i === this.active; });
    this.renderTabs();
  }

  renderTabs() {
    this.tabs.replaceChildren(...this.files.map((f, i) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.setAttribute('role', 'tab');
      b.setAttribute('aria-selected', String(i === this.active));
      b.dataset.filename = f.filename;
      b.className = i === this.active ? 'tab active' : 'tab';
      b.textContent = f.isEntryPoint ? `${f.filename} ★` : f.filename;
      b.title = f.isEntryPoint ? 'entry point: the file that runs' : '';
      b.addEventListener('click', () => this.show(i));
      return b;
    }));
  }
}
