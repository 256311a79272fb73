export { createPolicyLimiter, PolicyLimiter, type PolicyLimiterOptions, type PolicyDecision, type PolicyCallOptions, type AdaptiveOptions, type FeedbackResult } from './limiter.js';
export { PolicyStore, diffPolicies, type ChangeOptions, type PolicyDiff, type LimitChange } from './store.js';
export { type PolicyInput, type PolicyVersion, type CarryOver, MAX_DOCUMENT_BYTES as MAX_POLICY_BYTES } from './document.js';
export { POLICY_CHANNEL, PolicyKeys } from './keys.js';
