/**
 * One process of the multi-process reservation test: reserves random estimates on RPM + TPM +
 * a window counter, commits random actuals (some above the estimate: debt), cancels some, leaves
 * some to expire, and checks that a second settle of every handle says already-settled.
 * argv: redisUrl prefix iterations seed. Prints its ledger as JSON on stdout.
 */
import { Redis } from 'ioredis';
import { runScript } from '../../src/runtime/index.js';
import { decodeSettle, reserveCall, settleCall } from '../../src/client/reservations.js';
import { compileLimit } from '../../src/client/plan.js';
import { limitKey, resolveSubject } from '../../src/client/keys.js';
import { LIMITS, MAX_OVERAGE } from './reservation-limits.js';

const [url, prefix, iterations, seedArg, offsetArg] = process.argv.slice(2);
const redis = new Redis(url!, { maxRetriesPerRequest: 1 });
let seed = Number(seedArg);
const rand = (n: number) => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed % n;
};
const limits = LIMITS(Number(offsetArg));
const plans = limits.map((l) => compileLimit(l as never, 1));
const subject = resolveSubject({ id: 'agent', hashTag: 'fleet' });
const keys = plans.map((p) => limitKey(prefix!, subject, p.name, null));
const names = plans.map((p) => p.name);
const net: [number, number, number] = [0, 0, 0];
const late: { handle: string; est: number }[] = [];
let admitted = 0;
let denied = 0;
let twice = 0;
let unknownLate = 0;
for (let i = 0; i < Number(iterations); i++) {
  const est = 1 + rand(100);
  const leave = rand(20) === 0;
  const call = reserveCall(plans, false, keys, [1, est, est], leave ? 200 : 60_000);
  const reply = (await runScript(redis, call.def, call.keys, call.argv)) as number[];
  if (reply[0] !== 1) {
    denied++;
    continue;
  }
  admitted++;
  net[0] += 1;
  net[1] += est;
  net[2] += est;
  if (leave) {
    late.push({ handle: call.handle, est });
    continue;
  }
  const cancel = rand(10) === 0;
  const actual = rand(est + MAX_OVERAGE + 1);
  const s = settleCall(call.handle, cancel ? 'cancel' : 'commit', cancel ? null : [1, actual, actual]);
  const out = decodeSettle((await runScript(redis, s.def, s.keys, s.argv)) as number[], names);
  if (out.status !== (cancel ? 'cancelled' : 'committed')) throw new Error(`settle said ${out.status}`);
  if (cancel) {
    net[0] -= 1;
    net[1] -= est;
    net[2] -= est;
  } else {
    net[1] += actual - est;
    net[2] += actual - est;
  }
  const again = settleCall(call.handle, 'commit', [1, est + 5, est + 5]);
  if (decodeSettle((await runScript(redis, again.def, again.keys, again.argv)) as number[], names).status === 'already-settled') twice++;
}
// Reservations left alone expire and count at their estimate; a late commit finds nothing.
for (const { handle } of late) {
  const s = settleCall(handle, 'commit', [1, 0, 0]);
  for (let tries = 0; tries < 200 && (await redis.exists(s.keys[0]!)) === 1; tries++) await new Promise((r) => setTimeout(r, 25));
  if (decodeSettle((await runScript(redis, s.def, s.keys, s.argv)) as number[], names).status === 'unknown') unknownLate++;
}
await redis.quit();
process.stdout.write(JSON.stringify({ net, admitted, denied, twice, late: late.length, unknownLate }));
