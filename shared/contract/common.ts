/**
 * Pieces the functions' contracts share. Like everything in shared/contract/, this runs in apps' browsers
 * too: it imports only shared/infra/deps-client.ts and other contract-safe modules.
 */
import { z } from "../infra/deps-client.ts";

/** Payment methods a channel can be chosen for (the browser SDK's `payMethod` values). */
export const payMethods = ["CARD", "EASY_PAY", "VIRTUAL_ACCOUNT", "TRANSFER", "MOBILE"] as const;
export type PayMethod = (typeof payMethods)[number];

export const paymentIdSchema = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, "must be a paymentId from prepare");
