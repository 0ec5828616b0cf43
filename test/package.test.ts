/**
 * The package as users install it: `npm pack`, install the tarball into a fresh project, run the
 * README's example from the installed package, and type-check a user's TypeScript against the
 * published declarations without @types/node. `npm test` builds dist/ first, so packing here
 * skips the build scripts (a second build would rewrite dist/ under the other test files).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

let project: string;

beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), 'norma-user-'));
  const { stdout } = await run(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', project], { cwd: root });
  const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
  await run(npm, ['install', '--no-audit', '--no-fund', '--ignore-scripts', join(project, filename)], { cwd: project });
}, 120_000);

afterAll(async () => {
  if (project !== undefined) await rm(project, { recursive: true, force: true });
});

describe('the packed package in a fresh project', () => {
  it('holds dist/ with types, the README and the examples the README links, and no sources or tests', async () => {
    const installed = join(project, 'node_modules', 'norma-rt');
    const top = await readdir(installed);
    expect(top.sort()).toEqual(['README.md', 'dist', 'examples', 'package.json'].sort());
    const dist = await readdir(join(installed, 'dist'));
    expect(dist).toContain('index.js');
    expect(dist).toContain('index.d.ts');
    expect(await readdir(join(installed, 'examples'))).toContain('ports.mjs');
  });

  it('runs the README example from the installed package', async () => {
    const example = join(project, 'node_modules', 'norma-rt', 'examples', 'ports.mjs');
    const { stdout } = await run(process.execPath, [example], { cwd: project, timeout: 60_000 });
    expect(stdout.trim().split('\n')).toEqual(['node 1 says: HELLO', 'node 1 says: MACH']);
  }, 90_000);

  it("runs the README's \"use it in your project\" program as a user's own module", async () => {
    const readme = await readFile(join(root, 'README.md'), 'utf8');
    const program = /```js\n(\/\/ main\.mjs[\s\S]*?)```/.exec(readme)?.[1];
    expect(program).toBeDefined();
    await writeFile(join(project, 'main.mjs'), program!);
    const { stdout } = await run(process.execPath, ['main.mjs'], { cwd: project, timeout: 60_000 });
    expect(stdout.trim()).toBe('Uint8Array(4) [ 1, 2, 3, 4 ]');
  }, 90_000);

  it('runs `norma bench` from the installed package: the suites ship in dist/bench, their peers as dependencies', async () => {
    const entry = join(project, 'node_modules', 'norma-rt', 'dist', 'cli', 'bench.js');
    const out = join(project, 'bench-out');
    const { stdout } = await run(process.execPath, [entry, 'peers', '--quick', '--json', '--out', out],
      { cwd: project, timeout: 120_000, maxBuffer: 16 * 2 ** 20 });
    const doc = JSON.parse(stdout) as { skipped: unknown[]; failed: unknown[]; suites: { comparisons: { tasks: { state: string }[] }[] }[] };
    expect(doc.skipped).toEqual([]);
    expect(doc.failed).toEqual([]);
    expect(doc.suites[0]!.comparisons.flatMap((c) => c.tasks.map((t) => t.state)).every((state) => state === 'completed')).toBe(true);
    expect((await readdir(out)).sort()).toEqual(['peers.json', 'peers.svg']);
  }, 150_000);

  it('type-checks a user program against the published declarations without @types/node', async () => {
    await writeFile(join(project, 'main.ts'), [
      "import { Kernel, KernError, KERN_SUCCESS, VM_INHERIT_SHARE, type TaskContext } from 'norma-rt';",
      'export async function entry(context: TaskContext, address: number): Promise<number> {',
      '  return context.view(address, 4)[0] ?? 0;',
      '}',
      'export async function main(): Promise<void> {',
      '  const kernel = await Kernel.boot({ nodes: 2 });',
      '  const task = await kernel.bootstrapTask.createOn(1);',
      '  const address = await task.allocate(kernel.pageSize);',
      '  await task.inherit(address, kernel.pageSize, VM_INHERIT_SHARE);',
      '  const kr = await kernel.mach.vm_deallocate(task, address, kernel.pageSize);',
      '  if (kr !== KERN_SUCCESS) throw new KernError(kr, "vm_deallocate");',
      '  await kernel.shutdown();',
      '}',
    ].join('\n'));
    await writeFile(join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true,
        lib: ['ES2023', 'ES2024.SharedMemory'], types: [], noEmit: true, skipLibCheck: false,
      },
      files: ['main.ts'],
    }));
    const checked = await run(process.execPath, [tsc, '-p', project], { cwd: project }).then(
      () => '', (error: { stdout?: string }) => error.stdout ?? String(error));
    expect(checked).toBe('');
  }, 90_000);
});
