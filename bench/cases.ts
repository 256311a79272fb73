import { gcraScript, tokenBucketScript } from '../generated/index.js';
import type { CostCase } from './server-cost.js';

const KEYS = 1000;

/** One case per script, on the server clock, with realistic state (1000 keys, some denials). */
export function benchCases(): CostCase[] {
  return [
    {
      name: 'gcra',
      def: gcraScript,
      target: 6,
      call: (i) => ({ keys: [`bench:gcra:${i % KEYS}`], argv: ['100', '1000', '20'] }),
    },
    {
      name: 'token_bucket',
      def: tokenBucketScript,
      target: 6,
      call: (i) => ({ keys: [`bench:tb:${i % KEYS}`], argv: ['100', '1000', '20'] }),
    },
  ];
}
