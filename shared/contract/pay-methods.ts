/**
 * Payment methods a channel can be chosen for (the browser SDK's `payMethod` values). Apart from common.ts
 * so that configuration can read them without loading zod (shared/infra/config.ts runs before anything else).
 */
export const payMethods = ["CARD", "EASY_PAY", "VIRTUAL_ACCOUNT", "TRANSFER", "MOBILE"] as const;
export type PayMethod = (typeof payMethods)[number];
