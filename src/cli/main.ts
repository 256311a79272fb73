#!/usr/bin/env node
/**
 * `npx redlimit …`: the operator's toolkit. Exit codes: 0 done, 1 failed, 2 bad input (usage,
 * an unknown script, a bad number, a malformed subject), 3 Redis unreachable. An absent key is
 * an answer (full), not a failure: `inspect` reports it with exit 0.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { RedlimitError } from '../errors.js';
import { registerExperimentCommands } from './experiments.js';
import { CliError } from './output.js';
import { registerPolicyCommands } from './policy.js';
import { registerExportCommand, registerScriptCommands } from './scripts.js';
import { registerStateCommands } from './state.js';

export function program(): Command {
  const version = (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  const cli = new Command('redlimit').description('redlimit: distributed rate limiting on Redis — scripts, state and simulations').version(version).showHelpAfterError();
  cli.exitOverride();

  registerScriptCommands(cli);
  registerStateCommands(cli);
  registerExportCommand(cli, packageRoot);
  registerExperimentCommands(cli);
  registerPolicyCommands(cli);
  return cli;
}

/** The package root (where generated/ lives): two levels up from src/cli, four from dist/esm/src/cli. */
function packageRoot(): string {
  const here = import.meta.dirname;
  for (const up of [['..', '..'], ['..', '..', '..', '..']]) {
    const root = join(here, ...up);
    if (existsSync(join(root, 'generated', 'manifest.json'))) return root;
  }
  throw new CliError('cannot find the package files (generated/manifest.json)', 1);
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
    return 0;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message: string };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) return 2; // commander printed the usage error
    if (err instanceof CliError) {
      process.stderr.write(`redlimit: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof RedlimitError) {
      process.stderr.write(`redlimit: ${err.message}\n`);
      return err.code === 'ERR_REDIS_UNAVAILABLE' ? 3 : 2;
    }
    process.stderr.write(`redlimit: ${e.message}\n`);
    return 1;
  }
}

if (process.argv[1] && /cli[/\\]main\.(js|ts)$/.test(realpathSync(process.argv[1]))) {
  void main(process.argv).then((code) => process.exit(code));
}
