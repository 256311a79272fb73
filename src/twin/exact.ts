/**
 * Exact integer arithmetic on doubles: the twin of scripts-lua/lib/exact.lua, operation for
 * operation, so both sides round identically (they never round: every value is an exact
 * integer below 2^53).
 */
const TWO53 = 9007199254740992;

/** [q, r] with p = q*c + r, 0 <= r < c. */
export function divmod(p: number, c: number): [number, number] {
  let r = p % c;
  if (r < 0) r += c;
  return [(p - r) / c, r];
}

/** [q, r] with a*b = q*c + r, 0 <= r < c; 0 <= a < 2^40, 0 <= b < 2^48, 1 <= c < 2^40. */
export function muldivmod(a: number, b: number, c: number): [number, number] {
  const p = a * b;
  if (p < TWO53) {
    const r = p % c; // p >= 0: no sign fix-up needed
    return [(p - r) / c, r];
  }
  let q = 0;
  let r = 0;
  for (let scale = 68719476736; scale >= 1; scale /= 4096) {
    const chunk = Math.floor(b / scale);
    b -= chunk * scale;
    const s = r * 4096 + a * chunk;
    const rr = s % c;
    q = q * 4096 + (s - rr) / c;
    r = rr;
  }
  return [q, r];
}

export function ceildiv(p: number, c: number): number {
  const [q, r] = divmod(p, c);
  return r > 0 ? q + 1 : q;
}
