/** `scripts`, `show`, `load` and `export`: the scripts themselves, what each expects, and shipping them. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import * as b from '../../generated/index.js';
import { functionsLibrary } from '../../generated/index.js';
import { preload, type ScriptDef } from '../runtime/index.js';
import { connect } from './connect.js';
import { CliError, print } from './output.js';

function scriptByName(name: string): ScriptDef {
  const def = b.allScripts.find((d) => d.name === name);
  if (!def) throw new CliError(`unknown script ${JSON.stringify(name)}; redlimit scripts lists them`, 2);
  return def;
}

/** Registers `scripts`, `show` and `load` on the program. */
export function registerScriptCommands(cli: Command): void {
  cli
    .command('scripts')
    .description('list every script: name, version, SHA1, read-only')
    .option('--json', 'JSON output')
    .action((o: { json?: boolean }) => {
      const rows = b.allScripts.map((d) => ({ name: d.name, version: d.version, sha1: d.sha1, readOnly: d.readOnly }));
      print(!!o.json, rows, () => rows.map((r) => `${r.name.padEnd(22)} v${r.version}  ${r.sha1}${r.readOnly ? '  read-only' : ''}`).join('\n'));
    });

  cli
    .command('show <script>')
    .description("a script's contract: keys, arguments (ranges, defaults), reply, checks")
    .option('--json', 'JSON output')
    .action((name: string, o: { json?: boolean }) => {
      const d = scriptByName(name);
      const contract = { name: d.name, version: d.version, sha1: d.sha1, summary: d.summary, readOnly: d.readOnly, keys: d.keys, args: d.args, each: d.each ?? null, returns: d.returns, checks: d.checks };
      print(!!o.json, contract, () =>
        [
          `${d.name} v${d.version} (${d.sha1})${d.readOnly ? ' read-only' : ''}`,
          d.summary,
          '',
          ...d.keys.map((k, i) => `KEYS[${i + 1}]${k.variadic ? '…' : ''}  ${k.name}: ${k.doc}`),
          ...d.args.map((a, i) => `ARGV[${i + 1}]  ${a.name} ${a.type}${a.required ? ' required' : ''}${a.min !== undefined ? ` ${a.min}..${a.max}` : ''}${a.values ? ` ${a.values.join('|')}` : ''}${a.default !== undefined ? ` default=${typeof a.default === 'object' ? a.default.arg : a.default}` : ''}: ${a.doc}`),
          ...(d.each ? [`then per ${d.each.name} item: ${d.each.args.map((a) => a.name).join(' ')}`] : []),
          '',
          ...d.returns.map((r, i) => `reply[${i + 1}]  ${r.name} ${r.type}: ${r.doc}`),
          ...(d.each ? [`then per item${d.each.per ? `, ${d.each.per} times (one per limit)` : ''}: ${d.each.returns.map((r) => r.name).join(' ')}`] : []),
          ...d.checks.map((c) => `check ${c.name}: ${c.doc}`),
        ].join('\n'),
      );
    });

  cli
    .command('load')
    .description('load every script into Redis (EVAL cache on every primary), or the Functions library with --functions')
    .option('--url <url>', 'Redis URL', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    .option('--cluster', 'the URL is a Redis Cluster node: load on every primary')
    .option('--functions', 'FUNCTION LOAD REPLACE the library instead')
    .option('--json', 'JSON output')
    .action(async (o: { url: string; cluster?: boolean; functions?: boolean; json?: boolean }) => {
      const client = await connect(o.url, !!o.cluster);
      try {
        if (o.functions) {
          const nodes = o.cluster ? (client as import('ioredis').Cluster).nodes('master') : [client as import('ioredis').Redis];
          await Promise.all(nodes.map((n) => n.function('LOAD', 'REPLACE', functionsLibrary)));
          print(!!o.json, { loaded: 'functions', nodes: nodes.length }, () => `loaded the Functions library on ${nodes.length} node(s)`);
        } else {
          await preload(client, b.allScripts);
          print(!!o.json, { loaded: b.allScripts.map((d) => d.sha1) }, () => `loaded ${b.allScripts.length} scripts`);
        }
      } finally {
        client.disconnect();
      }
    });
}

/** Registers `export`; `packageRoot` finds generated/ (the manifest and the Python binding). */
export function registerExportCommand(cli: Command, packageRoot: () => string): void {
  cli
    .command('export')
    .description('write the scripts for other tooling: lua (one file per script), functions (the library), manifest, python (the binding)')
    .addOption(new Option('--format <format>', 'what to write').choices(['lua', 'functions', 'manifest', 'python']).makeOptionMandatory())
    .requiredOption('--out <dir>', 'directory to write into')
    .option('--json', 'JSON output')
    .action((o: { format: string; out: string; json?: boolean }) => {
      mkdirSync(o.out, { recursive: true });
      const root = packageRoot();
      const written: string[] = [];
      const write = (name: string, content: string) => {
        writeFileSync(join(o.out, name), content);
        written.push(join(o.out, name));
      };
      if (o.format === 'lua') for (const d of b.allScripts) write(`${d.name}.lua`, d.source);
      if (o.format === 'functions') write('redlimit.lua', functionsLibrary);
      if (o.format === 'manifest') write('manifest.json', readFileSync(join(root, 'generated', 'manifest.json'), 'utf8'));
      if (o.format === 'python') write('redlimit_scripts.py', readFileSync(join(root, 'generated', 'python', 'redlimit_scripts.py'), 'utf8'));
      print(!!o.json, { written }, () => `wrote ${written.length} file(s) to ${o.out}`);
    });
}
