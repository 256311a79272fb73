export { createPolicyLimiter, PolicyLimiter, type PolicyLimiterOptions, type PolicyDecision, type AdaptiveOptions, type FeedbackResult } from './limiter.js';
export { PolicyStore, diffPolicies, type ChangeOptions, type PolicyDiff, type LimitChange } from './store.js';
export { type PolicyInput, type PolicyVersion, type CarryOver, MAX_DOCUMENT_BYTES } from './document.js';
export { resolve, scaled, expand, type Resolution, type Layer, type Learned } from './resolve.js';
export { POLICY_CHANNEL, PolicyKeys } from './keys.js';
