/**
 * The cancellation half of the sync (see sync.ts): our cancellation rows brought in line with PortOne's
 * list on every sync, and our reservations that can no longer succeed settled, in the sync's transaction.
 */
import type { TransactionSql } from "../infra/db.ts";
import { log } from "../infra/log.ts";
import type { PaymentSnapshot } from "../portone/snapshot.ts";
import type { SyncSource } from "./sync.ts";

/** The audit event of one cancellation settling; written by whoever moved it out of REQUESTED, once. */
export async function recordSettlement(
  tx: TransactionSql,
  paymentId: string,
  source: SyncSource,
  settlement: {
    cancellationId: string;
    status: "SUCCEEDED" | "FAILED";
    portoneCancellationId: string | null;
    reason: string | null;
  },
): Promise<void> {
  await tx`
    insert into public.payment_events (payment_id, source, kind, detail)
    values (${paymentId}, ${source}, ${
    settlement.status === "SUCCEEDED" ? "cancel_succeeded" : "cancel_failed"
  },
            ${
    tx.json({
      cancellationId: settlement.cancellationId,
      portoneCancellationId: settlement.portoneCancellationId,
      reason: settlement.reason,
    })
  })`;
}

/** Why a reservation settled by the sync failed: what PortOne answers a cancel it can no longer perform. */
export const unreachableReservation = "CANCELLABLE_AMOUNT_CONSISTENCY_BROKEN";
/** Why a cancellation PortOne itself marked FAILED failed (PortOne gives no reason). */
export const failedAtPortOne = "FAILED_AT_PORTONE";

/**
 * Brings our cancellations in line with PortOne's list, then settles our own reservations that can no
 * longer succeed, and returns what stays reserved. Runs on every sync, newer snapshot or not: a cancellation
 * can settle (an asynchronous one FAILED) without any payment-level field changing.
 *
 * A reservation we never got an answer for (no PortOne id) carries the `currentCancellableAmount` it was
 * sent with, and PortOne performs it only while its balance (paid − cancelled − pending) equals that. The
 * paid − cancelled balance never grows, so once the freshest one we know is below that amount the request
 * can never succeed, whether it is retried, resent by recovery or still in flight: it is settled FAILED
 * here, exactly as PortOne would refuse it, instead of holding an amount PortOne no longer has.
 */
export async function syncCancellations(
  tx: TransactionSql,
  snapshot: PaymentSnapshot,
  source: SyncSource,
  /** The freshest paid − cancelled we know, and the one the payment row will hold after this sync. */
  balance: { freshest: number; recorded: number },
): Promise<{ reserved: number; settled: number }> {
  const paymentId = snapshot.id;
  let settled = 0;
  const settle = async (cancellationId: string, status: "SUCCEEDED" | "FAILED", portoneId: string | null) => {
    settled++;
    await recordSettlement(tx, paymentId, source, {
      cancellationId,
      status,
      portoneCancellationId: portoneId,
      reason: status === "FAILED" ? (portoneId === null ? unreachableReservation : failedAtPortOne) : null,
    });
  };
  for (const c of snapshot.cancellations) {
    const settledAt = c.status === "REQUESTED" ? null : c.cancelledAt ?? new Date().toISOString();
    const failureReason = c.status === "FAILED" ? failedAtPortOne : null;
    const [known] = await tx<{ id: string; payment_id: string; status: string }[]>`
      select id, payment_id, status from public.payment_cancellations
      where portone_cancellation_id = ${c.portoneId}`;
    if (known) {
      if (known.payment_id !== paymentId || known.status !== "REQUESTED" || c.status === "REQUESTED") {
        continue;
      }
      const [moved] = await tx<{ id: string }[]>`
        update public.payment_cancellations
        set status = ${c.status}, settled_at = ${settledAt}, pg_cancellation_id = ${c.pgCancellationId},
            failure_reason = ${failureReason}
        where id = ${known.id} and status = 'REQUESTED'
        returning id`;
      if (moved) await settle(moved.id, c.status, c.portoneId);
      continue;
    }
    // A cancel we asked for whose answer never reached us (timeout, crash) shows up here first: claim the
    // oldest matching request of ours instead of counting the same refund twice. Only one made through the
    // API with our request's amount and reason can be ours: a console refund of the same amount is not, and
    // taking it for ours would let our request's fate (refused, say) overwrite PortOne's.
    const couldBeOurs = c.trigger === null || c.trigger === "API";
    const [claimed] = !couldBeOurs ? [] : await tx<{ id: string }[]>`
      update public.payment_cancellations
      set portone_cancellation_id = ${c.portoneId}, status = ${c.status}, settled_at = ${settledAt},
          pg_cancellation_id = ${c.pgCancellationId}, failure_reason = ${failureReason}
      where id = (
        select id from public.payment_cancellations
        where payment_id = ${paymentId} and portone_cancellation_id is null and status = 'REQUESTED'
          and amount = ${c.amount} and (${c.reason} = '' or reason = ${c.reason})
        order by requested_at, id
        limit 1
      )
      returning id`;
    if (claimed) {
      if (c.status !== "REQUESTED") await settle(claimed.id, c.status, c.portoneId);
      continue;
    }
    await tx`
      insert into public.payment_cancellations
        (payment_id, status, amount, tax_free_amount, reason, requester, portone_cancellation_id,
         pg_cancellation_id, requested_at, settled_at, failure_reason)
      values
        (${paymentId}, ${c.status}, ${c.amount}, ${Math.min(c.taxFreeAmount, c.amount)},
         ${(c.reason || "cancelled at PortOne").slice(0, 200)}, 'PORTONE', ${c.portoneId},
         ${c.pgCancellationId}, ${c.requestedAt ?? new Date().toISOString()}, ${settledAt}, ${failureReason})
      on conflict (portone_cancellation_id) do nothing`;
  }

  const unreachable = await tx<{ id: string }[]>`
    update public.payment_cancellations
    set status = 'FAILED', failure_reason = ${unreachableReservation}, settled_at = now()
    where payment_id = ${paymentId} and status = 'REQUESTED' and portone_cancellation_id is null
      and coalesce(current_cancellable_amount, amount) > ${balance.freshest}
    returning id`;
  for (const { id } of unreachable) await settle(id, "FAILED", null);
  if (unreachable.length > 0) {
    log("warn", "cancel_reservation_unreachable", { paymentId, cancellations: unreachable.map((r) => r.id) });
  }

  const reservedNow = async () =>
    (await tx<{ amount: number }[]>`
      select coalesce(sum(amount), 0)::bigint as amount from public.payment_cancellations
      where payment_id = ${paymentId} and status = 'REQUESTED'`)[0]?.amount ?? 0;
  let reserved = await reservedNow();
  if (reserved > balance.recorded) {
    // Our request fits the balance but not beside cancellations PortOne itself holds: it could succeed only
    // if one of those failed first. The reservation cannot stay (it would break reserved ≤ cancellable), so
    // it is refused here as PortOne refuses it now; should it be performed after all, the next sync records
    // PortOne's cancellation as it records a console refund.
    const crowded = await tx<{ id: string }[]>`
      update public.payment_cancellations
      set status = 'FAILED', failure_reason = ${unreachableReservation}, settled_at = now()
      where payment_id = ${paymentId} and status = 'REQUESTED' and portone_cancellation_id is null
      returning id`;
    for (const { id } of crowded) await settle(id, "FAILED", null);
    log("warn", "cancel_reservation_crowded_out", { paymentId, cancellations: crowded.map((r) => r.id) });
    reserved = await reservedNow();
  }
  return { reserved, settled };
}
