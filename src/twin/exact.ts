/** The exact integer arithmetic lives below the twin and the runtime checks (src/math/exact.ts). */
export * from '../math/exact.js';
