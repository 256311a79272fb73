/**
 * Exact integer arithmetic on doubles: the twin of scripts-lua/lib/exact.lua, operation for
 * operation, so both sides round identically (they never round: every value is an exact
 * integer below 2^53).
 *
 * The `…To` forms write their pair into `QR` instead of allocating one: the twin's hot path
 * (millions of decisions a second) calls them several times per decision.
 */
const TWO53 = 9007199254740992;

/** The pair written by divmodTo / muldivmodTo: q, r. */
export const QR = { q: 0, r: 0 };

/** q, r with p = q*c + r, 0 <= r < c, into QR; c >= 1, |p| + c <= 2^53. */
export function divmodTo(p: number, c: number): void {
  // floor(p / c) of the rounded quotient is the exact floor or one above it (the exact floor is
  // a double, and rounding is monotonic); |q * c| <= |p| + c <= 2^53 keeps p - q * c exact, so one
  // step fixes it. A division and a multiply: % on doubles is a libm call several times slower.
  let q = Math.floor(p / c);
  let r = p - q * c;
  if (r < 0) {
    r += c;
    q -= 1;
  }
  QR.q = q;
  QR.r = r + 0; // + 0 turns -0 into the 0 Lua has
}

/** q, r with a*b = q*c + r, 0 <= r < c, into QR; 0 <= a < 2^40, 0 <= b < 2^48, 1 <= c < 2^40. */
export function muldivmodTo(a: number, b: number, c: number): void {
  const p = a * b;
  if (p <= TWO53 - c) {
    // a * b exact (the computed product is below 2^53, so the true one is) and |p| + c <= 2^53.
    divmodTo(p, c);
    return;
  }
  if (p < TWO53) {
    const r = p % c; // p >= 0: no sign fix-up needed
    QR.q = (p - r) / c;
    QR.r = r;
    return;
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
  QR.q = q;
  QR.r = r;
}

export function divmod(p: number, c: number): [number, number] {
  divmodTo(p, c);
  return [QR.q, QR.r];
}

export function muldivmod(a: number, b: number, c: number): [number, number] {
  muldivmodTo(a, b, c);
  return [QR.q, QR.r];
}
