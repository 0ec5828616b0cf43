/**
 * The source tree's shape, checked from the import statements themselves (type-only imports
 * included, since a type cycle still makes two files impossible to read apart):
 *   shared <- actors <- workers <- host files (src/*.ts, src/cli), and no cycle anywhere.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = fileURLToPath(new URL('../src/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []);
}

/** Every file's relative imports, as paths relative to src/ ending in .ts. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const specifier = /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;
  for (const file of sources(src)) {
    const text = readFileSync(file, 'utf8');
    const targets: string[] = [];
    for (const match of text.matchAll(specifier)) {
      const target = resolve(dirname(file), (match[1] ?? match[2])!).replace(/\.js$/, '.ts');
      targets.push(relative(src, target));
    }
    graph.set(relative(src, file), targets);
  }
  return graph;
}

function layerOf(file: string): number {
  if (file.startsWith('shared/')) return 0;
  if (file.startsWith('actors/')) return 1;
  if (file.startsWith('workers/')) return 2;
  return 3;
}

const graph = importGraph();

describe('source layers', () => {
  it('imports only downward: shared <- actors <- workers <- host', () => {
    const upward = [...graph].flatMap(([file, targets]) =>
      targets.filter((target) => layerOf(target) > layerOf(file)).map((target) => `${file} -> ${target}`));
    expect(upward).toEqual([]);
  });

  it('has no import cycle, type-only imports included', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (file: string) => {
      state.set(file, 'open');
      stack.push(file);
      for (const target of graph.get(file) ?? []) {
        if (state.get(target) === 'open') cycles.push([...stack.slice(stack.indexOf(target)), target].join(' -> '));
        else if (!state.has(target)) visit(target);
      }
      stack.pop();
      state.set(file, 'done');
    };
    for (const file of graph.keys()) if (!state.has(file)) visit(file);
    expect(cycles).toEqual([]);
  });

  it('keeps every source file under about 400 lines', () => {
    const long = [...graph.keys()].filter((file) => readFileSync(join(src, file), 'utf8').split('\n').length > 420);
    expect(long).toEqual([]);
  });
});
