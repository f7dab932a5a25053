// Bundles the playground into ../dist: assets/app-<hash>.js and assets/style-<hash>.css
// (esbuild, minified), assets/licenses-<hash>.txt (the licenses of the bundled packages),
// and index.html from src/index.html with those names filled in. The edge embeds ../dist.
import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
process.chdir(here);
const dist = join(here, '..', 'dist');
const assets = join(dist, 'assets');

await rm(dist, { recursive: true, force: true });
await mkdir(assets, { recursive: true });

const result = await esbuild.build({
  entryPoints: { app: 'src/main.js', style: 'src/style.css' },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  outdir: assets,
  entryNames: '[name]-[hash]',
  legalComments: 'none', // the licenses go to their own file, below
  metafile: true,
  logLevel: 'warning',
});

const names = {};
for (const [out, meta] of Object.entries(result.metafile.outputs)) {
  if (meta.entryPoint === 'src/main.js') names.script = basename(out);
  if (meta.entryPoint === 'src/style.css') names.style = basename(out);
}

// One license text per bundled package, found from the inputs esbuild read.
const packages = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = input.match(/^node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (m) packages.add(m[1]);
}
let licenses = 'The CodeExec playground bundles these packages, under these licenses.\n';
for (const pkg of [...packages].sort()) {
  const dir = join('node_modules', pkg);
  const { version } = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
  const file = ['LICENSE', 'LICENSE.md', 'LICENSE.txt'].map((f) => join(dir, f)).find((f) => existsSync(f));
  licenses += `\n== ${pkg} ${version} ==\n\n${file ? await readFile(file, 'utf8') : '(no license file in the package)\n'}`;
}
const licenseHash = createHash('sha256').update(licenses).digest('hex').slice(0, 8).toUpperCase();
names.licenses = `licenses-${licenseHash}.txt`;
await writeFile(join(assets, names.licenses), licenses);

let page = await readFile('src/index.html', 'utf8');
for (const key of ['script', 'style', 'licenses']) {
  if (!names[key]) throw new Error(`no ${key} in the build output`);
  page = page.replaceAll(`{{${key}}}`, names[key]);
}
await writeFile(join(dist, 'index.html'), page);
console.log(`playground: ${Object.values(names).join(', ')}`);
