-- The database floor of `recordInteraction` (a purchase): one transaction that locks the
-- customer, stores the interaction, recomputes its purchase aggregates from its own
-- history, earns points, writes the ledger entry and the outbox event.
\set n random(1, :customers)
BEGIN;
SELECT id, tier_id, points_balance FROM customer WHERE external_ref = 'BENCH-' || :n FOR UPDATE;
INSERT INTO interaction (id, customer_id, kind, occurred_at, amount_e4, recorded_by, recorded_at)
  SELECT gen_random_uuid(), id, 'PURCHASE', now(), 1280000, 'pgbench', now()
  FROM customer WHERE external_ref = 'BENCH-' || :n;
SELECT count(*) FILTER (WHERE i.kind = 'PURCHASE'), sum(i.amount_e4), min(i.occurred_at), max(i.occurred_at)
  FROM interaction i JOIN customer c ON c.id = i.customer_id
  WHERE c.external_ref = 'BENCH-' || :n AND i.kind IN ('PURCHASE', 'REFUND');
UPDATE customer SET points_balance = points_balance + 128, lifetime_purchase_count = lifetime_purchase_count + 1,
    last_purchase_at = now(), revision = revision + 1, updated_at = now()
  WHERE external_ref = 'BENCH-' || :n;
INSERT INTO points_entry (id, customer_id, delta, balance_after, kind, expires_at, created_by, created_at)
  SELECT gen_random_uuid(), id, 128, points_balance, 'EARN', now() + interval '365 days', 'pgbench', now()
  FROM customer WHERE external_ref = 'BENCH-' || :n;
INSERT INTO event_outbox (id, topic, customer_id, subject_id, created_at)
  SELECT gen_random_uuid(), 'POINTS_CHANGED', id, id, now() FROM customer WHERE external_ref = 'BENCH-' || :n;
COMMIT;
