/** A decision is plain data shared by every layer: it lives in src/decision.ts, below the client and the errors. */
export type { Decision, DecisionSource, LimitResult } from '../decision.js';
